"""The sparse DNC memory (plugins/mannkit_dnc/sparse.py, sparse_ops.py): in-place rows under autograd,
sparse addressing, LRU allocation, sparse links, safety of the shared buffers, conformance, learning.

Sizes are distinct per axis (B=3, R=2, K=5, L=4, W=7, N=13; S = K + 1 = 6) so that a transposed axis breaks.
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import mannkit.callbacks  # noqa: F401  (check_config resolves short names)
import mannkit.systems  # noqa: F401
from mannkit.cell import MemoryCell
from mannkit.cli import check_config, main
from mannkit.core.errors import ConfigError, ShapeError
from mannkit.nn import ContentAddressing, LSTMController, MLPController, ReadHead, WriteHead, content_weights
from mannkit.nn.addressing import EPS
from mannkit.tasks import CopyTask
from mannkit.tasks.base import make_generator
from mannkit.testing import check_component
from mannkit_dnc import sparse, sparse_ops
from mannkit_dnc.heads import DNCReadHead, DNCWriteHead
from mannkit_dnc.sparse import SparseDNCMemory
from mannkit_dnc.sparse_mechanisms import erase_add_rows, least_used, mix_read_weights  # the pure functions
from mannkit_dnc.sparse_mechanisms import sparse_content_weights, sparse_write_weights, top_k_search
from mannkit_dnc.sparse_ops import (
    gather_rows,
    link_weightings,
    new_token,
    scatter_rows,
    snapshot,
    sparse_lookup,
    sparse_to_dense,
    top_k_union,
    update_links,
    update_precedence,
)

B, R, K, L, W, N = 3, 2, 5, 4, 7, 13
F64 = torch.float64
CPU = torch.device("cpu")
ROOT = Path(__file__).parents[3]


def _randn(*shape: int, seed: int, dtype: torch.dtype = F64, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype).requires_grad_(grad)


def _memory(**kwargs) -> SparseDNCMemory:
    read_heads = kwargs.pop("read_heads", R)
    memory = SparseDNCMemory(**(dict(slots=N, word_size=W, k=K, link_k=L) | kwargs))
    memory.attach_read_heads(read_heads)
    return memory


def _state_from(memory: SparseDNCMemory, m0: torch.Tensor, token: torch.Tensor | None = None):
    """A fresh state whose memory holds ``m0`` (and whose token is ``token``, e.g. ``m0`` itself to differentiate in it)."""
    state = memory.initial_state(m0.shape[0], CPU, m0.dtype)
    state.memory.copy_(m0.detach())
    state.norms.copy_(m0.detach().square().sum(-1).add(EPS).sqrt())
    state.frontier.fill_(m0.shape[1])  # every row may differ from init_value
    return state if token is None else state._replace(token=token)


def _write_params(steps: int, batch: int, seed: int, reads: int = R, width: int = W) -> torch.Tensor:
    """Raw DNC write-head parameters ``[T, B, 1, 3W + 3 + R]``, gates pushed towards writing."""
    raw = _randn(steps, batch, 1, 3 * width + 3 + reads, seed=seed)
    raw[..., -1] += 3.0  # write gate well open
    return raw


def _unroll(memory, state, write_params, read_params, record: bool = False):
    """Steps of (write, read) through the real DNC heads; returns the reads of each step, the state and traces."""
    write_head, read_head = DNCWriteHead(), DNCReadHead(count=memory.read_heads)
    outputs, traces = [], []
    for t in range(write_params.shape[0]):
        out = write_head(write_params[t], memory, state, (), record)
        traces.append(out.trace)
        out = read_head(read_params[t], memory, out.memory_state, (), record)
        outputs.append(out.reads)
        traces.append(out.trace)
        state = out.memory_state
    return outputs, state, traces


# -- the in-place row operations ---------------------------------------------------------------
def _row_program(m0: torch.Tensor, new_a: torch.Tensor, new_b: torch.Tensor, scale: torch.Tensor):
    """Several writes and reads of rows on a fresh buffer, some rows read after being overwritten."""
    buffer = m0.detach().clone()
    token = m0
    i1 = torch.tensor([[0, 3], [4, 1]])
    rows, token = gather_rows(token, buffer, i1)  # [2, 2, W]
    token = scatter_rows(token, buffer, i1, rows * torch.sigmoid(scale) + new_a)
    i2 = torch.tensor([[3, 5], [1, 0]])
    read, token = gather_rows(token, buffer, i2)
    token = scatter_rows(token, buffer, torch.tensor([[5, 2], [0, 4]]), read * scale + new_b)
    i3 = torch.tensor([[0, 5], [2, 4]])
    last, token = gather_rows(token, buffer, i3)
    return read, last, snapshot(token, buffer)


def _row_reference(m0, new_a, new_b, scale):
    """The same program out of place, in plain autograd."""
    at = lambda i: i.unsqueeze(-1).expand(-1, -1, m0.shape[-1])  # noqa: E731
    i1 = torch.tensor([[0, 3], [4, 1]])
    memory = m0.scatter(1, at(i1), m0.gather(1, at(i1)) * torch.sigmoid(scale) + new_a)
    read = memory.gather(1, at(torch.tensor([[3, 5], [1, 0]])))
    memory = memory.scatter(1, at(torch.tensor([[5, 2], [0, 4]])), read * scale + new_b)
    return read, memory.gather(1, at(torch.tensor([[0, 5], [2, 4]]))), memory


def _row_inputs():
    return (_randn(2, 6, 3, seed=1, grad=True), _randn(2, 2, 3, seed=2, grad=True), _randn(2, 2, 3, seed=3, grad=True),
            _randn(2, 2, 3, seed=4, grad=True))


def test_row_operations_gradcheck():
    assert gradcheck(_row_program, _row_inputs())


def test_row_operations_match_an_out_of_place_reference():
    inputs = _row_inputs()
    ours, reference = _row_program(*inputs), _row_reference(*inputs)
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b)
    weights = [_randn(*t.shape, seed=10 + i) for i, t in enumerate(ours)]
    grads = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, ours)), inputs)
    expected = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, reference)), inputs)
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b)


def test_the_gradient_travels_on_one_dense_accumulator_and_the_buffer_is_never_read_back():
    m0, new_a, new_b, scale = _row_inputs()
    read, last, _ = _row_program(m0, new_a, new_b, scale)
    expected = torch.autograd.grad((read.sum() + last.sum()), m0, retain_graph=True)[0]
    # the backward must not depend on the buffer: a program whose buffer is gone gives the same gradient
    torch.testing.assert_close(torch.autograd.grad(read.sum() + last.sum(), m0)[0], expected)
    token = new_token(torch.zeros(2, 6, 3))
    assert token.shape == (2, 6, 3) and token.stride() == (0, 0, 0)


def test_scatter_rows_writes_in_place_and_checks_its_arguments():
    buffer = torch.zeros(1, 4, 2)
    scatter_rows(new_token(buffer), buffer, torch.tensor([[2]]), torch.ones(1, 1, 2))
    assert buffer[0, 2].tolist() == [1.0, 1.0] and buffer.sum() == 2
    with pytest.raises(ValueError, match="must not require grad"):
        gather_rows(new_token(buffer), buffer.clone().requires_grad_(), torch.tensor([[0]]))
    with pytest.raises(ValueError, match=r"index \[2\] be \[B, S\]"):
        gather_rows(new_token(buffer), buffer, torch.tensor([0, 1]))


# -- sparse vectors -------------------------------------------------------------------------------
def test_top_k_union_sums_repeats_by_hand():
    index, values = torch.tensor([[4, 1, 4, 9, 1]]), torch.tensor([[0.1, 0.2, 0.3, 0.05, 0.1]])
    top, totals = top_k_union(index, values, 3)
    assert top.tolist() == [[4, 1, 9]]
    torch.testing.assert_close(totals, torch.tensor([[0.4, 0.3, 0.05]]))
    top, totals = top_k_union(torch.tensor([[2, 2, 2]]), torch.tensor([[0.25, 0.25, 0.5]]), 2)  # one distinct slot
    assert top[0, 0] == 2 and totals.tolist() == [[1.0, 0.0]]  # the rest has value 0


def test_top_k_union_gradcheck():
    index = torch.tensor([[[3, 1, 3, 6, 1, 0]], [[2, 2, 5, 4, 0, 1]]])
    values = torch.rand(2, 1, 6, generator=torch.Generator().manual_seed(0), dtype=F64).requires_grad_()
    assert gradcheck(lambda v: top_k_union(index, v, 3)[1], (values,))


def test_sparse_lookup_and_dense_copies_sum_repeats():
    index, values = torch.tensor([[2, 0, 2]]), torch.tensor([[0.25, 0.5, 0.125]])
    assert sparse_lookup(torch.tensor([[2, 1, 0]]), index, values).tolist() == [[0.375, 0.0, 0.5]]
    assert sparse_to_dense(index, values, 4).tolist() == [[0.5, 0.0, 0.375, 0.0]]


# -- addressing mechanisms ------------------------------------------------------------------------
def test_top_k_search_finds_the_rows_of_highest_cosine():
    memory, keys = _randn(B, N, W, seed=1), _randn(B, R, W, seed=2)
    found = top_k_search(memory, memory.norm(dim=-1), keys, K)  # [B, R, K]
    cosine = F.cosine_similarity(keys.unsqueeze(2), memory.unsqueeze(1), dim=-1)  # [B, R, N]
    expected = cosine.topk(K, dim=-1).indices
    assert torch.equal(found.sort(-1).values, expected.sort(-1).values)


def test_the_search_past_the_frontier_finds_rows_as_good_as_a_full_search():
    """Rows from the frontier on all hold init_value, so scanning K + 1 of them loses nothing but ties."""
    memory = _memory(slots=61, init_value=0.25)
    state = memory.initial_state(B, CPU, F64)
    with torch.no_grad():
        _, state, traces = _unroll(memory, state, _write_params(3, B, seed=1), _randn(3, B, R, W + 4, seed=2), record=True)
    written = torch.stack([t["write_weights"][:, 0] for t in traces if "write_weights" in t]).gt(0).any(0)  # [B, N]
    highest = torch.where(written, torch.arange(61), -1).amax(-1)
    assert torch.equal(state.frontier, highest + 1)
    span = memory._span(state)
    assert span == int(state.frontier.max()) + K + 1 < 61
    keys = torch.cat([_randn(B, R, W, seed=3), torch.ones(B, 1, W, dtype=F64)], 1)  # the last key favours init rows
    cosine = F.cosine_similarity(keys.unsqueeze(2), state.memory.unsqueeze(1), dim=-1)  # [B, R + 1, N]
    found = top_k_search(state.memory[:, :span], state.norms[:, :span], keys, K)
    torch.testing.assert_close(cosine.gather(-1, found).sort(-1).values, cosine.topk(K, -1).values.sort(-1).values)


def test_with_k_equal_to_n_the_sparse_content_weighting_is_the_dense_one():
    memory, keys, strengths = _randn(B, N, W, seed=1), _randn(B, R, W, seed=2), 1 + torch.rand(B, R, dtype=F64) * 4
    index = top_k_search(memory, memory.norm(dim=-1), keys, N)  # every slot, in some order
    rows = memory.gather(1, index.view(B, R * N, 1).expand(-1, -1, W)).view(B, R, N, W)  # [B, R N, W] -> [B, R, N, W]
    ours = sparse_to_dense(index, sparse_content_weights(keys, rows, strengths), N)
    torch.testing.assert_close(ours, content_weights(keys, strengths, memory))


def test_sparse_content_weights_gradcheck():
    keys, rows, strengths = _randn(B, R, W, seed=1, grad=True), _randn(B, R, K, W, seed=2, grad=True), _randn(B, R, seed=3)
    assert gradcheck(sparse_content_weights, (keys, rows, (1 + strengths.abs()).requires_grad_()))


def test_write_weighting_and_erase_add_rows_by_hand():
    content, gate_a, gate_w = torch.tensor([[0.75, 0.25]]), torch.tensor([[0.5]]), torch.tensor([[0.5]])
    assert sparse_write_weights(content, gate_a, gate_w).tolist() == [[0.1875, 0.0625, 0.25]]
    rows = torch.tensor([[[1.0, 2.0], [4.0, 4.0]]])  # [B=1, S=2, W=2]
    new = erase_add_rows(rows, torch.tensor([[1.0, 0.5]]), torch.tensor([[[1.0, 0.5]]]), torch.tensor([[[8.0, 8.0]]]))
    assert new.tolist() == [[[8.0, 9.0], [6.0, 7.0]]]  # (1 - w e) M + w v


def test_erase_add_rows_and_write_weights_gradcheck():
    rows, weights = _randn(B, K + 1, W, seed=1, grad=True), torch.rand(B, K + 1, dtype=F64).requires_grad_()
    erase, vector = torch.rand(B, 1, W, dtype=F64).requires_grad_(), _randn(B, 1, W, seed=2, grad=True)
    assert gradcheck(erase_add_rows, (rows, weights, erase, vector))
    gates = [torch.rand(B, 1, dtype=F64).requires_grad_() for _ in range(2)]
    assert gradcheck(sparse_write_weights, (torch.softmax(_randn(B, K, seed=3), -1).requires_grad_(), *gates))


def test_least_used_takes_the_lowest_of_the_least_used_slots():
    usage = torch.tensor([[0.5, 0.0, 0.25, 0.0, 0.125], [0.25, 0.5, 0.5, 0.125, 0.5]])
    assert least_used(usage).tolist() == [[1], [3]]


def test_top_k_search_can_exclude_slots():
    memory, keys = _randn(B, N, W, seed=1), _randn(B, R, W, seed=2)
    best = top_k_search(memory, memory.norm(dim=-1), keys, 1).view(B, R)  # each head's best slot
    found = top_k_search(memory, memory.norm(dim=-1), keys, K, exclude=best)
    assert not (found.unsqueeze(-1) == best.view(B, 1, 1, R)).any()


def test_mix_read_weights_sums_repeats_and_keeps_k():
    content = (torch.tensor([[[0, 1]]]), torch.tensor([[[0.5, 0.5]]]))
    forward = (torch.tensor([[[1, 2]]]), torch.tensor([[[0.25, 0.25]]]))
    backward = (torch.tensor([[[3, 3]]]), torch.tensor([[[0.0, 0.0]]]))
    index, weights = mix_read_weights(backward, content, forward, torch.tensor([[[0.0, 0.5, 0.5]]]), 2)
    assert index.tolist() == [[[1, 0]]] and weights.tolist() == [[[0.375, 0.25]]]


# -- links --------------------------------------------------------------------------------------
def _dense_links(index: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L from the predecessor lists and L from the successor lists, both ``[B, N, N]``."""
    n = index.shape[1] // 2
    pred = torch.zeros(index.shape[0], n, n, dtype=values.dtype).scatter_add(2, index[:, :n].long(), values[:, :n])
    succ = torch.zeros(index.shape[0], n, n, dtype=values.dtype).scatter_add(2, index[:, n:].long(), values[:, n:])
    return pred, succ.mT


