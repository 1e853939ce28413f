"""DMN+ attention gates (plugins/mannkit_dmn/addressing.py): features, a planted case, masking, gradients, the kit.

Sizes are distinct (B=3, h=2, N=7, W=5, D=11) so that a transposed axis breaks a test.
"""

import math

import pytest
import torch
from torch.autograd import gradcheck

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.nn import MatrixMemory, MatrixState
from mannkit.testing import check_addressing, check_component
from mannkit_dmn import FactState, InteractionAddressing, attention_gates, gate_scores, interaction_features

B, H, N, W, D = 3, 2, 7, 5, 11
F64 = torch.float64


def _randn(*shape: int, seed: int, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64).requires_grad_(grad)


def _mask(lengths: list[int], slots: int = N) -> torch.Tensor:
    return torch.arange(slots) < torch.tensor(lengths).unsqueeze(-1)  # [B, N]


def _bound(hidden_size=None, width=W) -> InteractionAddressing:
    addressing = InteractionAddressing(hidden_size=hidden_size)
    addressing.bind(MatrixMemory(slots=N, word_size=width))
    return addressing.double()


# -- the equations ------------------------------------------------------------------------------


def test_interaction_features_hand_computed():
    facts = torch.tensor([[[1.0, -2.0], [3.0, 0.5]]])  # [B=1, N=2, W=2]
    q = torch.tensor([[[2.0, 1.0]]])  # [B=1, h=1, W=2]
    m = torch.tensor([[[0.0, -1.0]]])
    z = interaction_features(facts, q, m)
    assert z.shape == (1, 1, 2, 8)
    # fact 0: f*q, f*m, |f-q|, |f-m|
    assert z[0, 0, 0].tolist() == [2.0, -2.0, 0.0, 2.0, 1.0, 3.0, 1.0, 1.0]
    assert z[0, 0, 1].tolist() == [6.0, 0.5, 0.0, -0.5, 1.0, 0.5, 3.0, 1.5]


def test_interaction_features_broadcast_over_heads_and_facts():
    facts, q, m = _randn(B, N, W, seed=1), _randn(B, H, W, seed=2), _randn(B, H, W, seed=3)
    z = interaction_features(facts, q, m)
    assert z.shape == (B, H, N, 4 * W)
    b, head, i = 2, 1, 4
    f = facts[b, i]
    expected = torch.cat([f * q[b, head], f * m[b, head], (f - q[b, head]).abs(), (f - m[b, head]).abs()])
    torch.testing.assert_close(z[b, head, i], expected)


def test_gate_scores_are_a_two_layer_tanh_mlp():
    z = _randn(B, H, N, 4 * W, seed=4)
    w1, b1, w2, b2 = _randn(D, 4 * W, seed=5), _randn(D, seed=6), _randn(1, D, seed=7), _randn(1, seed=8)
    scores = gate_scores(z, w1, b1, w2, b2)
    assert scores.shape == (B, H, N)
    b, head, i = 1, 0, 6
    expected = w2[0] @ torch.tanh(w1 @ z[b, head, i] + b1) + b2[0]  # Z = W2 tanh(W1 z + b1) + b2
    torch.testing.assert_close(scores[b, head, i], expected)


def test_planted_vectors_the_fact_equal_to_the_question_gets_the_highest_gate():
    """W1 sums -|f - q| into one unit and W2 = 1, so Z_i = tanh(-|f_i - q|_1) by hand."""
    addressing = _bound(hidden_size=1, width=2)
    with torch.no_grad():
        addressing.hidden.weight.copy_(torch.tensor([[0.0, 0.0, 0.0, 0.0, -1.0, -1.0, 0.0, 0.0]]))  # picks |f - q|
        addressing.hidden.bias.zero_()
        addressing.score.weight.fill_(1.0)
        addressing.score.bias.zero_()
    facts = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]], dtype=F64)  # fact 1 equals q
    q, m = torch.tensor([0.0, 1.0], dtype=F64), torch.tensor([5.0, -5.0], dtype=F64)
    params = torch.cat([q, m]).view(1, 1, 4)  # [q; m]
    gates, _ = addressing(params, MatrixState(facts), ())
    scores = [math.tanh(-2.0), math.tanh(0.0), math.tanh(-3.0)]  # |f - q|_1 = 2, 0, 3
    expected = torch.tensor([math.exp(s) for s in scores], dtype=F64)
    torch.testing.assert_close(gates[0, 0], expected / expected.sum())
    assert gates[0, 0].argmax().item() == 1


