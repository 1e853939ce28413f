"""Performer addressing (plugins/mannkit_attention/performer.py): FAVOR+ features, convergence to softmax, masks, errors.

Sizes are distinct (B=3, h=2, N=7, W=5, m=11) so that a transposed axis breaks a test.
"""

import math
from typing import NamedTuple

import pytest
import torch
from torch.autograd import gradcheck

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.nn import MatrixMemory, MatrixState
from mannkit_attention import (
    PerformerAddressing,
    ScaledDotProductAddressing,
    favor_log_features,
    orthogonal_gaussian,
    performer_weights,
    positive_random_features,
)

B, H, N, W, M = 3, 2, 7, 5, 11
F64 = torch.float64
CPU = torch.device("cpu")
MASK = torch.tensor([[True] * 7, [True, False, True, False, True, True, False], [False] * 6 + [True]])  # [B, N]


class Story(NamedTuple):
    memory: torch.Tensor  # [B, N, W]
    mask: torch.Tensor  # bool [B, N]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int, grad: bool = False, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype).requires_grad_(grad)


def _bound(features: int = M, **kwargs) -> PerformerAddressing:
    addressing = PerformerAddressing(features=features, **kwargs)
    addressing.bind(MatrixMemory(slots=N, word_size=W))
    return addressing.double()


# -- the test: Performer tends to softmax attention as m grows ---------------------------


def test_performer_approaches_softmax_attention_as_the_feature_count_grows():
    errors = []
    for m in (16, 64, 256, 1024):
        per_seed = []
        for seed in range(10):
            g = _gen(seed)
            queries = 0.5 * torch.randn(B, H, W, generator=g, dtype=F64)
            keys = 0.5 * torch.randn(B, N, W, generator=g, dtype=F64)
            omega = orthogonal_gaussian(m, W, generator=g, dtype=F64)
            softmax = torch.softmax(queries @ keys.mT / math.sqrt(W), -1)  # [B, h, N]
            per_seed.append((performer_weights(queries, keys, omega, None) - softmax).abs().mean().item())
        errors.append(sum(per_seed) / len(per_seed))
    # the error falls like 1/sqrt(m): about half per fourfold m (measured 0.026, 0.014, 0.0086, 0.0042)
    assert all(later < 0.75 * earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.006 and errors[0] / errors[-1] > 4, errors


# -- the features ------------------------------------------------------------------------------


def test_orthogonal_gaussian_blocks_are_orthogonal_and_seeded():
    omega = orthogonal_gaussian(M, W, generator=_gen(1), dtype=F64)  # 3 blocks: 5 + 5 + 1 rows
    assert omega.shape == (M, W)
    for start in (0, W):
        block = omega[start : start + W]
        gram = block @ block.T
        torch.testing.assert_close(gram, torch.diag(torch.diagonal(gram)), atol=1e-12, rtol=0)  # rows orthogonal
    assert torch.equal(omega, orthogonal_gaussian(M, W, generator=_gen(1), dtype=F64))
    assert not torch.equal(omega, orthogonal_gaussian(M, W, generator=_gen(2), dtype=F64))
    assert orthogonal_gaussian(M, W, batch=B, generator=_gen(1)).shape == (B, M, W)


def test_orthogonal_gaussian_rows_are_standard_normal_marginally():
    omega = orthogonal_gaussian(4000, W, generator=_gen(3), dtype=F64)
    torch.testing.assert_close(omega.mean(0), torch.zeros(W, dtype=F64), atol=0.06, rtol=0)
    torch.testing.assert_close(omega.T @ omega / 4000, torch.eye(W, dtype=F64), atol=0.08, rtol=0)


def test_features_by_hand():
    omega = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=F64)  # m=3, W=2
    x = torch.tensor([[[1.0, 1.0]]], dtype=F64)  # |x|^2 / 2 = 1
    expected = torch.exp(torch.tensor([1.0 - 1, 2.0 - 1, 2.0 - 1], dtype=F64)) / math.sqrt(3)
    torch.testing.assert_close(positive_random_features(x, omega), expected.view(1, 1, 3))
    torch.testing.assert_close(favor_log_features(x, omega), torch.tensor([[[0.0, 1.0, 1.0]]], dtype=F64))


