"""One MemN2N hop (plugins/mannkit_memn2n/hop.py): eq. 1-2 by hand, linear weights, float64 gradcheck, conformance.

Sizes are distinct (B=3, N=5 slots, D=7) so that a transposed axis breaks a test.
"""

import pytest
import torch
from torch.autograd import gradcheck

from mannkit.core.errors import ConfigError
from mannkit.nn import ContentAddressing, MatrixMemory
from mannkit.testing import check_addressing, check_controller, check_head
from mannkit_memn2n import (
    DotProductAddressing,
    HopController,
    HopReadHead,
    StoryMemory,
    StoryProbe,
    StoryState,
    dot_scores,
    has_scores,
    linear_weights,
)

B, N, D = 3, 5, 7
F64 = torch.float64
MASK = torch.tensor([[True] * 5, [True, True, True, False, False], [True, False, False, False, False]])


def _randn(*shape: int, seed: int, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64).requires_grad_(grad)


def _state(seed: int = 0, grad: bool = False) -> StoryState:
    return StoryState(_randn(B, N, D, seed=seed, grad=grad), _randn(B, N, D, seed=seed + 1, grad=grad), MASK)


# -- eq. 1 and 2 by hand ------------------------------------------------------------------------
def test_dot_product_weights_are_the_masked_softmax_of_u_dot_m():
    state = _state()
    u = _randn(B, 1, D, seed=9)
    weights, _ = DotProductAddressing()(u, state, ())
    for b in range(B):
        n = int(MASK[b].sum())
        scores = torch.stack([u[b, 0] @ state.memory[b, i] for i in range(n)])  # u^T m_i over the real slots
        assert torch.allclose(weights[b, 0, :n], torch.softmax(scores, 0))
        assert (weights[b, 0, n:] == 0).all(), "padded slots get exactly zero weight"
    assert torch.allclose(weights.sum(-1), torch.ones(B, 1, dtype=F64))


def test_dot_scores_and_linear_weights():
    state = _state()
    u = _randn(B, 2, D, seed=9)
    scores = dot_scores(u, state.memory)
    assert scores.shape == (B, 2, N) and torch.allclose(scores[2, 1, 4], u[2, 1] @ state.memory[2, 4])
    linear = linear_weights(scores, MASK)
    assert torch.equal(linear[MASK.unsqueeze(1).expand(B, 2, N)], scores[MASK.unsqueeze(1).expand(B, 2, N)])
    assert (linear[1, :, 3:] == 0).all() and torch.equal(linear_weights(scores, None), scores)


def test_hop_read_is_the_weighted_sum_of_values():
    memory, state = StoryMemory(N, D), _state()
    head = HopReadHead()
    u = _randn(B, 1, D, seed=9)
    out = head(u, memory, state, (), record=True)
    weights = out.trace["read_weights"]  # [B, 1, N]
    assert out.reads.shape == (B, 1, D)
    assert torch.allclose(out.reads[0, 0], sum(weights[0, 0, i] * state.values[0, i] for i in range(N)))


def test_linear_mode_reads_with_raw_scores_and_switching_it_off_restores_the_softmax():
    memory, state = StoryMemory(N, D), _state()
    head = HopReadHead(linear=True)
    u = _randn(B, 1, D, seed=9)
    raw = head(u, memory, state, (), record=True).trace["read_weights"]
    assert torch.allclose(raw, linear_weights(dot_scores(u, state.memory), MASK))
    assert not torch.allclose(raw.sum(-1), torch.ones(B, 1, dtype=F64)), "linear weights are not normalised"
    head.set_linear(False)
    soft = head(u, memory, state, (), record=True).trace["read_weights"]
    assert torch.allclose(soft, DotProductAddressing()(u, state, ())[0])
    assert "linear" in head.state_dict(), "the mode is saved with the weights"


def test_linear_mode_needs_raw_scores():
    assert has_scores(DotProductAddressing()) and not has_scores(ContentAddressing())
    message = r"linear_start needs an addressing with raw scores, but ContentAddressing has no scores\(\) method"
    with pytest.raises(ConfigError, match=message):
        HopReadHead(ContentAddressing(), linear=True)
    head = HopReadHead(ContentAddressing())
    with pytest.raises(ConfigError, match=message):
        head.set_linear(True)


def test_hop_read_head_refuses_a_memory_without_read():
    class Unreadable(MatrixMemory):
        read = None

    with pytest.raises(ConfigError, match=r"HopReadHead needs a memory with read .* but the memory is Unreadable"):
        HopReadHead().bind(Unreadable(N, D))


def test_controller_adds_the_read_and_maps_u_with_H_when_layerwise():
    u, o = _randn(B, D, seed=1), _randn(B, D, seed=2)
    adjacent = HopController(D).double()
    adjacent.bind(D)
    assert adjacent.input_map is None and torch.allclose(adjacent(o, u)[0], u + o)  # u^{k+1} = u^k + o^k
    layerwise = HopController(D, linear_map=True).double()
    layerwise.bind(D)
    new, state = layerwise(o, u)
    assert torch.allclose(new, u @ layerwise.mix.weight.T + o) and new is state  # H u^k + o^k


# -- float64 gradcheck of a whole hop -------------------------------------------------------------
@pytest.mark.parametrize(
    "addressing, linear",
    [(DotProductAddressing, False), (DotProductAddressing, True), (ContentAddressing, False)],
    ids=["softmax", "linear-start", "content"],
)
def test_hop_gradcheck(addressing, linear):
    torch.manual_seed(0)
    memory = StoryMemory(N, D)
    head = HopReadHead(addressing(), linear=linear).double()
    head.bind(memory)
    controller = HopController(D, linear_map=True).double()
    controller.bind(D)
    P = head.param_size(memory)

    def hop(u, params, m, c):
        read = head(params.unsqueeze(1), memory, StoryState(m, c, MASK), ())
        return controller(read.reads[:, 0], u)[0]  # u^{k+1} = H u^k + o^k

    inputs = (_randn(B, D, seed=1, grad=True), _randn(B, P, seed=2, grad=True), *_state(3, grad=True)[:2])
    assert gradcheck(hop, inputs)


# -- conformance ----------------------------------------------------------------------------------
def test_dot_product_addressing_conforms():
    check_addressing(DotProductAddressing)


@pytest.mark.parametrize("addressing", [DotProductAddressing, ContentAddressing], ids=["dot", "content"])
def test_hop_read_head_conforms(addressing):
    check_head(lambda: HopReadHead(addressing()))
    story = lambda: StoryMemory(slots=7, word_size=11)  # noqa: E731
    check_head(lambda: HopReadHead(addressing()), memory=story, harness=lambda head: StoryProbe(story(), head))


@pytest.mark.parametrize("linear_map", [False, True], ids=["adjacent", "layerwise"])
def test_hop_controller_conforms(linear_map):
    check_controller(lambda: HopController(hidden_size=13, linear_map=linear_map))


def test_bad_controller_width_is_refused():
    with pytest.raises(ConfigError, match=r"HopController: hidden_size must be a positive integer, got 0; set it to 1 or more\."):
        HopController(0)
