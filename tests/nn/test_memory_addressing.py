"""The matrix memory's read and erase/add write, and content addressing (mannkit.nn.memory, mannkit.nn.addressing).

Sizes are distinct (B=3, h=2, N=7, W=5) so that a transposed axis breaks a test.
"""

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from mannkit.core.errors import ConfigError
from mannkit.nn.addressing import EPS, ContentAddressing, content_weights, cosine_similarity, cosine_similarity_parts
from mannkit.nn.memory import MatrixMemory, MatrixState, erase_add, outer_sum, read

B, H, N, W = 3, 2, 7, 5
F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int = 0, grad: bool = True) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=F64).requires_grad_(grad)


def _weighting(*shape: int, seed: int = 0, grad: bool = True) -> torch.Tensor:
    return torch.softmax(torch.randn(*shape, generator=_gen(seed), dtype=F64), -1).requires_grad_(grad)


# -- gradients ---------------------------------------------------------------------------


def test_read_gradcheck():
    assert gradcheck(read, (_weighting(B, H, N, seed=1), _randn(B, N, W, seed=2)))


@pytest.mark.parametrize("heads", [1, 3])
def test_erase_add_gradcheck(heads):
    memory = _randn(B, N, W, seed=1)
    weights = _weighting(B, heads, N, seed=2)
    erase = torch.rand(B, heads, W, generator=_gen(3), dtype=F64).requires_grad_()
    add = _randn(B, heads, W, seed=4)
    assert gradcheck(erase_add, (memory, weights, erase, add))


def test_cosine_similarity_gradcheck():
    assert gradcheck(cosine_similarity, (_randn(B, H, W, seed=1), _randn(B, N, W, seed=2)))


def test_content_weights_gradcheck():
    strengths = (torch.rand(B, H, generator=_gen(3), dtype=F64) * 5).requires_grad_()
    assert gradcheck(content_weights, (_randn(B, H, W, seed=1), strengths, _randn(B, N, W, seed=2)))


# -- read and write ----------------------------------------------------------------------


def test_erase_add_by_hand_on_a_2x3_memory():
    memory = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])  # [B=1, N=2, W=3]
    weights = torch.tensor([[[1.0, 0.5]]])  # [1, h=1, N]
    erase = torch.tensor([[[1.0, 0.0, 0.5]]])  # [1, 1, W]
    add = torch.tensor([[[10.0, 20.0, 30.0]]])  # [1, 1, W]
    # keep = 1 - w e^T = [[0, 1, 0.5], [0.5, 1, 0.75]]
    # M * keep = [[0, 2, 1.5], [2, 5, 4.5]];  w a^T = [[10, 20, 30], [5, 10, 15]]
    expected = torch.tensor([[[10.0, 22.0, 31.5], [7.0, 15.0, 19.5]]])
    torch.testing.assert_close(erase_add(memory, weights, erase, add), expected)


def _erase_add_reference(memory, weights, erase, add):
    """The NTM write head by head: every head erases (a product), then every head adds (a sum)."""
    out = memory.clone()
    for b in range(memory.shape[0]):
        for h in range(weights.shape[1]):
            out[b] = out[b] * (1 - torch.outer(weights[b, h], erase[b, h]))  # M (1 - w_h e_h^T)
        for h in range(weights.shape[1]):
            out[b] = out[b] + torch.outer(weights[b, h], add[b, h])  # + w_h a_h^T
    return out


@pytest.mark.parametrize("heads", [1, 2, 3])
def test_erase_add_matches_a_head_by_head_loop(heads):
    memory = _randn(B, N, W, seed=1, grad=False)
    weights = _weighting(B, heads, N, seed=2, grad=False)
    erase = torch.rand(B, heads, W, generator=_gen(3), dtype=F64)
    add = _randn(B, heads, W, seed=4, grad=False)
    torch.testing.assert_close(erase_add(memory, weights, erase, add), _erase_add_reference(memory, weights, erase, add))


