"""Linformer addressing (plugins/mannkit_attention/linformer.py): identity = softmax attention, w = E^T p, masks, errors.

Sizes are distinct (B=3, h=2, N=7, W=5, k=3) so that a transposed axis breaks a test.
"""

import math
from typing import NamedTuple

import pytest
import torch
from torch.autograd import gradcheck

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.interfaces import Memory
from mannkit.nn import MatrixMemory, MatrixState
from mannkit_attention import LinformerAddressing, ScaledDotProductAddressing, linformer_weights, mask_projection

B, H, N, W, K = 3, 2, 7, 5, 3
F64 = torch.float64
MASK = torch.tensor([[True] * 7, [True, False, True, False, True, True, False], [False] * 6 + [True]])  # [B, N]


class Story(NamedTuple):
    memory: torch.Tensor  # [B, N, W]
    mask: torch.Tensor  # bool [B, N]


def _randn(*shape: int, seed: int, grad: bool = False, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype).requires_grad_(grad)


def _stochastic(*shape: int, seed: int) -> torch.Tensor:
    """Rows non-negative and summing to 1."""
    return torch.softmax(2 * _randn(*shape, seed=seed), -1)


def _bound(projected: int = K, projection: str = "learned", slots: int = N) -> LinformerAddressing:
    torch.manual_seed(0)
    addressing = LinformerAddressing(projected=projected, projection=projection)
    addressing.bind(MatrixMemory(slots=slots, word_size=W))
    return addressing.double()


# -- the test: with E = I, Linformer is softmax attention -------------------------------


@pytest.mark.parametrize("masked", [False, True])
def test_identity_projection_equals_softmax_attention(masked):
    queries, keys = 2 * _randn(B, H, W, seed=1), _randn(B, N, W, seed=2)
    state = Story(keys, MASK) if masked else MatrixState(keys)
    softmax, _ = ScaledDotProductAddressing()(queries, state, ())
    linformer, _ = _bound(projected=N, projection="identity")(queries, state, ())
    torch.testing.assert_close(linformer, softmax, rtol=1e-12, atol=1e-15)
    by_function = linformer_weights(queries, keys, torch.eye(N, dtype=F64), MASK if masked else None)
    torch.testing.assert_close(by_function, softmax, rtol=1e-12, atol=1e-15)


# -- the equations ----------------------------------------------------------------------------


def test_w_is_e_transpose_p_with_p_softmax_over_projected_keys():
    queries, keys, E = _randn(B, H, W, seed=1), _randn(B, N, W, seed=2), _stochastic(K, N, seed=3)
    p = torch.zeros(B, H, K, dtype=F64)
    for b in range(B):
        projected = E @ keys[b]  # E K, [k, W]
        p[b] = torch.softmax(queries[b] @ projected.T / math.sqrt(W), -1)
    expected = torch.einsum("bhj,jn->bhn", p, E)  # w_n = sum_j E[j, n] p_j
    torch.testing.assert_close(linformer_weights(queries, keys, E, None), expected)


def test_by_hand_with_a_mask():
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [4.0, 4.0]]], dtype=F64)  # [B=1, N=3, W=2]
    E = torch.tensor([[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]], dtype=F64)  # k=2
    mask = torch.tensor([[True, True, False]])  # slot 2 is padding
    # row 0 renormalised over slots 0, 1: (2/3, 1/3, 0); row 1 holds only slot 2, so it is dropped from p
    weights = linformer_weights(torch.tensor([[[3.0, 0.0]]], dtype=F64), keys, E, mask)
    torch.testing.assert_close(weights, torch.tensor([[[2 / 3, 1 / 3, 0.0]]], dtype=F64))


def test_mask_projection_renormalises_rows_and_flags_empty_ones():
    E = torch.tensor([[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]], dtype=F64)
    masked, valid = mask_projection(E, torch.tensor([[True, True, False], [True, True, True]]))
    torch.testing.assert_close(masked[0], torch.tensor([[2 / 3, 1 / 3, 0.0], [0.0, 0.0, 0.0]], dtype=F64))
    torch.testing.assert_close(masked[1], E)
    assert valid.tolist() == [[True, False], [True, True]]


@pytest.mark.parametrize("masked", [False, True])
def test_learned_projection_gives_a_weighting_with_exact_zeros_at_masked_slots(masked):
    addressing = _bound()
    E = addressing.projection_matrix()
    assert E.shape == (K, N) and (E > 0).all()
    torch.testing.assert_close(E.sum(-1), torch.ones(K, dtype=F64))
    for seed in range(10):
        keys = 3 * _randn(B, N, W, seed=seed)
        if masked:
            keys[~MASK] = 1e3
        weights, _ = addressing(3 * _randn(B, H, W, seed=seed + 100), Story(keys, MASK) if masked else MatrixState(keys), ())
        assert weights.shape == (B, H, N) and (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, dtype=F64))
        if masked:
            assert (weights[~MASK.unsqueeze(1).expand(B, H, N)] == 0).all()


