"""The DNC step as three autograd functions with hand-written backwards (what :class:`DNCMemory` runs).

Shape letters: B batch, N memory slots, W word size, R read heads.

At small N a DNC step costs the number of tensor calls and autograd nodes, and at large N the
passes over the ``[B, N, N]`` link matrix, so the mechanisms of :mod:`mannkit_dnc.mechanisms`
run fused:

- :func:`write_addressing` — retention, usage, allocation, write content weighting and write
  weighting (one node instead of about forty);
- :func:`temporal_step` — link, precedence and the directional weightings: on CPU in float32/64
  the C++ row loops of :mod:`mannkit_dnc.link_kernel` (``_TemporalStepKernel``, one visit per link
  row forward and backward), elsewhere, in a compiled step, or if the extension cannot be built,
  the PyTorch form ``_TemporalStep`` (same results);
- :func:`read_addressing` — read content weightings, read modes and the read vectors.

Each equals the composition of the pure functions (``*_reference`` below, checked in the
tests); a double backward differentiates that composition instead of the hand-written one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from mannkit.nn.addressing import EPS, content_weights, cosine_similarity_parts, cosine_similarity_vjp
from mannkit.nn.memory import outer_sum, read
from mannkit_dnc import link_kernel
from mannkit_dnc.buffers import _empty_link, _own, _owned, _scratch
from mannkit_dnc.mechanisms import (
    allocation_weights,
    directional_weights,
    read_weighting,
    retention,
    update_link,
    update_precedence,
    update_usage,
    write_weighting,
)

__all__ = [
    "write_addressing",
    "write_addressing_reference",
    "temporal_step",
    "temporal_step_reference",
    "read_addressing",
    "read_addressing_reference",
]

_aten = torch.ops.aten

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


def _suffix_sum(x: Tensor) -> Tensor:
    """``y[k] = sum_{j>k} x[j]`` along the last axis (by a reversed cumsum: no cancellation)."""
    tail = x.roll(-1, -1)  # x[k + 1] ...
    tail.select(-1, -1).zero_()  # ... and 0 at the end
    return tail.flip(-1).cumsum_(-1).flip(-1)  # sum_{j>k} x[j], summed from the end


def _exclusive_products(factors: Tensor) -> Tensor:
    """``y[h] = prod_{h' != h} x[h']`` along axis 1 (prefix times suffix products: no division)."""
    ones = torch.ones_like(factors[:, :1])
    prefix = torch.cat([ones, factors[:, :-1].cumprod(1)], dim=1)  # prod_{h' < h}
    suffix = torch.cat([factors[:, 1:].flip(1).cumprod(1).flip(1), ones], dim=1)  # prod_{h' > h}
    return prefix * suffix


def _sorted_allocation_vjp(grad: Tensor, sorted_usage: Tensor, before: Tensor, sorted_allocation: Tensor, eps: float) -> Tensor:
    """The gradient of ``a[j] = (1 - u[j]) prod_{i<j} u[i]`` (sorted order) with respect to u, ``[B, N]``.

    ``du[k] = -da[k] prod_{i<k} u[i] + sum_{j>k} da[j] a[j] / u[k]``; the division is safe because
    usage is floored at ``eps > 0``. With ``eps = 0`` a usage can be exactly 0, and autograd's own
    cumulative-product backward (which handles zeros) is used instead.
    """
    if eps > 0:
        return _suffix_sum(grad * sorted_allocation).div_(sorted_usage).addcmul_(grad, before, value=-1)
    with torch.enable_grad():
        usage = sorted_usage.detach().requires_grad_()
        exclusive = torch.cat([torch.ones_like(usage[:, :1]), usage[:, :-1]], dim=-1).cumprod(-1)
        (d_usage,) = torch.autograd.grad((1 - usage) * exclusive, usage, grad)
    return d_usage


# -- write addressing -----------------------------------------------------------------------------
def write_addressing_reference(
    memory: Tensor, usage: Tensor, previous_write: Tensor, previous_read: Tensor, key: Tensor, strength: Tensor,
    free_gates: Tensor, allocation_gate: Tensor, write_gate: Tensor, eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`write_addressing` composed of the mechanisms (for tests and second-order gradients)."""
    new_usage = update_usage(usage, previous_write, retention(free_gates, previous_read))  # u_t
    allocation = allocation_weights(new_usage, eps)  # a_t
    content = content_weights(key, strength, memory)[:, 0]  # c^w_t: [B, 1, N] -> [B, N]
    return new_usage, write_weighting(allocation, content, allocation_gate, write_gate), allocation