def test_erase_add_with_zero_weights_leaves_memory_unchanged():
    memory = _randn(B, N, W, seed=1, grad=False)
    weights = torch.zeros(B, 3, N, dtype=F64)
    erase, add = torch.ones(B, 3, W, dtype=F64), torch.ones(B, 3, W, dtype=F64)
    torch.testing.assert_close(erase_add(memory, weights, erase, add), memory)


def test_read_with_one_hot_weights_returns_that_row():
    memory = _randn(B, N, W, seed=1, grad=False)
    rows = torch.tensor([[4, 0], [6, 2], [1, 1]])  # [B, h]
    weights = torch.nn.functional.one_hot(rows, N).to(F64)  # [B, h, N]
    reads = read(weights, memory)
    assert reads.shape == (B, H, W)
    for b in range(B):
        for h in range(H):
            torch.testing.assert_close(reads[b, h], memory[b, rows[b, h]])


# -- content addressing ------------------------------------------------------------------


def test_cosine_similarity_of_a_key_with_itself_is_one():
    memory = _randn(B, N, W, seed=1, grad=False)
    sims = cosine_similarity(memory, memory)  # every row as a key: [B, N, N]
    torch.testing.assert_close(torch.diagonal(sims, dim1=1, dim2=2), torch.ones(B, N, dtype=F64), atol=1e-5, rtol=0)
    assert sims.abs().max() <= 1


def test_cosine_similarity_matches_a_reference():
    keys, memory = _randn(B, H, W, seed=1, grad=False), _randn(B, N, W, seed=2, grad=False)
    reference = torch.nn.functional.cosine_similarity(keys.unsqueeze(2), memory.unsqueeze(1), dim=-1)  # [B, h, N]
    torch.testing.assert_close(cosine_similarity(keys, memory), reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("zero_keys", [False, True])
def test_cosine_similarity_with_zero_memory_is_zero_without_nan(zero_keys):
    keys = torch.zeros(B, H, W, requires_grad=True) if zero_keys else torch.randn(B, H, W, generator=_gen(1)).requires_grad_()
    memory = torch.zeros(B, N, W, requires_grad=True)
    sims = cosine_similarity(keys, memory)
    assert torch.equal(sims, torch.zeros(B, H, N))
    (sims * torch.randn(B, H, N, generator=_gen(2))).sum().backward()
    assert torch.isfinite(keys.grad).all() and torch.isfinite(memory.grad).all()


def test_content_weights_are_a_distribution():
    for seed in range(10):
        keys, memory = _randn(B, H, W, seed=seed, grad=False), _randn(B, N, W, seed=seed + 100, grad=False)
        strengths = torch.rand(B, H, generator=_gen(seed), dtype=F64) * 20
        weights = content_weights(keys, strengths, memory)
        assert weights.shape == (B, H, N)
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, dtype=F64))


def test_content_weights_with_huge_strength_pick_the_best_match():
    memory = _randn(B, N, W, seed=1, grad=False)
    best = torch.tensor([[5, 2], [0, 6], [3, 3]])  # [B, h]
    keys = 3 * memory[torch.arange(B).unsqueeze(1), best]  # a scaled copy of the chosen row: [B, h, W]
    weights = content_weights(keys, torch.full((B, H), 1e4, dtype=F64), memory)
    torch.testing.assert_close(weights, torch.nn.functional.one_hot(best, N).to(F64))


def test_content_weights_with_zero_strength_are_uniform():
    weights = content_weights(_randn(B, H, W, grad=False), torch.zeros(B, H, dtype=F64), _randn(B, N, W, seed=1, grad=False))
    torch.testing.assert_close(weights, torch.full((B, H, N), 1 / N, dtype=F64))