def test_sparse_links_equal_the_dense_links_when_nothing_is_dropped():
    n, s, steps = 6, 6, 7  # every slot written each step; K_L = N - 1 entries per row hold a whole row
    index, values = torch.zeros(2, 2 * n, n - 1, dtype=torch.int32), torch.zeros(2, 2 * n, n - 1, dtype=F64)
    p_index, p = torch.zeros(2, s, dtype=torch.int64), torch.zeros(2, s, dtype=F64)
    dense_link, dense_p = torch.zeros(2, n, n, dtype=F64), torch.zeros(2, n, dtype=F64)
    for t in range(steps):
        order = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(10 * t + b)) for b in range(2)])
        w = 0.9 * torch.softmax(3 * _randn(2, n, seed=t), -1)  # the write weighting, on distinct slots
        update_links(index, values, (order, w), (p_index, p))
        p_index, p = update_precedence(p_index, p, order, w)
        w_dense = sparse_to_dense(order, w, n)
        dense_link = (1 - w_dense.unsqueeze(2) - w_dense.unsqueeze(1)) * dense_link + w_dense.unsqueeze(2) * dense_p.unsqueeze(1)
        dense_link = dense_link * (1 - torch.eye(n, dtype=F64))  # L[i, i] = 0
        dense_p = (1 - w_dense.sum(-1, keepdim=True)) * dense_p + w_dense
        pred, succ = _dense_links(index, values)
        torch.testing.assert_close(pred, dense_link)
        torch.testing.assert_close(succ, dense_link)
        torch.testing.assert_close(sparse_to_dense(p_index, p, n), dense_p)