class _WriteAddressing(torch.autograd.Function):
    """Retention, usage, allocation, content and write weighting in one node (see :func:`write_addressing`)."""

    @staticmethod
    def forward(ctx, memory, usage, previous_write, previous_read, key, strength, free_gates, allocation_gate, write_gate, eps):  # noqa: ANN001, ANN205
        one = usage.new_ones(())  # a tensor 1 (Python-number arithmetic is several times slower per call)
        keep = torch.addcmul(one, free_gates.unsqueeze(-1), previous_read, value=-1)  # 1 - f_i w^r_i, [B, R, N]
        psi = keep.prod(1)  # psi_t, [B, N]
        kept = torch.addcmul(usage + previous_write, usage, previous_write, value=-1)  # u + w^w - u w^w, [B, N]
        new_usage = kept * psi  # u_t
        floored = torch.lerp(new_usage, one, eps)  # eps + (1 - eps) u_t
        sorted_usage, free_list = torch.sort(floored, dim=-1, stable=True)  # u[phi_j], phi
        before = sorted_usage.roll(1, -1)  # u[phi_{j-1}] ...
        before.select(-1, 0).fill_(1.0)  # ... and 1 first
        before.cumprod_(-1)  # prod_{i<j} u[phi_i]
        sorted_allocation = torch.addcmul(before, sorted_usage, before, value=-1)  # a[phi_j] = (1 - u[phi_j]) prod
        allocation = torch.empty_like(floored).scatter_(-1, free_list, sorted_allocation)  # a_t in slot order
        sims, key_sq, mem_sq, scale = cosine_similarity_parts(key, memory, EPS)  # [B, 1, N]
        content = torch.softmax(strength.unsqueeze(-1) * sims, dim=-1)  # c^w_t, [B, 1, N]
        mixed = torch.lerp(content[:, 0], allocation, allocation_gate)  # g^a a + (1 - g^a) c
        weights = write_gate * mixed  # w^w_t, [B, N]
        ctx.eps = eps
        ctx.mark_non_differentiable(allocation)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(
            memory, usage, previous_write, previous_read, key, strength, free_gates, allocation_gate, write_gate,
            keep, psi, kept, free_list, sorted_usage, before, sorted_allocation, allocation,
            sims, key_sq, mem_sq, scale, content, mixed,
        )  # fmt: skip
        return new_usage, weights, allocation

    @staticmethod
    def backward(ctx, d_usage, d_weights, _d_allocation):  # noqa: ANN001, ANN205
        saved = ctx.saved_tensors
        inputs, needs = (*saved[:9], ctx.eps), ctx.needs_input_grad
        if torch.is_grad_enabled():
            return _reference_vjp(write_addressing_reference, inputs, needs, (d_usage, d_weights, None))
        memory, usage, previous_write, previous_read, key, strength, free_gates, allocation_gate, write_gate = saved[:9]
        keep, psi, kept, free_list, sorted_usage, before, sorted_allocation, allocation = saved[9:17]
        sims, key_sq, mem_sq, scale, content, mixed = saved[17:]
        grads: dict[int, Tensor | None] = {}
        d_new_usage = torch.zeros_like(usage) if d_usage is None else d_usage
        if d_weights is not None:
            grads[8] = (d_weights * mixed).sum(-1, keepdim=True)  # d g^w, [B, 1]
            d_mixed = d_weights * write_gate
            grads[7] = (d_mixed * (allocation - content[:, 0])).sum(-1, keepdim=True)  # d g^a
            d_allocation = d_mixed * allocation_gate
            d_content = (d_mixed - d_allocation).unsqueeze(1)  # (1 - g^a) dw, [B, 1, N]
            # c = softmax(beta K)
            d_scores = _aten._softmax_backward_data(d_content, content, -1, content.dtype)
            grads[5] = (d_scores * sims).sum(-1)  # d beta, [B, 1]
            grads[4], grads[0] = cosine_similarity_vjp(
                d_scores * strength.unsqueeze(-1), key, memory, sims, key_sq, mem_sq, scale,
                need_keys=needs[4], need_memory=needs[0],
            )  # fmt: skip
            # a[phi_j] = (1 - u[phi_j]) prod_{i<j} u[phi_i]:
            # du[phi_k] = -da[phi_k] prod_{i<k} u[phi_i] + sum_{j>k} da[phi_j] a[phi_j] / u[phi_k]
            d_floored = _sorted_allocation_vjp(d_allocation.gather(-1, free_list), sorted_usage, before, sorted_allocation, ctx.eps)
            d_new_usage = torch.empty_like(d_floored).scatter_(-1, free_list, d_floored).mul_(1 - ctx.eps).add_(d_new_usage)
        # u_t = kept * psi with kept = u + w^w - u w^w
        d_kept = d_new_usage * psi
        if needs[1]:
            grads[1] = d_kept - d_kept * previous_write
        if needs[2]:
            grads[2] = d_kept - d_kept * usage
        if free_gates.shape[1] > 0 and (needs[3] or needs[6]):  # psi = prod_i (1 - f_i w^r_i)
            d_keep = (d_new_usage * kept).unsqueeze(1) * _exclusive_products(keep)  # [B, R, N]
            grads[6] = torch.linalg.vecdot(d_keep, previous_read).neg_()  # d f = -sum_n d keep w^r, [B, R]
            grads[3] = d_keep.mul_(free_gates.unsqueeze(-1)).neg_()  # d w^r_{t-1}, [B, R, N]
        return tuple(grads.get(i) if needs[i] else None for i in range(9)) + (None,)


