"""Multi-head addressing (plugins/mannkit_attention/multi_head.py): the mixture, hand cases, masks, gradients, errors.

Sizes are distinct (B=3, h=2, N=7, W=5, A=3 attention heads, D=2) so that a transposed axis breaks a test.
"""

import math
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError, ShapeError
from mannkit.nn import MatrixMemory, MatrixState, MLPController, ReadHead, WriteHead
from mannkit_attention import MultiHeadAddressing, ScaledDotProductAddressing, multi_head_weights

B, H, N, W, A, D = 3, 2, 7, 5, 3, 2
F64 = torch.float64
MASK = torch.tensor([[True] * 7, [True, False, True, False, True, True, False], [False] * 6 + [True]])  # [B, N]


class Story(NamedTuple):
    memory: torch.Tensor  # [B, N, W]
    mask: torch.Tensor  # bool [B, N]


def _randn(*shape: int, seed: int, grad: bool = False, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype).requires_grad_(grad)


def _bound(num_heads: int = A, head_size: int | None = D, seed: int = 0) -> MultiHeadAddressing:
    torch.manual_seed(seed)
    addressing = MultiHeadAddressing(num_heads=num_heads, head_size=head_size)
    addressing.bind(MatrixMemory(slots=N, word_size=W))
    return addressing.double()


def test_multi_head_weights_is_the_mixture_of_per_head_softmaxes():
    queries, keys = _randn(B, H, A, D, seed=1), _randn(B, N, A, D, seed=2)
    mixture = torch.softmax(_randn(B, H, A, seed=3), -1)
    expected = torch.zeros(B, H, N, dtype=F64)
    for a in range(A):  # sum_a pi_a softmax_n(q_a . k_{a,n} / sqrt(D)), one attention head at a time
        scores = torch.stack([(queries[:, :, a] * keys[:, n, a].unsqueeze(1)).sum(-1) for n in range(N)], -1)  # [B, h, N]
        expected += mixture[..., a : a + 1] * torch.softmax(scores / math.sqrt(D), -1)
    torch.testing.assert_close(multi_head_weights(queries, keys, mixture, None), expected)


def test_one_head_with_identity_projections_is_scaled_dot_product_attention():
    addressing = _bound(num_heads=1, head_size=W)
    with torch.no_grad():
        addressing.query.weight.copy_(torch.eye(W))
        addressing.key.weight.copy_(torch.eye(W))
    queries, keys = _randn(B, H, W, seed=1), _randn(B, N, W, seed=2)
    expected, _ = ScaledDotProductAddressing()(queries, MatrixState(keys), ())
    torch.testing.assert_close(addressing(queries, MatrixState(keys), ())[0], expected)


def test_two_heads_by_hand():
    """Head 0 looks at coordinate 0 of the words, head 1 at coordinate 1; the gate picks head 1 with 3/4."""
    addressing = MultiHeadAddressing(num_heads=2, head_size=1)
    addressing.bind(MatrixMemory(slots=2, word_size=2))
    addressing.double()
    with torch.no_grad():
        addressing.query.weight.copy_(torch.eye(2))  # q_0 = x[0], q_1 = x[1]
        addressing.key.weight.copy_(torch.eye(2))  # k_{0,n} = M[n, 0], k_{1,n} = M[n, 1]
        addressing.gate.bias.copy_(torch.tensor([0.0, math.log(3.0)]))  # pi = (1/4, 3/4), whatever the query
    memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=F64)  # [B=1, N=2, W=2]
    weights, _ = addressing(torch.tensor([[[1.0, 2.0]]], dtype=F64), MatrixState(memory), ())
    head0 = torch.softmax(torch.tensor([1.0, 0.0], dtype=F64), -1)  # scores x[0] M[n, 0] / sqrt(1)
    head1 = torch.softmax(torch.tensor([0.0, 2.0], dtype=F64), -1)
    torch.testing.assert_close(weights, (0.25 * head0 + 0.75 * head1).view(1, 1, 2))


def test_the_gate_reads_the_query():
    addressing = _bound()
    with torch.no_grad():
        addressing.gate.weight.copy_(_randn(A, W, seed=4))
    queries, keys = _randn(B, H, W, seed=1), _randn(B, N, W, seed=2)
    q = addressing.query(queries).view(B, H, A, D)  # [B, h, A*D] -> [B, h, A, D]
    k = addressing.key(keys).view(B, N, A, D)  # [B, N, A*D] -> [B, N, A, D]
    pi = torch.softmax(queries @ addressing.gate.weight.T + addressing.gate.bias, -1)  # [B, h, A]
    torch.testing.assert_close(addressing(queries, MatrixState(keys), ())[0], multi_head_weights(q, k, pi, None))