def test_link_weightings_are_the_dense_products():
    n, reads = 6, 2
    index, values = torch.zeros(2, 2 * n, n - 1, dtype=torch.int32), torch.zeros(2, 2 * n, n - 1, dtype=F64)
    p_index, p = torch.zeros(2, n, dtype=torch.int64), torch.zeros(2, n, dtype=F64)
    for t in range(4):
        order = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(10 * t + b)) for b in range(2)])
        w = 0.9 * torch.softmax(3 * _randn(2, n, seed=t), -1)
        update_links(index, values, (order, w), (p_index, p))
        p_index, p = update_precedence(p_index, p, order, w)
    link = _dense_links(index, values)[0]
    read_index = torch.tensor([[[0, 3], [5, 1]], [[2, 4], [4, 0]]])  # [B=2, R=2, K=2]
    read_weights = torch.rand(2, reads, 2, dtype=F64).requires_grad_()
    (f_index, f), (b_index, b) = link_weightings(index, values, read_index, read_weights)
    dense_read = sparse_to_dense(read_index, read_weights, n)
    torch.testing.assert_close(sparse_to_dense(f_index, f, n), dense_read @ link.mT)  # f = L w
    torch.testing.assert_close(sparse_to_dense(b_index, b, n), dense_read @ link)  # b = L^T w
    assert gradcheck(lambda w: link_weightings(index, values, read_index, w)[0][1], (read_weights,))


