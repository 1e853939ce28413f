"""Scaled dot-product attention (plugins/mannkit_attention/dot_product.py): hand cases, masks, gradients, errors.

Sizes are distinct (B=3, h=2, N=7, W=5) so that a transposed axis breaks a test.
"""

import math
from typing import NamedTuple

import pytest
import torch
from torch.autograd import gradcheck

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.nn import MatrixMemory, MatrixState
from mannkit_attention import ScaledDotProductAddressing, attention_weights, dot_product_scores

B, H, N, W = 3, 2, 7, 5
F64 = torch.float64


class Story(NamedTuple):
    """A memory state as MemN2N hands it over: input-memory embeddings and a sentence mask."""

    memory: torch.Tensor  # [B, N, W]
    mask: torch.Tensor  # bool [B, N]


def _randn(*shape: int, seed: int, grad: bool = False, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype).requires_grad_(grad)


MASK = torch.tensor([[True] * 7, [True, False, True, False, True, True, False], [False] * 6 + [True]])  # [B, N]


def _reference(queries, keys, scale):
    """softmax_n(scale * q . k_n), one number at a time with math.exp."""
    out = torch.zeros(queries.shape[0], queries.shape[1], keys.shape[1], dtype=F64)
    for b in range(queries.shape[0]):
        for h in range(queries.shape[1]):
            scores = [scale * float(queries[b, h] @ keys[b, n]) for n in range(keys.shape[1])]
            total = sum(math.exp(s) for s in scores)
            for n, s in enumerate(scores):
                out[b, h, n] = math.exp(s) / total
    return out


def test_hand_computed_two_slots():
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=F64)  # [B=1, N=2, W=2]
    query = torch.tensor([[[2.0, 0.0]]], dtype=F64)  # [B=1, h=1, W=2]
    plain, _ = ScaledDotProductAddressing(scale=False)(query, MatrixState(keys), ())
    e = math.exp(2.0)
    torch.testing.assert_close(plain, torch.tensor([[[e / (e + 1), 1 / (e + 1)]]], dtype=F64))
    scaled, _ = ScaledDotProductAddressing()(query, MatrixState(keys), ())
    e = math.exp(2.0 / math.sqrt(2))  # q . k_0 / sqrt(W) with W = 2
    torch.testing.assert_close(scaled, torch.tensor([[[e / (e + 1), 1 / (e + 1)]]], dtype=F64))


@pytest.mark.parametrize("scale", [True, False])
def test_matches_the_reference_formula(scale):
    queries, keys = _randn(B, H, W, seed=1), _randn(B, N, W, seed=2)
    weights, state = ScaledDotProductAddressing(scale=scale)(queries, MatrixState(keys), ())
    assert state == ()
    torch.testing.assert_close(weights, _reference(queries, keys, 1 / math.sqrt(W) if scale else 1.0))


def test_scores_by_hand():
    queries = torch.tensor([[[1.0, 2.0, 3.0]]])  # [1, 1, 3]
    keys = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]])  # [1, 2, 3]
    assert torch.equal(dot_product_scores(queries, keys, 0.5), torch.tensor([[[0.5, 2.5]]]))


@pytest.mark.parametrize("masked", [False, True])
def test_weights_are_a_weighting(masked):
    for seed in range(10):
        keys = 3 * _randn(B, N, W, seed=seed)
        state = Story(keys, MASK) if masked else MatrixState(keys)
        weights, _ = ScaledDotProductAddressing()(3 * _randn(B, H, W, seed=seed + 100), state, ())
        assert weights.shape == (B, H, N) and (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, dtype=F64))


def test_masked_slots_get_exactly_zero_weight_and_the_rest_is_softmax_over_the_kept():
    keys = _randn(B, N, W, seed=2)
    keys[~MASK] = 1e3  # huge masked keys would take all the weight if the mask were ignored
    queries = _randn(B, H, W, seed=1).abs()
    weights, _ = ScaledDotProductAddressing()(queries, Story(keys, MASK), ())
    assert (weights[~MASK.unsqueeze(1).expand(B, H, N)] == 0).all()
    for b in range(B):
        kept = MASK[b]
        torch.testing.assert_close(weights[b][:, kept], _reference(queries[b : b + 1], keys[b : b + 1, kept], 1 / math.sqrt(W))[0])


def test_an_example_with_no_slot_in_use_gets_all_zeros():
    weights = attention_weights(_randn(2, H, N, seed=1), torch.tensor([[False] * N, [True] * N]))
    assert torch.equal(weights[0], torch.zeros(H, N, dtype=F64))
    torch.testing.assert_close(weights[1].sum(-1), torch.ones(H, dtype=F64))


@pytest.mark.parametrize("scale", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck(scale, masked):
    addressing = ScaledDotProductAddressing(scale=scale)

    def step(queries, keys):
        return addressing(queries, Story(keys, MASK) if masked else MatrixState(keys), ())[0]

    assert gradcheck(step, (_randn(B, H, W, seed=1, grad=True), _randn(B, N, W, seed=2, grad=True)))


def test_param_size_is_the_word_size_and_no_state():
    memory = MatrixMemory(slots=N, word_size=W)
    addressing = ScaledDotProductAddressing()
    assert addressing.param_size(memory) == W
    assert addressing.initial_state(B, H, memory, torch.device("cpu"), F64) == ()
    assert list(addressing.parameters()) == [] and list(addressing.buffers()) == []


def test_a_memn2n_hop_query():
    """MemN2N passes its state u as params [B, 1, d] over the input-memory embeddings and the sentence mask."""
    u, embeddings = _randn(B, 1, W, seed=1), _randn(B, N, W, seed=2)
    weights, _ = ScaledDotProductAddressing(scale=False)(u, Story(embeddings, MASK), ())
    assert weights.shape == (B, 1, N)
    expected = torch.softmax((u @ embeddings.mT).masked_fill(~MASK.unsqueeze(1), float("-inf")), -1)
    torch.testing.assert_close(weights, expected)


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_scale_must_be_a_bool(bad):
    with pytest.raises(ConfigError, match=rf"^ScaledDotProductAddressing: scale must be true or false, got {bad!r}; set scale to true or false\.$"):
        ScaledDotProductAddressing(scale=bad)


def test_wrong_query_width_says_both_shapes():
    with pytest.raises(ShapeError, match=r"^ScaledDotProductAddressing params has shape \[3, 2, 6\] but \[3, h, 5\] was expected; each head's query is W numbers\.$"):
        ScaledDotProductAddressing()(_randn(B, H, W + 1, seed=1), MatrixState(_randn(B, N, W, seed=2)), ())


@pytest.mark.parametrize("scale", [True, False])
def test_scores_are_the_raw_scores_before_the_softmax(scale):
    """MemN2N's linear start reads ``scores(params, memory_state)`` and skips the softmax."""
    addressing = ScaledDotProductAddressing(scale=scale)
    queries, state = _randn(B, H, W, seed=1), Story(_randn(B, N, W, seed=2), MASK)
    scores = addressing.scores(queries, state)
    torch.testing.assert_close(scores, queries @ state.memory.mT / (math.sqrt(W) if scale else 1.0))
    torch.testing.assert_close(addressing(queries, state, ())[0], attention_weights(scores, MASK))