@pytest.mark.parametrize("masked", [False, True])
def test_weights_are_a_weighting_and_masked_slots_get_exactly_zero(masked):
    addressing = _bound()
    for seed in range(10):
        keys = 3 * _randn(B, N, W, seed=seed)
        if masked:
            keys[~MASK] = 1e3
        weights, _ = addressing(3 * _randn(B, H, W, seed=seed + 100), Story(keys, MASK) if masked else MatrixState(keys), ())
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, dtype=F64))
        if masked:
            assert (weights[~MASK.unsqueeze(1).expand(B, H, N)] == 0).all()


@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_inputs_and_parameters(masked):
    addressing = _bound()
    with torch.no_grad():
        addressing.gate.weight.copy_(_randn(A, W, seed=4))
    names = [name for name, _ in addressing.named_parameters()]

    def step(queries, keys, *parameters):
        state = Story(keys, MASK) if masked else MatrixState(keys)
        return torch.func.functional_call(addressing, dict(zip(names, parameters)), (queries, state, ()))[0]

    inputs = (_randn(B, H, W, seed=1, grad=True), _randn(B, N, W, seed=2, grad=True))
    parameters = tuple(p.detach().clone().requires_grad_() for p in addressing.parameters())
    assert gradcheck(step, inputs + parameters)


def test_bind_creates_the_projections_from_the_word_size():
    addressing = MultiHeadAddressing(num_heads=2)
    memory = MatrixMemory(slots=N, word_size=11)
    addressing.bind(memory)
    addressing.bind(memory)  # a second bind to the same sizes is a no-op
    assert addressing.head_dim == 11 // 2
    assert addressing.query.weight.shape == addressing.key.weight.shape == (2 * 5, 11)
    assert addressing.gate.weight.shape == (2, 11) and not addressing.gate.weight.any()
    assert addressing.param_size(memory) == 11
    assert MultiHeadAddressing(num_heads=20).param_size(memory) == 11
    tiny = MultiHeadAddressing(num_heads=20)
    tiny.bind(memory)
    assert tiny.head_dim == 1  # at least one number per attention head


def test_rebinding_to_another_word_size_is_refused():
    addressing = _bound()
    with pytest.raises(ConfigError, match=r"^MultiHeadAddressing is already built for \{'word_size': 5\} and cannot be rebuilt"):
        addressing.bind(MatrixMemory(slots=N, word_size=W + 1))


def test_forward_before_bind_and_a_wrong_memory_are_refused():
    state = MatrixState(_randn(B, N, W, seed=2))
    with pytest.raises(ConfigError, match=r"^MultiHeadAddressing is not built yet; call bind\(memory\) before forward \(ReadHead, WriteHead and MemoryCell do this\)\.$"):
        MultiHeadAddressing()(_randn(B, H, W, seed=1), state, ())
    with pytest.raises(ConfigError, match=r"^MultiHeadAddressing was built for words of W=5 but the memory has W=6; use a fresh addressing for this memory\.$"):
        _bound()(_randn(B, H, W + 1, seed=1), MatrixState(_randn(B, N, W + 1, seed=2)), ())
    with pytest.raises(ShapeError, match=r"^MultiHeadAddressing params has shape \[3, 2, 4\] but \[3, h, 5\] was expected"):
        _bound()(_randn(B, H, W - 1, seed=1), state, ())


@pytest.mark.parametrize("name, bad", [("num_heads", 0), ("num_heads", 2.0), ("num_heads", True), ("head_size", 0), ("head_size", "4")])
def test_bad_sizes_are_refused_in_one_sentence(name, bad):
    with pytest.raises(ConfigError, match=rf"^MultiHeadAddressing: {name} must be a positive integer, got {bad!r}; set {name} to 1 or more\.$"):
        MultiHeadAddressing(**{name: bad})


def test_every_parameter_learns_in_a_cell_over_a_random_memory():
    """Over a memory with distinct rows the query, key and gate projections all get real gradients."""
    torch.manual_seed(0)
    cell = MemoryCell(
        MLPController(hidden_size=13, activation="tanh"), MatrixMemory(slots=N, word_size=W, init="random"),
        [WriteHead(MultiHeadAddressing(num_heads=A)), ReadHead(MultiHeadAddressing(num_heads=A), count=H)],
    )
    cell.bind(4, 3)
    x = _randn(B, 6, 4, seed=1, dtype=torch.float32)
    loss = F.binary_cross_entropy_with_logits(cell(x).logits, (x[..., :3] > 0).float())
    loss.backward()
    for name, p in cell.named_parameters():
        if ".addressing." in name:
            assert torch.isfinite(p.grad).all() and p.grad.abs().max() > 1e-6, name


def test_one_attention_head_has_no_gate():
    addressing = _bound(num_heads=1, head_size=3)
    assert addressing.gate is None and [n for n, _ in addressing.named_parameters()] == ["query.weight", "key.weight"]
    weights, _ = addressing(_randn(B, H, W, seed=1), MatrixState(_randn(B, N, W, seed=2)), ())
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, dtype=F64))