def test_links_stay_in_range_with_at_most_k_l_distinct_entries_per_row():
    memory = _memory()
    state = _state_from(memory, _randn(B, N, W, seed=1))
    with torch.no_grad():
        _, state, _ = _unroll(memory, state, _write_params(12, B, seed=2), _randn(12, B, R, W + 4, seed=3))
    assert state.links.shape == (B, 2 * N, L) and state.link_index.shape == (B, 2 * N, L)
    assert (state.links >= 0).all() and (state.links <= 1).all() and state.links.sum() > 0
    live = state.links > 0
    same = state.link_index.unsqueeze(-1) == state.link_index.unsqueeze(-2)  # [B, 2N, L, L]
    pairs = same & live.unsqueeze(-1) & live.unsqueeze(-2) & ~torch.eye(L, dtype=torch.bool)
    assert not pairs.any(), "a row lists one slot twice"
    rows = torch.arange(2 * N) % N
    assert not (live & (state.link_index == rows.view(1, -1, 1))).any(), "a slot links to itself"


def test_allocation_writes_then_forward_reads_follow_the_write_order():
    """Writes with the allocation gate open go to slots 0, 1, 2, ...; a forward read then walks them in order."""
    memory = _memory(read_heads=1)
    state = memory.initial_state(1, CPU, F64)
    words = torch.eye(W, dtype=F64)[:4].view(4, 1, 1, W)  # distinct one-hot words
    ones, zeros = torch.ones(1, 1, dtype=F64), torch.zeros(1, 1, dtype=F64)
    for t in range(4):
        state, trace = memory.dnc_write(state, words[t], ones, torch.ones(1, 1, W, dtype=F64), words[t],
                                        torch.zeros(1, 1, dtype=F64), ones, ones, record=True)
        assert trace["write_weights"].argmax().item() == t
    content_mode, forward_mode = torch.tensor([[[0.0, 1.0, 0.0]]], dtype=F64), torch.tensor([[[0.0, 0.0, 1.0]]], dtype=F64)
    reads, state, trace = memory.dnc_read(state, words[0], 50 * ones, content_mode, record=True)  # look up word 0
    assert trace["read_weights"].argmax().item() == 0
    for t in range(1, 4):
        reads, state, trace = memory.dnc_read(state, words[0], ones, forward_mode, record=True)
        assert trace["read_weights"].argmax().item() == t
        torch.testing.assert_close(reads[0, 0], words[t, 0, 0], atol=0.02, rtol=0)


