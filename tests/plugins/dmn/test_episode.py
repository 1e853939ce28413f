"""The attention GRU (plugins/mannkit_dmn/episode.py): gate extremes by hand, skipping padding, gradients, the kit.

Sizes are distinct (B=3, h=2, N=7, W=5, C=11) so that a transposed axis breaks a test.
"""

import math

import pytest
import torch
from torch.autograd import gradcheck

from mannkit.core.errors import ConfigError
from mannkit.nn import ContentAddressing, MatrixMemory, MatrixState
from mannkit.testing import check_component, check_head
from mannkit_dmn import AttentionGRUHead, FactState, InteractionAddressing, attention_gru, attention_gru_update, steps_in_use

B, H, N, W, C = 3, 2, 7, 5, 11
F64 = torch.float64


def _randn(*shape: int, seed: int, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64).requires_grad_(grad)


def _gates(*shape: int, seed: int, grad: bool = False) -> torch.Tensor:
    return torch.softmax(_randn(*shape, seed=seed), -1).requires_grad_(grad)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# -- the update: gate 0 keeps, gate 1 takes the candidate -------------------------------------


def test_update_extremes_and_a_mixture():
    previous, candidate = _randn(B, H, C, seed=1), _randn(B, H, C, seed=2)
    zero, one = torch.zeros(B, H, 1, dtype=F64), torch.ones(B, H, 1, dtype=F64)
    assert torch.equal(attention_gru_update(previous, candidate, zero), previous)
    assert torch.equal(attention_gru_update(previous, candidate, one), candidate)
    gate = torch.rand(B, H, 1, generator=torch.Generator().manual_seed(3), dtype=F64)
    torch.testing.assert_close(attention_gru_update(previous, candidate, gate), gate * candidate + (1 - gate) * previous)


def test_attention_gru_by_hand_gate_one_then_zero_then_one():
    """C = 1, one head: every quantity is a scalar computed with math."""
    xr = torch.tensor([[[0.3], [-0.2], [0.7]]], dtype=F64)  # W^(r) f_i + b^(r), [B=1, N=3, C=1]
    xh = torch.tensor([[[0.5], [2.0], [-0.4]]], dtype=F64)  # W f_i + b^(h)
    recurrent = torch.tensor([[0.6], [-1.5]], dtype=F64)  # U^(r) = 0.6, U = -1.5
    gates = torch.tensor([[[1.0, 0.0, 1.0]]], dtype=F64)
    # fact 0, gate 1 from h_0 = 0: h_1 = tanh(0.5)
    h1 = math.tanh(0.5)
    # fact 1, gate 0: h_2 = h_1, whatever the candidate
    h2 = h1
    # fact 2, gate 1: r = sigmoid(0.7 + 0.6 h_2), h_3 = tanh(-0.4 + r * (-1.5 h_2))
    r = sigmoid(0.7 + 0.6 * h2)
    h3 = math.tanh(-0.4 + r * (-1.5 * h2))
    for steps, expected in ((1, h1), (2, h2), (3, h3)):
        got = attention_gru(xr, xh, gates, recurrent, steps)
        assert got.shape == (1, 1, 1)
        assert got.item() == pytest.approx(expected, abs=1e-12)


def test_all_gates_zero_keep_the_initial_state():
    xr, xh = _randn(B, N, C, seed=4), _randn(B, N, C, seed=5)
    out = attention_gru(xr, xh, torch.zeros(B, H, N, dtype=F64), _randn(2 * C, C, seed=6))
    assert torch.equal(out, torch.zeros(B, H, C, dtype=F64))


def test_heads_share_the_gru_but_not_the_gates():
    xr, xh, recurrent = _randn(B, N, C, seed=7), _randn(B, N, C, seed=8), _randn(2 * C, C, seed=9)
    gates = _gates(B, H, N, seed=10)
    both = attention_gru(xr, xh, gates, recurrent)
    for head in range(H):
        alone = attention_gru(xr, xh, gates[:, head : head + 1], recurrent)
        torch.testing.assert_close(both[:, head : head + 1], alone)


def test_order_of_the_facts_matters():
    """Unlike a weighted sum, the sequential read changes when two facts swap places (with their gates)."""
    xr, xh, recurrent = _randn(1, 2, C, seed=11), _randn(1, 2, C, seed=12), _randn(2 * C, C, seed=13)
    gates = torch.tensor([[[0.6, 0.4]]], dtype=F64)
    forward = attention_gru(xr, xh, gates, recurrent)
    swapped = attention_gru(xr.flip(1), xh.flip(1), gates.flip(-1), recurrent)
    assert not torch.allclose(forward, swapped)


