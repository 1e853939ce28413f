"""In-place memory rows under autograd, and sparse vectors, for the sparse DNC (SAM/SDNC, Rae et al. 2016).

Shape letters: B batch, N memory slots, W word size, R read heads, K sparse neighbours,
L = K_L entries per row of a sparse link matrix, S slots one write touches, U entries of a
sparse vector before it is cut back to its top entries.

**The memory is one buffer, written in place.** Autograd never sees ``M [B, N, W]``: a step
that saved it (or copied it out of place) would keep ``T`` copies of it alive until the backward
pass. Every memory state instead carries a *token*, a ``[B, N, W]`` tensor of zeros with zero
strides (one element of storage) that stands for the memory at that moment; *its gradient is
``dL/dM`` at that moment*. Each operation takes the token of the memory it acts on and returns
a new one, so the tokens form one chain through time and autograd runs the backward nodes in
reverse order along it:

- :func:`gather_rows` copies ``K`` rows out (differentiable in the memory through the token);
  its backward adds the rows' gradient into ``dL/dM`` at those rows;
- :func:`scatter_rows` overwrites ``K`` rows in place; its backward hands ``dL/dM`` at those rows
  to the new rows and zeroes them (the old rows reach the loss only through the rows gathered
  before the write, whose own backward comes next in the chain);
- :func:`snapshot` copies the whole memory out (for tests and small traces).

The gradient with respect to the memory is therefore ONE dense ``[B, N, W]`` tensor, created
by the last operation's backward and handed, mutated in place at ``K`` rows, from node to node;
the forward saves only indices and the rows each operation touched, ``O(B K W)`` per step.
No backward reads the memory buffer, so the buffer may go on changing (or be freed) after
the forward: a second forward with a fresh state cannot corrupt the first one's gradients.

Sparse vectors are an index tensor and a value tensor of the same shape; an index may repeat,
and a vector's value at a slot is the sum over its entries (:func:`top_k_union` merges them).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "new_token",
    "gather_rows",
    "scatter_rows",
    "snapshot",
    "top_k_union",
    "sparse_lookup",
    "sparse_to_dense",
    "link_weightings",
    "update_links",
    "update_precedence",
]


def new_token(memory: Tensor) -> Tensor:
    """A token for ``memory [B, N, W]``: zeros of its shape with zero strides (no storage to speak of)."""
    return memory.new_zeros(()).expand(memory.shape)


def _accumulator(grad: Tensor | None, ctx) -> Tensor:  # noqa: ANN001
    """The dense ``dL/dM [B, N, W]`` to mutate: the incoming one (owned by this chain), or fresh zeros."""
    if grad is None:
        shape, dtype, device = ctx.memory_meta
        return torch.zeros(shape, dtype=dtype, device=device)
    return grad if grad.is_contiguous() else grad.contiguous()  # an expanded gradient is copied, never written


def _row_index(index: Tensor, width: int) -> Tensor:
    return index.unsqueeze(-1).expand(*index.shape, width)  # [B, S] -> [B, S, W], the gather/scatter index of rows


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token: Tensor, memory: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:  # noqa: ANN001
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(index)
        ctx.memory_meta = (memory.shape, memory.dtype, memory.device)
        rows = memory.gather(1, _row_index(index, memory.shape[-1]))  # a copy, [B, S, W]
        return rows, new_token(memory)

    @staticmethod
    def backward(ctx, grad_rows: Tensor | None, grad_token: Tensor | None):  # noqa: ANN205, ANN001
        if not ctx.needs_input_grad[0]:
            return None, None, None
        (index,) = ctx.saved_tensors
        if grad_token is None and grad_rows is None:
            return None, None, None
        grad = _accumulator(grad_token, ctx)
        if grad_rows is not None:
            grad.scatter_add_(1, _row_index(index, grad.shape[-1]), grad_rows)  # dM[b, i_s] += dV[b, s]
        return grad, None, None


class _ScatterRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token: Tensor, memory: Tensor, index: Tensor, rows: Tensor) -> Tensor:  # noqa: ANN001
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(index)
        ctx.memory_meta = (memory.shape, memory.dtype, memory.device)
        memory.scatter_(1, _row_index(index, memory.shape[-1]), rows)  # M[b, i_s] = V[b, s], in place
        return new_token(memory)

    @staticmethod
    def backward(ctx, grad_token: Tensor | None):  # noqa: ANN205, ANN001
        if grad_token is None:  # nothing after this write reached the loss
            return None, None, None, None
        (index,) = ctx.saved_tensors
        need_token, _, _, need_rows = ctx.needs_input_grad
        grad = _accumulator(grad_token, ctx)
        at = _row_index(index, grad.shape[-1])
        d_rows = grad.gather(1, at) if need_rows else None  # dV[b, s] = dM[b, i_s] (a copy)
        if not need_token:
            return None, None, None, d_rows
        grad.scatter_(1, at, 0.0)  # the old rows reach the loss only through the rows gathered before
        return grad, None, None, d_rows


class _Snapshot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token: Tensor, memory: Tensor) -> Tensor:  # noqa: ANN001
        ctx.set_materialize_grads(False)
        return memory.clone()

    @staticmethod
    def backward(ctx, grad: Tensor | None):  # noqa: ANN205, ANN001
        return (None if grad is None else grad.clone(memory_format=torch.contiguous_format)), None  # ours to mutate


def _check_rows(memory: Tensor, token: Tensor, index: Tensor) -> None:
    if memory.requires_grad:
        raise ValueError("the memory buffer must not require grad; its gradient travels on the token")
    if token.shape != memory.shape or index.dim() != 2 or index.shape[0] != memory.shape[0]:
        raise ValueError(
            f"token {list(token.shape)} must match memory {list(memory.shape)} and index {list(index.shape)} be [B, S]"
        )


def gather_rows(token: Tensor, memory: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Rows ``V[b, s] = M[b, index[b, s]]``, differentiable in the memory through ``token``.

    Args:
        token: the memory's current token, ``[B, N, W]``.
        memory: M, the buffer, ``[B, N, W]`` (not requiring grad).
        index: int64 ``[B, S]`` (repeats allowed).

    Returns:
        ``V [B, S, W]`` (a copy) and the token to use from now on.

    >>> m = torch.arange(6.0).view(1, 3, 2)
    >>> gather_rows(new_token(m), m, torch.tensor([[2, 0]]))[0]
    tensor([[[4., 5.],
             [0., 1.]]])
    """
    _check_rows(memory, token, index)
    return _GatherRows.apply(token, memory, index)