# -- usage and allocation -----------------------------------------------------------------------
def _allocate(memory, state, word, free=None, batch: int = 1):
    """One write with the allocation and write gates shut open; returns the state and the allocated slot."""
    ones = torch.ones(batch, 1, dtype=F64)
    free = torch.zeros(batch, memory.read_heads, dtype=F64) if free is None else free
    state, trace = memory.dnc_write(state, word, ones, torch.ones(batch, 1, W, dtype=F64), word, free, ones, ones, record=True)
    return state, trace["write_weights"][:, 0].argmax(-1)


def test_lru_allocation_takes_fresh_slots_then_the_least_recently_used():
    n = 7
    memory = _memory(slots=n, k=2, link_k=2, read_heads=1)
    state = memory.initial_state(1, CPU, F64)
    words = torch.eye(W, dtype=F64).view(W, 1, 1, W)
    taken = []
    for t in range(n):
        state, slot = _allocate(memory, state, words[t % W])
        taken.append(slot.item())
    assert taken == list(range(n))  # never used slots first, lowest first
    # the next writes search with the last word: its content top-2 are recent slots, so the oldest is taken
    state, slot = _allocate(memory, state, words[(n - 1) % W])
    assert slot.item() == 0
    state, slot = _allocate(memory, state, words[(n - 1) % W])
    assert slot.item() == 1