def test_more_projected_rows_than_slots_is_allowed():
    weights, _ = _bound(projected=11)(_randn(B, H, W, seed=1), MatrixState(_randn(B, N, W, seed=2)), ())
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, dtype=F64))


# -- gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_queries_keys_and_projection_logits(masked):
    def step(queries, keys, logits):
        return linformer_weights(queries, keys, torch.softmax(logits, -1), MASK if masked else None)

    inputs = (_randn(B, H, W, seed=1, grad=True), _randn(B, N, W, seed=2, grad=True), _randn(K, N, seed=3, grad=True))
    assert gradcheck(step, inputs)


def test_gradcheck_through_the_module():
    addressing = _bound()

    def step(queries, keys, logits):
        return torch.func.functional_call(addressing, {"logits": logits}, (queries, Story(keys, MASK), ()))[0]

    inputs = (_randn(B, H, W, seed=1, grad=True), _randn(B, N, W, seed=2, grad=True), _randn(K, N, seed=3, grad=True))
    assert gradcheck(step, inputs)


# -- building ---------------------------------------------------------------------------------


def test_bind_makes_k_by_n_logits_or_a_fixed_identity():
    learned = _bound()
    assert [name for name, _ in learned.named_parameters()] == ["logits"] and learned.logits.shape == (K, N)
    assert learned.num_slots == N and learned.param_size(MatrixMemory(slots=N, word_size=W)) == W
    identity = _bound(projected=N, projection="identity")
    assert list(identity.parameters()) == [] and "identity" in identity.state_dict()
    assert torch.equal(identity.projection_matrix(), torch.eye(N, dtype=F64))


class _Slotless(Memory):
    """A memory without a fixed number of slots."""

    @property
    def word_size(self) -> int:
        return W

    def initial_state(self, batch_size, device, dtype):
        return ()


def test_a_memory_without_slots_is_refused():
    with pytest.raises(ConfigError, match=r"^LinformerAddressing needs a memory with a fixed number of slots \(such as MatrixMemory\) to project its N slots to projected rows, but the memory is _Slotless, which has no slots; use a matrix memory or ScaledDotProductAddressing\.$"):
        LinformerAddressing().bind(_Slotless())


def test_identity_needs_projected_equal_to_n():
    with pytest.raises(ConfigError, match=r"^LinformerAddressing: projection identity needs projected equal to the memory's N=7, got projected=3; set projected to 7 or use projection learned\.$"):
        LinformerAddressing(projected=3, projection="identity").bind(MatrixMemory(slots=N, word_size=W))


def test_forward_before_bind_or_on_a_larger_n_is_refused():
    queries, state = _randn(B, H, W, seed=1), MatrixState(_randn(B, N, W, seed=2))
    with pytest.raises(ConfigError, match=r"^LinformerAddressing is not built yet; call bind\(memory\) before forward"):
        LinformerAddressing()(queries, state, ())
    with pytest.raises(ShapeError, match=r"^LinformerAddressing was built for N=7 slots but the memory has N=8; bind a fresh addressing to a memory of this size\.$"):
        _bound()(queries, MatrixState(_randn(B, N + 1, W, seed=2)), ())
    with pytest.raises(ShapeError, match=r"^LinformerAddressing params has shape \[3, 2, 6\] but \[3, h, 5\] was expected"):
        _bound()(_randn(B, H, W + 1, seed=1), state, ())


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_projected_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match=rf"^LinformerAddressing: projected must be a positive integer, got {bad!r}; set projected to 1 or more\.$"):
        LinformerAddressing(projected=bad)


def test_projection_must_be_learned_or_identity():
    with pytest.raises(ConfigError, match=r"^LinformerAddressing: projection must be learned or identity, got 'eye'; pick one of those\.$"):
        LinformerAddressing(projection="eye")


@pytest.mark.parametrize("masked", [False, True])
def test_a_shorter_memory_is_the_padded_memory_with_the_padding_masked(masked):
    """MemN2N may hold a story of fewer sentences than the memory's slots: the missing rows count as masked."""
    addressing, short = _bound(), 5
    queries, keys = _randn(B, H, W, seed=1), _randn(B, short, W, seed=2)
    mask = MASK[:, :short] if masked else torch.ones(B, short, dtype=torch.bool)
    mask = mask | torch.eye(B, short, dtype=torch.bool)  # every example keeps at least one slot
    padded_keys = torch.cat([keys, 1e3 * torch.ones(B, N - short, W, dtype=F64)], dim=1)  # [B, N, W]
    padded_mask = torch.cat([mask, torch.zeros(B, N - short, dtype=torch.bool)], dim=1)  # [B, N]
    weights, _ = addressing(queries, Story(keys, mask) if masked else MatrixState(keys), ())
    padded, _ = addressing(queries, Story(padded_keys, padded_mask), ())
    assert weights.shape == (B, H, short)
    torch.testing.assert_close(weights, padded[..., :short])
    assert (padded[..., short:] == 0).all()
