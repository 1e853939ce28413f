"""Temporal linkage of the DNC as one autograd function with a hand-written backward (part of :mod:`mannkit_dnc.fused`).

Shape letters: B batch, N memory slots, R read heads.

    L_t = (1 - w^w_t 1^T - 1 (w^w_t)^T) o L_{t-1} + w^w_t p_{t-1}^T,  L_t[i, i] = 0
    p_t = (1 - sum_i w^w_t[i]) p_{t-1} + w^w_t
    f^i_t = L_t w^r_{i,t-1},  b^i_t = L_t^T w^r_{i,t-1}

On CPU in float32/64 the C++ row loops of :mod:`mannkit_dnc.link_kernel` run it
(``_TemporalStepKernel``, one visit per link row forward and backward); elsewhere, in a compiled
step, or if the extension cannot be built, the PyTorch form ``_TemporalStep`` (same results).
At large N these passes over the ``[B, N, N]`` link are the step's cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from mannkit_dnc import link_kernel
from mannkit_dnc.buffers import _empty_link, _own, _owned, _scratch
from mannkit_dnc.mechanisms import directional_weights, update_link, update_precedence

__all__ = ["temporal_step", "temporal_step_eager", "temporal_step_reference"]

#: The temporal step's backward works through the batch in chunks of at most this many link
#: entries (4 MiB in float32), so that its one ``[b, N, N]`` temporary stays small.
_CHUNK_ENTRIES = 1 << 20

def _reference_vjp(reference: Callable[..., tuple[Tensor, ...]], inputs: tuple, needs: tuple[bool, ...], grads: tuple) -> tuple:
    """The vector-Jacobian product of ``reference(*inputs)``, itself differentiable (for double backward)."""
    outputs = reference(*inputs)
    pairs = [(o, g) for o, g in zip(outputs, grads) if g is not None and o.requires_grad]
    wanted = [x for x, need in zip(inputs, needs) if need]
    if not pairs or not wanted:
        return (None,) * len(inputs)
    found = iter(torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], create_graph=True, allow_unused=True))
    return tuple(next(found) if need else None for need in needs)


def temporal_step_reference(
    link: Tensor, write_weights: Tensor, precedence: Tensor, read_weights: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`temporal_step` composed of the mechanisms (for tests and second-order gradients)."""
    new_link = update_link(link, write_weights, precedence)
    forward, backward = directional_weights(new_link, read_weights)
    return new_link, update_precedence(precedence, write_weights), forward, backward


def _link_backward_start(ctx: Any, grads: tuple) -> tuple[tuple[Tensor, ...], tuple | None]:
    """The saved tensors of a link step (``L_{t-1}, w^w, p_{t-1}, w^r`` first), and, when differentiating twice, the
    gradients of the reference form instead (None otherwise): the hand-written backwards are first-order only.

    ``ctx.saved_tensors`` is read here once: under ``torch.utils.checkpoint`` a second read raises."""
    saved = ctx.saved_tensors
    link, write, precedence, read = saved[:4]
    if torch.is_grad_enabled():
        return saved, _reference_vjp(temporal_step_reference, (link, write, precedence, read), ctx.needs_input_grad, grads)
    return saved, None