def test_features_estimate_the_softmax_kernel_without_bias():
    x, y = 0.4 * _randn(1, 1, W, seed=1), 0.4 * _randn(1, 1, W, seed=2)
    omega = orthogonal_gaussian(200_000, W, generator=_gen(3), dtype=F64)
    estimate = (positive_random_features(x, omega) @ positive_random_features(y, omega).mT).item()
    assert estimate == pytest.approx(math.exp((x * y).sum().item()), rel=0.01)


def test_per_example_omega_is_used_per_example():
    queries, keys = _randn(B, H, W, seed=1), _randn(B, N, W, seed=2)
    omega = orthogonal_gaussian(M, W, batch=B, generator=_gen(3), dtype=F64)  # [B, m, W]
    batched = performer_weights(queries, keys, omega, None)
    for b in range(B):
        torch.testing.assert_close(batched[b : b + 1], performer_weights(queries[b : b + 1], keys[b : b + 1], omega[b], None))


# -- the weights -------------------------------------------------------------------------------


def test_stabilised_weights_equal_the_plain_ratio():
    queries, keys = _randn(B, H, W, seed=1), _randn(B, N, W, seed=2)
    omega = orthogonal_gaussian(M, W, generator=_gen(3), dtype=F64)
    scale = W**-0.25
    products = positive_random_features(queries * scale, omega) @ positive_random_features(keys * scale, omega).mT  # [B, h, N]
    torch.testing.assert_close(performer_weights(queries, keys, omega, None), products / products.sum(-1, keepdim=True))


@pytest.mark.parametrize("masked", [False, True])
def test_weights_are_a_weighting_and_masked_slots_get_exactly_zero(masked):
    addressing = _bound()
    for seed in range(10):
        keys = 3 * _randn(B, N, W, seed=seed)
        if masked:
            keys[~MASK] = 1e3  # would own the stabiliser's maximum (and underflow every kept slot) if not excluded
        weights, _ = addressing(3 * _randn(B, H, W, seed=seed + 100), Story(keys, MASK) if masked else MatrixState(keys), ())
        assert torch.isfinite(weights).all() and (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, dtype=F64))
        if masked:
            assert (weights[~MASK.unsqueeze(1).expand(B, H, N)] == 0).all()


def test_masking_equals_dropping_the_masked_slots():
    queries, keys = _randn(1, H, W, seed=1), _randn(1, N, W, seed=2)
    omega = orthogonal_gaussian(M, W, generator=_gen(3), dtype=F64)
    kept = MASK[1]
    masked = performer_weights(queries, keys, omega, kept.unsqueeze(0))
    torch.testing.assert_close(masked[..., kept], performer_weights(queries, keys[:, kept], omega, None))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_huge_inputs_stay_finite(dtype):
    addressing = _bound().to(dtype)
    queries, keys = (100 * _randn(B, H, W, seed=1, dtype=dtype)).requires_grad_(), (100 * _randn(B, N, W, seed=2, dtype=dtype)).requires_grad_()
    weights, _ = addressing(queries, MatrixState(keys), ())
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, dtype=dtype))
    (weights * _randn(B, H, N, seed=3, dtype=dtype)).sum().backward()
    assert torch.isfinite(queries.grad).all() and torch.isfinite(keys.grad).all()


def test_when_every_product_underflows_the_weighting_is_uniform_over_the_kept_slots():
    omega = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # m=2, W=2: the query peaks on feature 0, the keys on feature 1
    big = 150 * 2**0.25  # 150 after the W^(-1/4) scaling; exp(-300) underflows in float32
    queries = torch.tensor([[[big, 0.0]]])
    keys = torch.tensor([[[-big, 0.0], [-big, 0.0], [-big, 0.0]]])
    weights = performer_weights(queries, keys, omega, torch.tensor([[True, False, True]]))
    assert torch.equal(weights, torch.tensor([[[0.5, 0.0, 0.5]]]))
    assert torch.equal(performer_weights(queries, keys, omega, torch.tensor([[False, False, False]])), torch.zeros(1, 1, 3))