def test_a_freed_slot_is_reused():
    n = 7
    memory = _memory(slots=n, k=2, link_k=2, read_heads=1)
    state = memory.initial_state(1, CPU, F64)
    words = torch.eye(W, dtype=F64).view(W, 1, 1, W)
    for t in range(n):
        state, _ = _allocate(memory, state, words[t % W])  # every slot used; slot 0 is the oldest
    sharp = torch.full((1, 1), 100.0, dtype=F64)
    _, state, trace = memory.dnc_read(state, words[4], sharp, torch.tensor([[[0.0, 1.0, 0.0]]], dtype=F64), record=True)
    read_slot = trace["read_weights"][0, 0].argmax().item()
    assert read_slot == 4
    state, slot = _allocate(memory, state, words[1], free=torch.ones(1, 1, dtype=F64))  # free what was just read
    assert slot.item() == read_slot


def test_usage_discounts_and_counts_reads_and_writes():
    memory = _memory(usage_decay=0.5, read_heads=1)
    state = memory.initial_state(1, CPU, F64)
    word = torch.eye(W, dtype=F64)[:1].view(1, 1, W)
    state, slot = _allocate(memory, state, word)
    assert state.usage[0, slot].item() == 1.0  # u = w = 1 at the allocated slot
    state, _ = _allocate(memory, state, word)
    assert state.usage[0, slot].item() == 0.5  # discounted once; not written again (it was in the content top-K)


# -- whole steps: gradients against an out-of-place reference, weightings, zero memory -----------
def _reference_rows(monkeypatch):
    """Swap the in-place row operations for plain autograd ones where the token IS the (dense) memory."""

    def gather(token, memory, index):
        return token.gather(1, index.unsqueeze(-1).expand(-1, -1, token.shape[-1])), token

    def scatter(token, memory, index, rows):
        at = index.unsqueeze(-1).expand(-1, -1, token.shape[-1])
        memory.scatter_(1, at, rows.detach())  # keep the buffer in step: the searches read it
        return token.scatter(1, at, rows)

    monkeypatch.setattr(sparse, "gather_rows", gather)
    monkeypatch.setattr(sparse, "scatter_rows", scatter)


def _step_inputs(steps: int = 4, batch: int = B, seed: int = 0):
    m0 = _randn(batch, N, W, seed=seed, grad=True)
    writes = _write_params(steps, batch, seed=seed + 1).requires_grad_()
    reads = (2 * _randn(steps, batch, R, W + 4, seed=seed + 2)).requires_grad_()
    return m0, writes, reads