class _TemporalStep(torch.autograd.Function):
    """``(L_{t-1}, w^w_t, p_{t-1}, w^r_{t-1}) -> (L_t, p_t, f_t, b_t)`` with a hand-written backward.

    Forward: two passes over ``[B, N, N]`` make L_t (a lerp and an addcmul, the diagonal zeroed in
    place), two ``bmm`` read it for f and b; at large N this runs through the batch in chunks of
    :data:`_CHUNK_ENTRIES` link entries, so that the chunk of L_t just written is still in cache
    for the passes that read it (main memory sees about one read of L_{t-1} and one write of L_t). Saved: the inputs and L_t; L_t is also the next step's
    L_{t-1}, so a sequence keeps one ``[B, N, N]`` per step (plus the last).

    Backward, with ``G = dL_t + df^T w^r + (w^r)^T db`` (its diagonal dropped, as L_t's is fixed at 0):
    ``dL_{t-1} = G * (1 - w_i - w_j)``, ``dw[k] = (G p)[k] - sum_j (G * L_{t-1})[k, j] - sum_i (G * L_{t-1})[i, k]``,
    ``dp[j] = (w^T G)[j]``, ``dw^r = df L_t + db L_t^T``, plus the precedence terms. It works
    through the batch in chunks (each chunk's G stays in cache for its six uses) and forms G in
    the incoming ``dL_t`` when that buffer came from this function's own backward of the next step
    (nothing else holds it), so that it becomes the returned ``dL_{t-1}``: the backward allocates
    one chunk-sized temporary and no ``[B, N, N]`` tensor.
    """

    @staticmethod
    def forward(ctx, link: Tensor, write: Tensor, precedence: Tensor, read: Tensor):  # noqa: ANN001, ANN205
        B, N = write.shape
        new_link = _empty_link(write, (B, N, N))
        R = read.shape[1]
        forward, backward = read.new_empty(B, N, R).mT, read.new_empty(B, R, N)  # f as [B, N, R] transposed
        step = max(1, _CHUNK_ENTRIES // (N * N))  # batch elements per chunk: a chunk's L_t stays in cache for its reads
        for start in range(0, B, step):
            s = slice(start, start + step)
            new, old, w = new_link[s], link[s], write[s]
            torch.lerp(old, precedence[s].unsqueeze(1), w.unsqueeze(2), out=new)  # L + w[i] (p[j] - L[i, j])
            new.addcmul_(old, w.unsqueeze(1), value=-1)  # - w[j] L[i, j]: now (1 - w_i - w_j) L + w_i p_j
            new.diagonal(dim1=1, dim2=2).zero_()  # L_t[i, i] = 0
            if R:
                torch.bmm(new, read[s].mT, out=forward[s].mT)  # f = L w^r: [b, N, N] @ [b, N, R] -> [b, N, R]
                torch.bmm(read[s], new, out=backward[s])  # b = L^T w^r: [b, R, N] @ [b, N, N]
        new_precedence = update_precedence(precedence, write)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(link, write, precedence, read, new_link)
        return new_link, new_precedence, forward, backward

    @staticmethod
    def backward(ctx, d_link, d_prec, d_fwd, d_bwd):  # noqa: ANN001, ANN205
        saved, twice = _link_backward_start(ctx, (d_link, d_prec, d_fwd, d_bwd))
        if twice is not None:
            return twice
        link, write, precedence, read, new_link = saved
        need_link, need_write, need_prec, need_read = ctx.needs_input_grad
        B, N = write.shape
        directional = read.shape[1] > 0 and (d_fwd is not None or d_bwd is not None)
        left = right = d_read = None
        if directional:
            d_fwd = torch.zeros_like(read) if d_fwd is None else d_fwd
            d_bwd = torch.zeros_like(read) if d_bwd is None else d_bwd
            left = torch.cat([d_fwd.mT, read.mT], dim=-1)  # [df^T | (w^r)^T]: [B, N, 2R]
            right = torch.cat([read, d_bwd], dim=1)  # [w^r ; db]: [B, 2R, N]
            if need_read:  # dw^r = df L_t + db L_t^T, the second as (L_t db^T)^T
                d_read = torch.bmm(d_fwd, new_link).add_(torch.bmm(new_link, d_bwd.mT).mT)
        # G, the full gradient of L_t: in the incoming buffer when it is this function's own
        fresh = d_link is None  # then G is the directional part alone, written chunk by chunk
        if fresh:
            grad = _empty_link(write, (B, N, N)) if directional else None
        elif _owned(d_link):
            grad = d_link
        else:
            grad = d_link.clone(memory_format=torch.contiguous_format)
        d_write = d_precedence = None
        if grad is not None:
            d_write, d_precedence = torch.empty_like(write), torch.empty_like(precedence)
            step = max(1, _CHUNK_ENTRIES // (N * N))  # batch elements per chunk
            buffer = _scratch(write, (min(step, B), N, N))
            keep = torch.rsub(write, 1).unsqueeze(2)  # 1 - w_i, [B, N, 1]
            for start in range(0, B, step):
                s = slice(start, start + step)
                g, w, product = grad[s], write[s].unsqueeze(1), buffer[: grad[s].shape[0]]  # [b, N, N], [b, 1, N]
                if fresh:
                    torch.bmm(left[s], right[s], out=g)  # G = [df^T | w^r^T] [w^r ; db]
                elif directional:
                    g.baddbmm_(left[s], right[s])  # G = dL_t + [df^T | w^r^T] [w^r ; db]
                g.diagonal(dim1=1, dim2=2).zero_()  # L_t[i, i] is fixed at 0
                torch.mul(g, link[s], out=product)  # G * L_{t-1}
                # dw[k] = (G p)[k] - sum_j (G * L)[k, j] - sum_i (G * L)[i, k], G p as (p^T G^T) (BLAS's fast layout)
                d_write[s] = torch.bmm(precedence[s].unsqueeze(1), g.mT).squeeze(1).sub_(product.sum(-1)).sub_(product.sum(-2))
                d_precedence[s] = torch.bmm(w, g).squeeze(1)  # dp[j] = sum_i w[i] G[i, j]
                if need_link:  # dL_{t-1} = G * (1 - w_i - w_j), in place in G
                    g.mul_(torch.sub(keep[s], w, out=product))
        d_write, d_precedence = _add_precedence_vjp(d_prec, write, precedence, d_write, d_precedence)
        d_link_prev = None
        if need_link and grad is not None:
            d_link_prev = grad
            _own(d_link_prev)
        return d_link_prev, d_write if need_write else None, d_precedence if need_prec else None, d_read


def _add_precedence_vjp(
    d_prec: Tensor | None, write: Tensor, precedence: Tensor, d_write: Tensor | None, d_precedence: Tensor | None
) -> tuple[Tensor | None, Tensor | None]:
    """Add the gradient through ``p_t = (1 - sum w) p_{t-1} + w`` to ``(dw, dp_{t-1})`` (in place where given), ``[B, N]`` each."""
    if d_prec is None:
        return d_write, d_precedence
    d_from_prec = d_prec - (d_prec * precedence).sum(-1, keepdim=True)  # dw[k] = dp_t[k] - dp_t . p_{t-1}
    d_write = d_from_prec if d_write is None else d_write.add_(d_from_prec)
    scaled = d_prec * torch.rsub(write.sum(-1, keepdim=True), 1)  # dp_{t-1} = dp_t (1 - sum w)
    d_precedence = scaled if d_precedence is None else d_precedence.add_(scaled)
    return d_write, d_precedence


def _is_zero_link(link: Tensor) -> bool:
    """Whether ``link`` is the initial state's expanded scalar zero (no storage to read)."""
    return link.numel() > 0 and all(s == 0 for s in link.stride()) and not link[(0,) * link.dim()].item()


class _TemporalStepKernel(torch.autograd.Function):
    """:class:`_TemporalStep` with its ``[B, N, N]`` work done by the C++ loops of :mod:`mannkit_dnc.link_kernel`.

    Same inputs, outputs and equations; forward and backward each visit every link row once
    (see that module). Saves only its inputs (the backward recomputes rows of L_t from
    ``L_{t-1}``). The returned ``dL_{t-1}`` is written over the incoming ``dL_t`` when that buffer is
    this function's own (as :class:`_TemporalStep` does), else into a pooled buffer.
    """

    @staticmethod
    def forward(ctx, link: Tensor, write: Tensor, precedence: Tensor, read: Tensor):  # noqa: ANN001, ANN205
        B, N = write.shape
        has_link = not _is_zero_link(link)
        new_link = _empty_link(write, (B, N, N))
        forward, backward = read.new_empty(read.shape), read.new_empty(read.shape)  # f, b: [B, R, N]
        link_kernel.ops().link_forward(
            link.contiguous() if has_link else link, has_link, write.contiguous(), precedence.contiguous(),
            read.contiguous(), new_link, forward, backward,
        )  # fmt: skip
        ctx.has_link = has_link
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(link, write, precedence, read)
        return new_link, update_precedence(precedence, write), forward, backward

    @staticmethod
    def backward(ctx, d_link, d_prec, d_fwd, d_bwd):  # noqa: ANN001, ANN205
        saved, twice = _link_backward_start(ctx, (d_link, d_prec, d_fwd, d_bwd))
        if twice is not None:
            return twice
        link, write, precedence, read = saved
        need_link, need_write, need_prec, need_read = ctx.needs_input_grad
        B, N = write.shape
        directional = read.shape[1] > 0 and (d_fwd is not None or d_bwd is not None)
        d_write = d_precedence = d_read = d_link_prev = None
        if d_link is not None or directional:
            d_fwd = torch.zeros_like(read) if d_fwd is None else d_fwd.contiguous()
            d_bwd = torch.zeros_like(read) if d_bwd is None else d_bwd.contiguous()
            if d_link is None or _owned(d_link):
                out = d_link  # dL_{t-1} over the next step's own buffer, each entry read before it is written
            elif not d_link.is_contiguous():
                d_link = out = d_link.contiguous()  # a copy of our own
            else:
                out = None  # someone else's buffer: left alone
            if need_link and out is None:
                out = _empty_link(write, (B, N, N))
            d_write, d_precedence = torch.empty_like(write), torch.empty_like(precedence)
            need_read = need_read and directional
            d_read = torch.empty_like(read) if need_read else read
            link_kernel.ops().link_backward(
                d_link if d_link is not None else write, d_link is not None, d_fwd, d_bwd, read.contiguous(),
                write.contiguous(), precedence.contiguous(), link.contiguous() if ctx.has_link else link, ctx.has_link,
                out if need_link else write, need_link, d_write, d_precedence, d_read, need_read,
            )  # fmt: skip
            if need_link:
                d_link_prev = out
                _own(d_link_prev)
            if not need_read:
                d_read = None
        d_write, d_precedence = _add_precedence_vjp(d_prec, write, precedence, d_write, d_precedence)
        return d_link_prev, d_write if need_write else None, d_precedence if need_prec else None, d_read


def _temporal_function(link: Tensor, write: Tensor, precedence: Tensor, read: Tensor) -> type[torch.autograd.Function]:
    """The C++ link step where it applies (CPU, float32/float64, at most 8 read heads, eager, built), else the PyTorch one."""
    if (
        write.device.type != "cpu"
        or write.dtype not in (torch.float32, torch.float64)
        or not link.dtype == precedence.dtype == read.dtype == write.dtype
        or torch.compiler.is_compiling()  # (a compiled step at N <= 128 traces the PyTorch form)
        or read.shape[1] > link_kernel.MAX_HEADS
        or link_kernel.ops() is None
    ):
        return _TemporalStep
    return _TemporalStepKernel


@torch.compiler.disable
def temporal_step_eager(link: Tensor, write_weights: Tensor, precedence: Tensor, read_weights: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`temporal_step`, left out of a compiled step: run eagerly between its compiled parts.

    At large N the link passes are memory-bound and already hand-fused; Inductor's code for them
    was several times slower, while the rest of the step (dozens of small operations) still gains
    from compiling.
    """
    return _temporal_function(link, write_weights, precedence, read_weights).apply(link, write_weights, precedence, read_weights)


def temporal_step(link: Tensor, write_weights: Tensor, precedence: Tensor, read_weights: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One step of temporal linkage: the new link and precedence, and the directional weightings.

    Equal to :func:`~mannkit_dnc.mechanisms.update_link`, :func:`~mannkit_dnc.mechanisms.update_precedence`
    and :func:`~mannkit_dnc.mechanisms.directional_weights` in turn, in one autograd function that
    saves only its inputs and L_t and whose backward reuses its own gradient buffers.

    Args:
        link: L_{t-1}, ``[B, N, N]`` (may be an expanded zero tensor).
        write_weights: w^w_t, ``[B, N]``.
        precedence: p_{t-1}, ``[B, N]``.
        read_weights: w^r_{t-1}, ``[B, R, N]`` (R may be 0).

    Returns:
        ``(L_t [B, N, N], p_t [B, N], f_t [B, R, N], b_t [B, R, N])``.
    """
    return _temporal_function(link, write_weights, precedence, read_weights).apply(link, write_weights, precedence, read_weights)