@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck(masked):
    addressing = _bound()

    def step(queries, keys):
        return addressing(queries, Story(keys, MASK) if masked else MatrixState(keys), ())[0]

    assert gradcheck(step, (_randn(B, H, W, seed=1, grad=True), _randn(B, N, W, seed=2, grad=True)))


def test_gradcheck_with_per_example_omega():
    omega = orthogonal_gaussian(M, W, batch=B, generator=_gen(3), dtype=F64)
    step = lambda q, k: performer_weights(q, k, omega, MASK)  # noqa: E731
    assert gradcheck(step, (_randn(B, H, W, seed=1, grad=True), _randn(B, N, W, seed=2, grad=True)))


def test_many_features_give_nearly_softmax_in_the_addressing():
    queries, keys = 0.5 * _randn(B, H, W, seed=1), 0.5 * _randn(B, N, W, seed=2)
    softmax, _ = ScaledDotProductAddressing()(queries, Story(keys, MASK), ())
    performer, _ = _bound(features=20_000)(queries, Story(keys, MASK), ())
    torch.testing.assert_close(performer, softmax, atol=0.01, rtol=0)


# -- building, state and redrawing ---------------------------------------------------------------


def test_omega_comes_from_the_seed_not_the_global_generator():
    torch.manual_seed(1)
    first = _bound(seed=4)
    torch.manual_seed(2)
    second = _bound(seed=4)
    assert torch.equal(first.omega, second.omega) and first.omega.shape == (M, W)
    assert not torch.equal(first.omega, _bound(seed=5).omega)
    assert list(first.parameters()) == [] and "omega" in first.state_dict()


def test_without_redraw_there_is_no_state():
    memory = MatrixMemory(slots=N, word_size=W)
    assert _bound().initial_state(B, H, memory, CPU, F64) == ()


def test_redraw_draws_a_fresh_omega_per_sequence_while_training_only():
    addressing, memory = _bound(redraw=True), MatrixMemory(slots=N, word_size=W)
    first = addressing.initial_state(B, H, memory, CPU, F64)
    second = addressing.initial_state(B, H, memory, CPU, F64)
    assert first.shape == (B, M, W) and first.dtype == F64 and not torch.equal(first, second)
    queries, keys = _randn(B, H, W, seed=1), _randn(B, N, W, seed=2)
    weights, state = addressing(queries, MatrixState(keys), first)
    assert state is first
    torch.testing.assert_close(weights, performer_weights(queries, keys, first, None))
    addressing.eval()
    assert addressing.initial_state(B, H, memory, CPU, F64) == ()
    torch.testing.assert_close(addressing(queries, MatrixState(keys), ())[0], performer_weights(queries, keys, addressing.omega, None))


def test_forward_before_bind_or_on_another_word_size_is_refused():
    with pytest.raises(ConfigError, match=r"^PerformerAddressing is not built yet; call bind\(memory\) before forward"):
        PerformerAddressing()(_randn(B, H, W, seed=1), MatrixState(_randn(B, N, W, seed=2)), ())
    with pytest.raises(ConfigError, match=r"^PerformerAddressing was built for words of W=5 but the memory has W=6; use a fresh addressing for this memory\.$"):
        _bound()(_randn(B, H, W + 1, seed=1), MatrixState(_randn(B, N, W + 1, seed=2)), ())
    with pytest.raises(ShapeError, match=r"^PerformerAddressing params has shape \[3, 2, 4\] but \[3, h, 5\] was expected"):
        _bound()(_randn(B, H, W - 1, seed=1), MatrixState(_randn(B, N, W, seed=2)), ())


@pytest.mark.parametrize("bad", [0, 2.0, True])
def test_features_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match=rf"^PerformerAddressing: features must be a positive integer, got {bad!r}; set features to 1 or more\.$"):
        PerformerAddressing(features=bad)


def test_redraw_must_be_a_bool_and_seed_a_non_negative_integer():
    with pytest.raises(ConfigError, match=r"^PerformerAddressing: redraw must be true or false, got 'yes'; set redraw to true or false\.$"):
        PerformerAddressing(redraw="yes")
    with pytest.raises(ConfigError, match=r"^PerformerAddressing: seed must be a non-negative integer, got -1; set seed to 0 or more\.$"):
        PerformerAddressing(seed=-1)