def scatter_rows(token: Tensor, memory: Tensor, index: Tensor, rows: Tensor) -> Tensor:
    """Overwrite ``M[b, index[b, s]] = V[b, s]`` IN PLACE; the rows' gradient comes from the returned token.

    Args:
        token: the memory's current token, ``[B, N, W]``.
        memory: M, the buffer, ``[B, N, W]``; changed in place.
        index: int64 ``[B, S]``, no repeats within a batch row.
        rows: V, ``[B, S, W]``.

    Returns:
        The token of the written memory.
    """
    _check_rows(memory, token, index)
    return _ScatterRows.apply(token, memory, index, rows)


def snapshot(token: Tensor, memory: Tensor) -> Tensor:
    """A differentiable copy of the whole memory ``[B, N, W]`` (``O(N W)``: for tests and small traces)."""
    return _Snapshot.apply(token, memory)


# -- sparse vectors ------------------------------------------------------------------------------
def top_k_union(index: Tensor, values: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` largest slot totals of a sparse vector with repeats, as ``k`` distinct entries.

    Entries that share a slot are summed (sorting the slots, so ``O(U log U)``); the choice is not
    differentiable, the totals are. ``values`` must be non-negative and ``U >= k``; if fewer than
    ``k`` slots are distinct, the remaining entries have value 0.

    Args:
        index: int ``[..., U]``.
        values: ``[..., U]``, non-negative.
        k: entries to keep.

    Returns:
        ``index [..., k]`` (int64) and ``values [..., k]``.

    >>> top_k_union(torch.tensor([4, 2, 4, 0]), torch.tensor([0.25, 0.5, 0.5, 0.0]), 2)
    (tensor([4, 2]), tensor([0.7500, 0.5000]))
    """
    U = index.shape[-1]
    with torch.no_grad():
        slots, order = index.long().sort(dim=-1)  # [..., U]
        starts = torch.ones_like(slots, dtype=torch.bool)
        starts[..., 1:] = slots[..., 1:] != slots[..., :-1]  # the first entry of each run of one slot
        run = starts.cumsum(-1) - 1  # run number of each sorted entry, [..., U]
        run_slot = torch.zeros_like(slots).scatter_(-1, run, slots)  # the slot of each run
    totals = values.new_zeros(values.shape).scatter_add(-1, run, values.gather(-1, order))  # each run's sum
    with torch.no_grad():
        exists = torch.arange(U, device=index.device) <= run[..., -1:]  # runs 0..(distinct slots - 1)
        pick = totals.detach().masked_fill(~exists, -1.0).topk(k, dim=-1).indices  # [..., k]
    return run_slot.gather(-1, pick), totals.gather(-1, pick)


def sparse_lookup(query: Tensor, index: Tensor, values: Tensor) -> Tensor:
    """The value at each queried slot of a sparse vector (0 where it has no entry).

    Args:
        query: slots, int ``[B, *Q]``.
        index: int ``[B, S]``.
        values: ``[B, S]``.

    Returns:
        ``[B, *Q]``.

    >>> sparse_lookup(torch.tensor([[1, 5, 3]]), torch.tensor([[3, 1]]), torch.tensor([[0.5, 0.25]]))
    tensor([[0.2500, 0.0000, 0.5000]])
    """
    B = query.shape[0]
    flat = query.reshape(B, -1, 1)  # [B, *Q] -> [B, Q, 1]
    hits = (flat == index.unsqueeze(1)).to(values.dtype)  # [B, Q, S]
    return (hits @ values.unsqueeze(-1)).view(query.shape)  # [B, Q, S] @ [B, S, 1] -> [B, Q, 1] -> [B, *Q]


def sparse_to_dense(index: Tensor, values: Tensor, slots: int) -> Tensor:
    """A dense ``[..., N]`` copy of a sparse vector (repeats summed), for traces and tests.

    >>> sparse_to_dense(torch.tensor([[2, 0, 2]]), torch.tensor([[0.25, 0.5, 0.125]]), 4)
    tensor([[0.5000, 0.0000, 0.3750, 0.0000]])
    """
    dense = values.new_zeros(*values.shape[:-1], slots)
    return dense.scatter_add(-1, index.long(), values)


# -- sparse temporal links (SDNC) ----------------------------------------------------------------
# The link matrix L (L[i, j]: how much slot i was written right after slot j) is kept as row lists of
# L and of its transpose in ONE pair of buffers ``index`` (int) and ``values``, ``[B, 2N, K_L]``:
# row i < N lists the predecessors j of slot i (row i of L), row N + j the successors i of slot j
# (row j of L^T). Every list holds K_L entries; unused entries have value 0.


def link_weightings(index: Tensor, values: Tensor, read_index: Tensor, read_weights: Tensor) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """The forward and backward weightings ``f = L w`` and ``b = L^T w`` over a sparse read weighting.

    ``f`` gathers the successor lists of the slots ``w`` reads, ``b`` their predecessor lists; each
    is a sparse vector with repeats. Differentiable in ``read_weights``; the link values are
    bookkeeping without gradient.

    Args:
        index: int ``[B, 2N, L]`` and ``values [B, 2N, L]``: the link lists.
        read_index: int64 ``[B, R, K]``, the support of w.
        read_weights: w, ``[B, R, K]``.

    Returns:
        ``f`` and ``b``, each ``(index [B, R, K L] int64, values [B, R, K L])``.
    """
    B, R, K = read_index.shape
    N, L = index.shape[1] // 2, index.shape[-1]
    rows = torch.cat([read_index + N, read_index], dim=-1)  # successor rows (f), then predecessor rows (b): [B, R, 2K]
    at = rows.view(B, R * 2 * K, 1).expand(-1, -1, L)  # [B, R, 2K] -> [B, 2 R K, L]
    slots = index.gather(1, at).view(B, R, 2, K * L).long()  # [B, 2 R K, L] -> [B, R, 2, K L]
    weighted = values.gather(1, at).view(B, R, 2, K, L) * read_weights.view(B, R, 1, K, 1)  # L[., j] w_j
    weighted = weighted.view(B, R, 2, K * L)  # [B, R, 2, K, L] -> [B, R, 2, K L]
    return (slots[:, :, 0], weighted[:, :, 0]), (slots[:, :, 1], weighted[:, :, 1])


def update_precedence(index: Tensor, values: Tensor, write_index: Tensor, write: Tensor) -> tuple[Tensor, Tensor]:
    """``p_t = (1 - sum_i w_i) p_{t-1} + w`` (DNC precedence), kept to its top ``P`` entries.

    Args:
        index: int64 ``[B, P]`` and ``values [B, P]``: p_{t-1}.
        write_index: int64 ``[B, S]`` and ``write [B, S]``: the write weighting w.

    Returns:
        p_t as ``index [B, P]`` and ``values [B, P]``.

    >>> update_precedence(torch.tensor([[0, 1]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[2, 3]]), torch.tensor([[0.5, 0.25]]))
    (tensor([[2, 3]]), tensor([[0.5000, 0.2500]]))
    """
    keep = 1 - write.sum(-1, keepdim=True)  # 1 - sum_i w_i, [B, 1]
    return top_k_union(torch.cat([index, write_index], -1), torch.cat([keep * values, write], -1), index.shape[-1])


@torch.no_grad()
def update_links(index: Tensor, values: Tensor, write: tuple[Tensor, Tensor], precedence: tuple[Tensor, Tensor]) -> None:
    """``L_t[i, j] = (1 - w_i - w_j) L_{t-1}[i, j] + w_i p_{t-1, j}`` (DNC link update) on the lists, IN PLACE.

    Rows the update rewrites are recomputed from the old lists by the rule above and keep their
    K_L largest entries: the written slots' predecessor lists (new entries ``w_i p_j``) and the
    successor lists of the written slots and of the precedence's slots. Entries pointing INTO a
    written slot ``j`` from the other rows are decayed by ``1 - w_j``, found through the other list.
    *Approximation*: an entry that one list dropped (past its K_L largest) and the other kept is
    not decayed there; no self-links are kept.

    Args:
        index: int ``[B, 2N, L]`` and ``values [B, 2N, L]``: the link lists (see above).
        write: w as ``(index [B, S], values [B, S])``, distinct slots.
        precedence: p_{t-1} as ``(index [B, S], values [B, S])``.
    """
    B, N2, L = index.shape
    N = N2 // 2
    (w_index, w), (p_index, p) = write, precedence
    S = w_index.shape[1]
    # -- every rewritten row, computed from the old lists --------------------------------------------
    local = torch.cat([w_index, w_index, p_index], dim=1)  # the rows' slots: preds of w, succs of w, succs of p
    rows = local + torch.cat([torch.zeros_like(w_index), torch.full_like(local[:, S:], N)], dim=1)  # [B, X]
    at = rows.unsqueeze(-1).expand(-1, -1, L)  # [B, X] -> [B, X, L]
    old_index, old_values = index.gather(1, at).long(), values.gather(1, at)  # [B, X, L]
    a_rows, a_cols = sparse_lookup(local, w_index, w).unsqueeze(-1), sparse_lookup(old_index, w_index, w)  # w_r, w_c
    kept = old_values * (1 - a_rows - a_cols).clamp(0, 1)  # (1 - w_r - w_c) L[r, c]
    u_rows = torch.cat([w, sparse_lookup(local[:, S:], p_index, p)], dim=1)  # L: w_i; L^T: p_j, [B, X]
    v_index = torch.cat([p_index.unsqueeze(1).expand(-1, S, -1), w_index.unsqueeze(1).expand(-1, local.shape[1] - S, -1)], 1)
    v_values = torch.cat([p.unsqueeze(1).expand(-1, S, -1), w.unsqueeze(1).expand(-1, local.shape[1] - S, -1)], 1)
    cand_index = torch.cat([old_index, v_index], dim=-1)  # [B, X, L + S]
    cand_values = torch.cat([kept, u_rows.unsqueeze(-1) * v_values], dim=-1)  # + u_r v_c
    cand_values = cand_values.masked_fill(cand_index == local.unsqueeze(-1), 0.0)  # no self-links
    new_index, new_values = top_k_union(cand_index, cand_values, L)  # [B, X, L]
    # -- entries pointing into a written slot c, in rows not rewritten: found through the other list ----
    lists = torch.cat([w_index + N, w_index], dim=1)  # successors of c (holders in L), predecessors of c (in L^T)
    at = lists.unsqueeze(-1).expand(-1, -1, L)  # [B, 2S] -> [B, 2S, L]
    holders = index.gather(1, at).long() + torch.cat([torch.zeros_like(w_index), torch.full_like(w_index, N)], 1).unsqueeze(-1)
    live = values.gather(1, at) > 0  # [B, 2S, L]
    entries = index.gather(1, holders.view(B, 2 * S * L, 1).expand(-1, -1, L)).view(B, 2 * S, L, L)  # holders' lists, [B, 2S L, L] -> [B, 2S, L, L]
    target = torch.cat([w_index, w_index], dim=1).view(B, 2 * S, 1, 1)  # c, [B, 2S] -> [B, 2S, 1, 1]
    match = (entries == target) & live.unsqueeze(-1)  # [B, 2S, L, L]: the holder's entry that is c
    decay = (1 - torch.cat([w, w], dim=1)).view(B, 2 * S, 1, 1)  # 1 - w_c
    factors = torch.where(match, decay, torch.ones_like(decay))
    positions = holders.unsqueeze(-1) * L + torch.arange(L, device=index.device)  # [B, 2S, L, L] into [B, 2N L]
    # -- write: decays first, then the rewritten rows (which already include their decay) ---------
    values.view(B, N2 * L).scatter_reduce_(1, positions.view(B, -1), factors.view(B, -1), "prod")  # flat: [B, 2N L]
    at = rows.unsqueeze(-1).expand(-1, -1, L)
    index.scatter_(1, at, new_index.to(index.dtype))
    values.scatter_(1, at, new_values.clamp(0, 1))
