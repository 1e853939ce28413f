"""The DNC step as three autograd functions with hand-written backwards (what :class:`DNCMemory` runs).

Shape letters: B batch, N memory slots, W word size, R read heads.

At small N a DNC step costs the number of tensor calls and autograd nodes, and at large N the
passes over the ``[B, N, N]`` link matrix, so the mechanisms of :mod:`mannkit_dnc.mechanisms`
run fused:

- :func:`write_addressing` — retention, usage, allocation, write content weighting and write
  weighting (one node instead of about forty);
- :func:`temporal_step` — link, precedence and the directional weightings (in
  :mod:`mannkit_dnc.fused_link`: the C++ row loops of :mod:`mannkit_dnc.link_kernel` on CPU, else the
  PyTorch form; re-exported here);
- :func:`read_addressing` — read content weightings, read modes and the read vectors;
- :func:`erase_add` — the write of M_t, one pass over M forward and one backward.

On CPU (float32/64, eager) the loops of the write and read addressing and of the erase/add are C++
(:mod:`mannkit_dnc.addressing_kernel`), the same equations with fewer passes and calls.

Each equals the composition of the pure functions (``*_reference`` below, checked in the
tests); a double backward differentiates that composition instead of the hand-written one.
"""

from __future__ import annotations


import torch
from torch import Tensor

from mannkit.nn.addressing import EPS, content_weights, cosine_similarity_parts, cosine_similarity_vjp
from mannkit.nn.memory import erase_add as _erase_add_core
from mannkit.nn.memory import outer_sum, read
from mannkit_dnc.fused_cpu import _EraseAddKernel, _kernel_applies, _ReadAddressingKernel, _WriteAddressingKernel
from mannkit_dnc.fused_link import _reference_vjp, temporal_step, temporal_step_eager, temporal_step_reference
from mannkit_dnc.mechanisms import allocation_weights, read_weighting, retention, update_usage, write_weighting

__all__ = [
    "write_addressing",
    "write_addressing_reference",
    "temporal_step",
    "temporal_step_eager",
    "temporal_step_reference",
    "read_addressing",
    "read_addressing_reference",
    "erase_add",
    "erase_add_reference",
]

_aten = torch.ops.aten


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
    inputs = (memory, usage, previous_write, previous_read, key, strength, free_gates, allocation_gate, write_gate)
    function = _WriteAddressingKernel if eps > 0 and _kernel_applies(*inputs) else _WriteAddressing
    return function.apply(*inputs, eps)


# -- temporal linkage: mannkit_dnc.fused_link ----------------------------------------------------

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
    inputs = (memory, keys, strengths, modes, forward, backward)
    return (_ReadAddressingKernel if _kernel_applies(*inputs) else _ReadAddressing).apply(*inputs)


def erase_add_reference(memory: Tensor, weights: Tensor, erase: Tensor, add: Tensor) -> tuple[Tensor]:
    """:func:`erase_add` as :func:`mannkit.nn.memory.erase_add` computes it (for tests and second-order gradients)."""
    return (_erase_add_core(memory, weights.unsqueeze(1), erase.unsqueeze(1), add.unsqueeze(1)),)


def erase_add(memory: Tensor, weights: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """The DNC write ``M_t = M_{t-1} (1 - w e^T) + w v^T`` for one head, fused.

    Args:
        memory: M_{t-1}, ``[B, N, W]``.
        weights: w^w_t, ``[B, N]``.
        erase: e, ``[B, 1, W]``.
        add: v, ``[B, 1, W]``.

    Returns:
        M_t, ``[B, N, W]``.
    """
    if _kernel_applies(memory, weights, erase, add):
        B = memory.shape[0]
        return _EraseAddKernel.apply(memory, weights, erase.reshape(B, -1), add.reshape(B, -1))
    return _erase_add_core(memory, weights.unsqueeze(1), erase, add)