def test_content_addressing_splits_key_and_strength():
    memory = MatrixMemory(slots=N, word_size=W, init="random")
    addressing = ContentAddressing()
    assert addressing.param_size(memory) == W + 1
    params = _randn(B, H, W + 1, seed=1, grad=False)
    state = MatrixState(_randn(B, N, W, seed=2, grad=False))
    weights, new_state = addressing(params, state, ())
    expected = content_weights(params[..., :W], torch.nn.functional.softplus(params[..., W]), state.memory)
    torch.testing.assert_close(weights, expected)
    assert new_state == ()


# -- MatrixMemory ------------------------------------------------------------------------


def test_constant_init():
    memory = MatrixMemory(slots=N, word_size=W, init="constant", init_value=0.25)
    state = memory.initial_state(B, torch.device("cpu"), F64)
    assert isinstance(state, MatrixState)
    assert state.memory.shape == (B, N, W) and state.memory.dtype == F64
    assert torch.equal(state.memory, torch.full((B, N, W), 0.25, dtype=F64))
    assert memory.word_size == W and memory.initial is None
    assert list(memory.parameters()) == []


def test_learned_init_is_one_parameter_shared_across_the_batch():
    torch.manual_seed(0)
    memory = MatrixMemory(slots=N, word_size=W, init="learned", init_std=0.5)
    assert [p.shape for p in memory.parameters()] == [torch.Size([N, W])]
    state = memory.initial_state(B, torch.device("cpu"), torch.float32)
    assert state.memory.shape == (B, N, W)
    for b in range(B):
        assert torch.equal(state.memory[b], memory.initial.detach())
    state.memory.sum().backward()
    torch.testing.assert_close(memory.initial.grad, torch.full((N, W), float(B)))


def test_random_init_is_fresh_noise_of_the_given_std():
    torch.manual_seed(0)
    memory = MatrixMemory(slots=50, word_size=40, init="random", init_std=0.5)
    first = memory.initial_state(B, torch.device("cpu"), F64).memory
    second = memory.initial_state(B, torch.device("cpu"), F64).memory
    assert first.shape == (B, 50, 40)
    assert not torch.equal(first, second)
    assert math.isclose(first.std().item(), 0.5, rel_tol=0.05)
    assert abs(first.mean().item()) < 0.03
    assert list(memory.parameters()) == []


def test_read_and_write_methods_use_the_state():
    memory = MatrixMemory(slots=N, word_size=W, init="constant", init_value=0.0)
    state = memory.initial_state(B, torch.device("cpu"), F64)
    weights = torch.nn.functional.one_hot(torch.tensor([[1, 4], [2, 5], [6, 0]]), N).to(F64)  # [B, h, N], distinct rows
    add = _randn(B, H, W, seed=1, grad=False)
    written = memory.write(weights, torch.ones(B, H, W, dtype=F64), add, state)
    assert isinstance(written, MatrixState)
    torch.testing.assert_close(memory.read(weights, written), add)  # each head reads back what it wrote
    assert torch.equal(state.memory, torch.zeros(B, N, W, dtype=F64))  # the old state is untouched
    assert memory.describe(written)["memory"] is written.memory


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slots": 0}, r"MatrixMemory: slots must be a positive integer, got 0; set it to 1 or more\."),
        ({"slots": 2.5}, r"MatrixMemory: slots must be a positive integer, got 2\.5;"),
        ({"slots": True}, r"MatrixMemory: slots must be a positive integer, got True;"),
        ({"word_size": -3}, r"MatrixMemory: word_size must be a positive integer, got -3; set it to 1 or more\."),
        ({"init": "zeros"}, r"MatrixMemory: init must be constant, learned or random, got 'zeros'; pick one of those\."),
        ({"init_std": -0.5}, r"MatrixMemory: init_std must be a non-negative number, got -0\.5;"),
    ],
)
def test_matrix_memory_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MatrixMemory(**kwargs)


# -- hand-written backwards (autograd.Functions behind read, erase_add, cosine_similarity) --
# Both the single-head paths (broadcast products) and the multi-head paths (bmm), first and
# second order, and with only some inputs requiring a gradient (the skipped branches).