def _weighted_sum(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A fixed random weighting of every output (a plain sum of normalised outputs has little gradient)."""
    return sum((t * _randn(*t.shape, seed=20 + i)).sum() for i, t in enumerate(tensors))


def _supports(traces: list[dict]) -> list[torch.Tensor]:
    """The slots every step wrote or read, from the dense recorded weightings."""
    return [next(iter(trace.values())) > 0 for trace in traces]


def test_a_four_step_unroll_has_the_gradients_of_an_out_of_place_reference(monkeypatch):
    memory = _memory()
    m0, writes, reads = _step_inputs()
    outputs, state, traces = _unroll(memory, _state_from(memory, m0, token=m0), writes, reads, record=True)
    final = snapshot(state.token, state.memory)
    grads = torch.autograd.grad(_weighted_sum([*outputs, final]), (m0, writes, reads))

    _reference_rows(monkeypatch)
    outputs_ref, state_ref, traces_ref = _unroll(memory, _state_from(memory, m0, token=m0), writes, reads, record=True)
    for step, (ours, theirs) in enumerate(zip(_supports(traces), _supports(traces_ref))):
        assert torch.equal(ours, theirs), f"the reference chose other slots at operation {step}"
    torch.testing.assert_close(state_ref.token, final)  # the reference's token is its (dense) memory
    expected = torch.autograd.grad(_weighted_sum([*outputs_ref, state_ref.token]), (m0, writes, reads))
    for ours, theirs, name in zip(grads, expected, ("memory", "writes", "reads")):
        assert ours.abs().sum() > 0, name
        torch.testing.assert_close(ours, theirs, msg=lambda m, name=name: f"{name}: {m}")


def test_a_three_step_unroll_gradcheck():
    """Content reads only: the link values carry no gradient by design (the reference test above covers links)."""
    memory = SparseDNCMemory(slots=7, word_size=3, k=2, link_k=2)
    memory.attach_read_heads(2)
    m0 = _randn(2, 7, 3, seed=1, grad=True)
    writes = _write_params(3, 2, seed=2, width=3).requires_grad_()
    reads = (2 * _randn(3, 2, 2, 3 + 1, seed=3)).requires_grad_()  # key and strength; the modes are fixed below
    content_only = torch.tensor([-1e4, 0.0, -1e4], dtype=F64).expand(3, 2, 2, 3)  # softmax -> (0, 1, 0)

    def run(m0, writes, reads):
        outputs, state, _ = _unroll(memory, _state_from(memory, m0, token=m0), writes, torch.cat([reads, content_only], -1))
        return (*outputs, snapshot(state.token, state.memory))

    assert gradcheck(run, (m0, writes, reads), fast_mode=True)


def test_read_and_write_weightings_are_sparse_non_negative_and_sum_to_at_most_one():
    memory = _memory()
    state = _state_from(memory, _randn(B, N, W, seed=1))
    with torch.no_grad():
        _, _, traces = _unroll(memory, state, _write_params(8, B, seed=2), 3 * _randn(8, B, R, W + 4, seed=3), record=True)
    for trace in traces:
        name = "write_weights" if "write_weights" in trace else "read_weights"
        weights = trace[name]
        assert weights.shape == ((B, 1, N) if name == "write_weights" else (B, R, N))
        assert (weights >= 0).all() and (weights.sum(-1) <= 1 + 1e-9).all()
        assert ((weights > 0).sum(-1) <= (K + 1 if name == "write_weights" else K)).all()


def test_an_all_zero_memory_gives_finite_reads_and_gradients():
    memory = _memory()
    m0 = torch.zeros(B, N, W, dtype=F64, requires_grad=True)
    writes = torch.zeros(2, B, 1, 3 * W + 3 + R, dtype=F64, requires_grad=True)
    reads = torch.zeros(2, B, R, W + 4, dtype=F64, requires_grad=True)
    outputs, state, _ = _unroll(memory, _state_from(memory, m0, token=m0), writes, reads)
    assert all(torch.isfinite(o).all() for o in outputs)
    grads = torch.autograd.grad(sum(o.sum() for o in outputs) + snapshot(state.token, state.memory).sum(), (m0, writes, reads))
    assert all(torch.isfinite(g).all() for g in grads)


# -- the shared buffers -------------------------------------------------------------------------
def test_every_initial_state_has_its_own_buffers():
    memory = _memory()
    first, second = memory.initial_state(B, CPU, F64), memory.initial_state(B, CPU, F64)
    for name in ("memory", "norms", "usage", "link_index", "links", "clock"):
        assert getattr(first, name).data_ptr() != getattr(second, name).data_ptr(), name


def test_an_older_state_cannot_be_used_again():
    memory = _memory()
    state = _state_from(memory, _randn(B, N, W, seed=1))
    writes, reads = _write_params(2, B, seed=2), _randn(2, B, R, W + 4, seed=3)
    _, newer, _ = _unroll(memory, state, writes[:1], reads[:1])
    with pytest.raises(ConfigError, match=r"^SparseDNCMemory: this memory state is older than its buffers .* start from initial_state"):
        _unroll(memory, state, writes[1:], reads[1:])
    _unroll(memory, newer, writes[1:], reads[1:])  # the newest state goes on


def _cell(slots: int = N, **options) -> MemoryCell:
    torch.manual_seed(0)
    cell = MemoryCell(LSTMController(11), SparseDNCMemory(slots=slots, word_size=W, k=K, link_k=L, **options),
                      [DNCWriteHead(), DNCReadHead(count=R)])
    cell.bind(5, 3)
    return cell


def test_a_second_forward_before_the_backward_changes_nothing():
    cell = _cell()
    x = _randn(B, 6, 5, seed=1, dtype=torch.float32)
    y = cell(x).logits
    expected = torch.autograd.grad(y.sum(), list(cell.parameters()), retain_graph=True)
    with torch.no_grad():
        cell(_randn(B, 6, 5, seed=2, dtype=torch.float32))  # e.g. a validation batch in between
    y2 = cell(x).logits  # and a second forward with grad
    assert torch.equal(y, y2)
    for a, b in zip(torch.autograd.grad(y.sum(), list(cell.parameters())), expected):
        assert torch.equal(a, b)
    for a, b in zip(torch.autograd.grad(y2.sum(), list(cell.parameters())), expected):
        assert torch.equal(a, b)


# -- configuration, heads, conformance ----------------------------------------------------------
@pytest.mark.parametrize(
    "options, message",
    [
        ({"slots": 1}, r"^SparseDNCMemory: slots must be an integer of at least 2, got 1; set slots to 2 or more\.$"),
        ({"word_size": 0}, r"^SparseDNCMemory: word_size must be a positive integer, got 0; set word_size to 1 or more\.$"),
        ({"slots": 8, "k": 8}, r"^SparseDNCMemory: k must be between 1 and 7, got 8; a write touches k \+ 1 distinct slots"),
        ({"link_k": 0}, r"^SparseDNCMemory: link_k must be between 1 and 1023, got 0; each slot links"),
        ({"usage_decay": 0.0}, r"^SparseDNCMemory: usage_decay must be in \(0, 1\], got 0\.0; use e\.g\. 0\.99\.$"),
        ({"init_value": "zero"}, r"^SparseDNCMemory: init_value must be a number, got 'zero'; use e\.g\. 0\.$"),
    ],
)
def test_bad_settings_are_refused_in_one_sentence(options, message):
    with pytest.raises(ConfigError, match=message):
        SparseDNCMemory(**options)


def test_read_head_count_is_fixed_once_attached():
    memory = SparseDNCMemory(slots=N, word_size=W)
    memory.attach_read_heads(R)
    memory.attach_read_heads(R)
    with pytest.raises(ConfigError, match=r"^SparseDNCMemory already has 2 read heads attached and cannot take 3; use one read head bank"):
        memory.attach_read_heads(3)


def test_wrong_head_shapes_are_refused():
    memory = _memory()
    state = memory.initial_state(B, CPU, F64)
    with pytest.raises(ShapeError, match=r"^SparseDNCMemory.dnc_read keys has shape \[3, 2, 6\] but \[3, 2, 7\] was expected"):
        memory.dnc_read(state, torch.zeros(B, R, W - 1, dtype=F64), torch.ones(B, R, dtype=F64), torch.ones(B, R, 3, dtype=F64) / 3)


def test_the_core_heads_and_checkpointing_refuse_the_sparse_memory():
    core_heads = [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())]
    cell = MemoryCell(MLPController(8), SparseDNCMemory(slots=N, word_size=W), core_heads)
    with pytest.raises(ConfigError, match=r"^WriteHead needs a memory with read and write .* but the memory is SparseDNCMemory"):
        cell.bind(4, 3)
    assert not hasattr(SparseDNCMemory, "read") and not hasattr(SparseDNCMemory, "write")
    with pytest.raises(ConfigError, match=r"checkpoint_every=2 cannot be used with SparseDNCMemory"):
        MemoryCell(LSTMController(8), SparseDNCMemory(slots=N, word_size=W), [DNCWriteHead(), DNCReadHead()], checkpoint_every=2)


def test_conformance():
    check_component(SparseDNCMemory)
    check_component(lambda: SparseDNCMemory(slots=11, word_size=5, k=1, link_k=1, usage_decay=1.0, init_value=0.5))


# -- learning and the preset --------------------------------------------------------------------
def test_it_learns_to_copy():
    torch.manual_seed(0)
    bits, length = 4, 3
    task = CopyTask(bits=bits, min_length=1, max_length=length)
    cell = MemoryCell(LSTMController(32), SparseDNCMemory(slots=32, word_size=8, k=4, link_k=4),
                      [DNCWriteHead(), DNCReadHead(count=2)], clip=20.0)
    cell.bind(bits + 1, bits)
    optimizer = torch.optim.Adam(cell.parameters(), lr=1e-2)
    generator, losses = make_generator(0, "sparse-copy"), []
    for _ in range(100):
        batch = task.generate(generator, 16, min_length=1, max_length=length)
        mask = batch["mask"].unsqueeze(-1)  # [B, T, 1]
        logits = cell(batch["input"]).logits
        loss = (F.binary_cross_entropy_with_logits(logits, batch["target"], reduction="none") * mask).sum() / (mask.sum() * bits)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert first > 0.6 and last < 0.5, (first, last)  # from chance (ln 2 = 0.69 per bit) to well below


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
def test_the_sparse_copy_preset_checks_and_trains_one_step(tmp_path):
    path = ROOT / "configs" / "dnc" / "copy_sparse.yaml"
    assert path.read_text().startswith("#")
    check_config(path)
    main([
        "fit", "--config", str(path),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.max_steps", "1",
        "--trainer.limit_val_batches", "1",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false",
        "--data.init_args.batch_size", "2",
        "--data.init_args.max_length", "3",
        "--data.init_args.val_batches", "1",
        "--data.init_args.test_batches", "1",
    ])
    checkpoint = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=True)
    assert checkpoint["global_step"] == 1