def test_gates_over_padded_facts_are_exactly_zero_and_the_rest_sum_to_one():
    addressing = _bound()
    lengths = [7, 3, 1]
    state = FactState(_randn(B, N, W, seed=9), _mask(lengths))
    gates, _ = addressing(_randn(B, H, 2 * W, seed=10), state, ())
    for b, n in enumerate(lengths):
        assert torch.equal(gates[b, :, n:], torch.zeros_like(gates[b, :, n:]))
        assert (gates[b, :, :n] > 0).all()
    torch.testing.assert_close(gates.sum(-1), torch.ones(B, H, dtype=F64))
    # padded facts change nothing about the others: the same as attending over the real facts only
    for b, n in enumerate(lengths):
        alone, _ = addressing(_randn(B, H, 2 * W, seed=10)[b : b + 1], MatrixState(state.memory[b : b + 1, :n]), ())
        torch.testing.assert_close(gates[b : b + 1, :, :n], alone)


def test_no_mask_means_every_fact_counts():
    addressing = _bound()
    facts, params = _randn(B, N, W, seed=11), _randn(B, H, 2 * W, seed=12)
    with_mask, _ = addressing(params, FactState(facts, torch.ones(B, N, dtype=torch.bool)), ())
    without, _ = addressing(params, MatrixState(facts), ())
    torch.testing.assert_close(with_mask, without)


def test_attention_gates_of_an_empty_story_are_zero_not_nan():
    gates = attention_gates(torch.zeros(2, 1, 3, dtype=F64), torch.zeros(2, 3, dtype=torch.bool))
    assert torch.equal(gates, torch.zeros(2, 1, 3, dtype=F64))


# -- gradients -----------------------------------------------------------------------------------


def test_interaction_features_gradcheck():
    assert gradcheck(interaction_features, (_randn(2, 3, W, seed=13, grad=True), _randn(2, H, W, seed=14, grad=True),
                                            _randn(2, H, W, seed=15, grad=True)))


def test_gate_scores_gradcheck():
    z = _randn(2, H, 3, 4 * W, seed=16, grad=True)
    weights = (_randn(D, 4 * W, seed=17, grad=True), _randn(D, seed=18, grad=True), _randn(1, D, seed=19, grad=True),
               _randn(1, seed=20, grad=True))
    assert gradcheck(gate_scores, (z, *weights))


def test_addressing_gradcheck_through_params_and_facts_with_a_mask():
    addressing = _bound(hidden_size=3)
    mask = _mask([7, 4, 2])

    def gates(params, facts):
        return addressing(params, FactState(facts, mask), ())[0]

    assert gradcheck(gates, (_randn(B, H, 2 * W, seed=21, grad=True), _randn(B, N, W, seed=22, grad=True)))


# -- the conformance kit and errors -------------------------------------------------------------


def test_conforms_with_the_kit_sizes():
    check_component("InteractionAddressing")


def test_conforms_with_a_narrow_scorer():
    check_addressing(lambda: InteractionAddressing(hidden_size=3))


def test_param_size_is_question_and_memory():
    assert InteractionAddressing().param_size(MatrixMemory(slots=N, word_size=W)) == 2 * W


@pytest.mark.parametrize("value", [0, -2, 1.5, True])
def test_bad_hidden_size_is_refused(value):
    with pytest.raises(ConfigError, match=rf"^InteractionAddressing: hidden_size must be a positive integer or null, got {value!r}; "):
        InteractionAddressing(hidden_size=value)


def test_wrong_param_width_names_both_shapes():
    addressing = _bound()
    with pytest.raises(ShapeError, match=r"params have shape \[3, 2, 9\] but \[B, h, 2W\] = \[B, h, 10\] was expected"):
        addressing(_randn(B, H, 9, seed=23), MatrixState(_randn(B, N, W, seed=24)), ())


def test_unbound_addressing_says_how_to_build_it():
    with pytest.raises(ConfigError, match=r"^InteractionAddressing is not built yet; its head calls bind\(memory\)"):
        InteractionAddressing()(_randn(B, H, 2 * W, seed=25), MatrixState(_randn(B, N, W, seed=26)), ())


def test_rebinding_to_another_width_is_refused():
    addressing = _bound()
    with pytest.raises(ConfigError, match=r"already built for \{'word_size': 5\}"):
        addressing.bind(MatrixMemory(slots=N, word_size=W + 1))