@pytest.mark.parametrize("heads", [1, 3])
def test_outer_sum_is_the_sum_of_outer_products(heads):
    weights, vectors = _weighting(B, heads, N, seed=1, grad=False), _randn(B, heads, W, seed=2, grad=False)
    expected = torch.einsum("bhn,bhw->bnw", weights, vectors)
    torch.testing.assert_close(outer_sum(weights, vectors), expected)


@pytest.mark.parametrize("heads", [1, 3])
def test_read_gradgradcheck(heads):
    args = (_weighting(B, heads, N, seed=1), _randn(B, N, W, seed=2))
    assert gradcheck(read, args)
    assert gradgradcheck(read, args)


@pytest.mark.parametrize("heads", [1, 3])
def test_erase_add_gradgradcheck(heads):
    erase = torch.rand(B, heads, W, generator=_gen(3), dtype=F64).requires_grad_()
    args = (_randn(B, N, W, seed=1), _weighting(B, heads, N, seed=2), erase, _randn(B, heads, W, seed=4))
    assert gradgradcheck(erase_add, args)


@pytest.mark.parametrize("heads", [1, 3])
def test_cosine_similarity_gradcheck_and_gradgradcheck(heads):
    args = (_randn(B, heads, W, seed=1), _randn(B, N, W, seed=2))
    assert gradcheck(cosine_similarity, args)
    assert gradgradcheck(cosine_similarity, args)


@pytest.mark.parametrize("needs", ["memory", "weights", "erase", "add"])
def test_erase_add_gradient_of_one_input_alone(needs):
    inputs = {
        "memory": _randn(B, N, W, seed=1, grad=False),
        "weights": _weighting(B, 1, N, seed=2, grad=False),
        "erase": torch.rand(B, 1, W, generator=_gen(3), dtype=F64),
        "add": _randn(B, 1, W, seed=4, grad=False),
    }
    inputs[needs].requires_grad_()
    assert gradcheck(erase_add, tuple(inputs.values()))


@pytest.mark.parametrize("needs", ["keys", "memory"])
def test_cosine_similarity_gradient_of_one_input_alone(needs):
    keys, memory = _randn(B, 1, W, seed=1, grad=needs == "keys"), _randn(B, N, W, seed=2, grad=needs == "memory")
    assert gradcheck(cosine_similarity, (keys, memory))
    assert gradcheck(read, (_weighting(B, 1, N, seed=3, grad=needs == "keys"), memory))


def test_cosine_similarity_parts_match_the_similarity_and_norms():
    keys, memory = _randn(B, H, W, seed=1, grad=False), _randn(B, N, W, seed=2, grad=False)
    sims, key_sq, mem_sq, scale = cosine_similarity_parts(keys, memory)
    dots = torch.einsum("bhw,bnw->bhn", keys, memory)
    norms = torch.sqrt((keys * keys).sum(-1) + EPS).unsqueeze(-1) * torch.sqrt((memory * memory).sum(-1) + EPS).unsqueeze(1)
    torch.testing.assert_close(sims, dots / norms)
    torch.testing.assert_close(key_sq, (keys * keys).sum(-1, keepdim=True) + EPS)  # [B, h, 1]
    torch.testing.assert_close(mem_sq, (memory * memory).sum(-1).unsqueeze(1) + EPS)  # [B, 1, N]
    torch.testing.assert_close(scale, 1 / (key_sq.sqrt() * mem_sq.sqrt()))


def test_erase_add_on_an_expanded_learned_memory_sums_the_batch_gradient():
    """A learned initial memory ``[N, W]`` is expanded over the batch; its gradient is the sum over B."""
    initial = _randn(N, W, seed=1)
    weights, erase, add = _weighting(B, 1, N, seed=2, grad=False), torch.rand(B, 1, W, generator=_gen(3), dtype=F64), _randn(B, 1, W, seed=4, grad=False)
    assert gradcheck(lambda m: erase_add(m.expand(B, N, W), weights, erase, add), (initial,))