def test_steps_in_use():
    assert steps_in_use(None, N) == N
    assert steps_in_use(torch.tensor([[True, True, False, False], [True, False, False, False]]), 4) == 2
    assert steps_in_use(torch.zeros(2, 4, dtype=torch.bool), 4) == 0


def test_the_head_skips_padded_facts_without_changing_the_read():
    head = AttentionGRUHead(InteractionAddressing(), count=H)
    head.bind(MatrixMemory(slots=N, word_size=W))
    head.double()
    facts, params = _randn(B, N, W, seed=14), _randn(B, H, 2 * W, seed=15)
    mask = torch.arange(N) < torch.tensor([4, 2, 1]).unsqueeze(-1)  # the longest story uses 4 of 7 slots
    skipped = head(params, None, FactState(facts, mask), (), record=True)
    # the same facts, cut to the 4 slots in use: nothing past them can matter
    cut = head(params, None, FactState(facts[:, :4], mask[:, :4]), ())
    torch.testing.assert_close(skipped.reads, cut.reads)
    assert skipped.reads.shape == (B, H, W)
    assert torch.equal(skipped.trace["read_weights"][:, :, 4:], torch.zeros(B, H, 3, dtype=F64))


# -- gradients -----------------------------------------------------------------------------------


def test_attention_gru_update_gradcheck():
    assert gradcheck(attention_gru_update, (_randn(B, H, C, seed=16, grad=True), _randn(B, H, C, seed=17, grad=True),
                                            torch.rand(B, H, 1, dtype=F64).requires_grad_()))


def test_attention_gru_gradcheck():
    c = 3
    args = (_randn(2, 5, c, seed=18, grad=True), _randn(2, 5, c, seed=19, grad=True), _gates(2, H, 5, seed=20, grad=True),
            _randn(2 * c, c, seed=21, grad=True))
    assert gradcheck(attention_gru, args)


def test_head_gradcheck_through_params_and_facts():
    head = AttentionGRUHead(InteractionAddressing(hidden_size=2), count=H, hidden_size=3)
    head.bind(MatrixMemory(slots=5, word_size=2))
    head.double()
    mask = torch.arange(5) < torch.tensor([5, 3]).unsqueeze(-1)

    def read(params, facts):
        return head(params, None, FactState(facts, mask), ()).reads

    assert gradcheck(read, (_randn(2, H, 4, seed=22, grad=True), _randn(2, 5, 2, seed=23, grad=True)))


# -- the conformance kit, other addressings, errors ---------------------------------------------


def test_conforms_with_default_partners():
    check_component("AttentionGRUHead")  # a ContentAddressing inside, next to a content write head


def test_conforms_as_a_bank_with_its_own_width_and_dmn_attention():
    check_head(lambda: AttentionGRUHead(InteractionAddressing(), count=2, hidden_size=C))


def test_takes_any_addressing_and_reads_its_declared_width():
    memory = MatrixMemory(slots=N, word_size=W)
    head = AttentionGRUHead(ContentAddressing(), hidden_size=C)
    head.bind(memory)
    assert (head.param_size(memory), head.read_size(memory), head.count) == (W + 1, C, 1)
    out = head(torch.randn(B, 1, W + 1), memory, MatrixState(torch.randn(B, N, W)), ())
    assert out.reads.shape == (B, 1, C) and out.trace == {}


@pytest.mark.parametrize("argument, value, message", [
    ("count", 0, r"^AttentionGRUHead: count must be a positive integer, got 0; set count to 1 or more\.$"),
    ("hidden_size", -1, r"^AttentionGRUHead: hidden_size must be a positive integer or null, got -1; "),
])
def test_bad_arguments_are_refused(argument, value, message):
    with pytest.raises(ConfigError, match=message):
        AttentionGRUHead(InteractionAddressing(), **{argument: value})


def test_addressing_must_be_an_addressing():
    with pytest.raises(ConfigError, match=r"^AttentionGRUHead: addressing must be an Addressing component, got str; "):
        AttentionGRUHead("InteractionAddressing")


def test_unbound_head_says_how_to_build_it():
    with pytest.raises(ConfigError, match=r"^AttentionGRUHead is not built yet; call head.bind\(memory\)"):
        AttentionGRUHead(InteractionAddressing())(torch.zeros(B, 1, 2 * W), None, MatrixState(torch.zeros(B, N, W)), ())