def write_addressing(
    memory: Tensor, usage: Tensor, previous_write: Tensor, previous_read: Tensor, key: Tensor, strength: Tensor,
    free_gates: Tensor, allocation_gate: Tensor, write_gate: Tensor, eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Usage, write weighting and allocation of one DNC write, fused.

    Args:
        memory: M_{t-1}, ``[B, N, W]``.
        usage: u_{t-1}, ``[B, N]``.
        previous_write: w^w_{t-1}, ``[B, N]``.
        previous_read: w^r_{t-1}, ``[B, R, N]``.
        key: the write key, ``[B, 1, W]``.
        strength: beta^w, ``[B, 1]``.
        free_gates: f, ``[B, R]``.
        allocation_gate: g^a, ``[B, 1]``.
        write_gate: g^w, ``[B, 1]``.
        eps: the usage floor of :func:`~mannkit_dnc.mechanisms.allocation_weights`.

    Returns:
        ``(u_t [B, N], w^w_t [B, N], a_t [B, N])``; a_t (for pictures) carries no gradient.
    """
    return _WriteAddressing.apply(memory, usage, previous_write, previous_read, key, strength, free_gates, allocation_gate, write_gate, eps)


# -- temporal linkage -----------------------------------------------------------------------------
def temporal_step_reference(
    link: Tensor, write_weights: Tensor, precedence: Tensor, read_weights: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`temporal_step` composed of the mechanisms (for tests and second-order gradients)."""
    new_link = update_link(link, write_weights, precedence)
    forward, backward = directional_weights(new_link, read_weights)
    return new_link, update_precedence(precedence, write_weights), forward, backward


def _link_backward_start(ctx: Any, grads: tuple) -> tuple[tuple[Tensor, ...], tuple | None]:
    """The saved ``(L_{t-1}, w^w, p_{t-1}, w^r)`` of a link step, and, when differentiating twice, the gradients of
    the reference form instead (None otherwise): the hand-written backwards are first-order only."""
    link, write, precedence, read = ctx.saved_tensors[:4]
    if torch.is_grad_enabled():
        return (link, write, precedence, read), _reference_vjp(
            temporal_step_reference, (link, write, precedence, read), ctx.needs_input_grad, grads)
    return (link, write, precedence, read), None


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
        (link, write, precedence, read), twice = _link_backward_start(ctx, (d_link, d_prec, d_fwd, d_bwd))
        if twice is not None:
            return twice
        new_link = ctx.saved_tensors[4]
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
        (link, write, precedence, read), twice = _link_backward_start(ctx, (d_link, d_prec, d_fwd, d_bwd))
        if twice is not None:
            return twice
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


# -- read addressing ------------------------------------------------------------------------------
def read_addressing_reference(
    memory: Tensor, keys: Tensor, strengths: Tensor, modes: Tensor, forward: Tensor, backward: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`read_addressing` composed of the mechanisms (for tests and second-order gradients)."""
    weights = read_weighting(backward, content_weights(keys, strengths, memory), forward, modes)
    return read(weights, memory), weights


class _ReadAddressing(torch.autograd.Function):
    """Read content weightings, the read-mode mix and the read vectors in one node (see :func:`read_addressing`)."""

    @staticmethod
    def forward(ctx, memory, keys, strengths, modes, forward, backward):  # noqa: ANN001, ANN205
        sims, key_sq, mem_sq, scale = cosine_similarity_parts(keys, memory, EPS)  # [B, R, N]
        content = torch.softmax(strengths.unsqueeze(-1) * sims, dim=-1)  # c^r_t, [B, R, N]
        weights = read_weighting(backward, content, forward, modes)  # w^r_t, [B, R, N]
        reads = torch.bmm(weights, memory)  # r_t = w^r M: [B, R, N] @ [B, N, W]
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(memory, keys, strengths, modes, forward, backward, sims, key_sq, mem_sq, scale, content, weights)
        return reads, weights

    @staticmethod
    def backward(ctx, d_reads, d_weights):  # noqa: ANN001, ANN205
        saved = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():
            return _reference_vjp(read_addressing_reference, saved[:6], needs, (d_reads, d_weights))
        memory, keys, strengths, modes, forward, backward, sims, key_sq, mem_sq, scale, content, weights = saved
        d_memory = None
        if d_reads is not None:  # r = w M
            from_reads = torch.bmm(d_reads, memory.mT)  # [B, R, W] @ [B, W, N]
            d_weights = from_reads if d_weights is None else d_weights + from_reads
            if needs[0]:
                d_memory = outer_sum(weights, d_reads)  # w^T dr, [B, N, W]
        if d_weights is None:
            return (d_memory, None, None, None, None, None)
        pi_b, pi_c, pi_f = modes.unsqueeze(-1).unbind(dim=2)  # three [B, R, 1]
        d_modes = None
        if needs[3]:  # d pi = (dw . b, dw . c, dw . f)
            d_modes = torch.stack([(d_weights * backward).sum(-1), (d_weights * content).sum(-1), (d_weights * forward).sum(-1)], -1)
        d_scores = _aten._softmax_backward_data(d_weights * pi_c, content, -1, content.dtype)  # c = softmax(beta K)
        d_strengths = (d_scores * sims).sum(-1) if needs[2] else None
        d_keys, d_from_content = cosine_similarity_vjp(
            d_scores * strengths.unsqueeze(-1), keys, memory, sims, key_sq, mem_sq, scale,
            need_keys=needs[1], need_memory=needs[0],
        )  # fmt: skip
        if d_from_content is not None:
            d_memory = d_from_content if d_memory is None else d_memory + d_from_content
        return (
            d_memory,
            d_keys,
            d_strengths,
            d_modes,
            d_weights * pi_f if needs[4] else None,
            d_weights * pi_b if needs[5] else None,
        )


def read_addressing(
    memory: Tensor, keys: Tensor, strengths: Tensor, modes: Tensor, forward: Tensor, backward: Tensor
) -> tuple[Tensor, Tensor]:
    """R DNC reads, fused: content weightings, the read-mode mix and ``r = w^r M``.

    Args:
        memory: M_t, ``[B, N, W]``.
        keys: the read keys, ``[B, R, W]``.
        strengths: beta^r, ``[B, R]``.
        modes: pi, ``[B, R, 3]`` (backward, content, forward).
        forward: f_t, ``[B, R, N]``.
        backward: b_t, ``[B, R, N]``.

    Returns:
        ``(r_t [B, R, W], w^r_t [B, R, N])``.
    """
    return _ReadAddressing.apply(memory, keys, strengths, modes, forward, backward)
