"""The write addressing, read addressing and erase/add nodes of :mod:`mannkit_dnc.fused` with their loops in C++.

Shape letters: B batch, N memory slots, W word size, R read heads.

Each class has the inputs, outputs and equations of its PyTorch counterpart in :mod:`mannkit_dnc.fused`
(``_WriteAddressing``, ``_ReadAddressing``, :func:`mannkit.nn.memory.erase_add`); the loops are those of
:mod:`mannkit_dnc.addressing_kernel`. They save their inputs themselves, so that a double backward
differentiates the composed reference functions of :mod:`mannkit_dnc.fused` through them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mannkit_dnc import addressing_kernel
from mannkit_dnc.fused_link import _reference_vjp

__all__ = ["_kernel_applies", "_WriteAddressingKernel", "_ReadAddressingKernel", "_EraseAddKernel"]


def _references():  # noqa: ANN202
    """The reference forms, for a double backward (imported late: :mod:`mannkit_dnc.fused` imports this module)."""
    from mannkit_dnc import fused

    return fused


def _kernel_applies(*tensors: Tensor) -> bool:
    """Whether the C++ addressing applies: CPU, one float32/float64 dtype throughout, eager, built."""
    first = tensors[0]
    return (
        first.device.type == "cpu"
        and first.dtype in (torch.float32, torch.float64)
        and all(t.dtype == first.dtype and t.device == first.device for t in tensors)
        and not torch.compiler.is_compiling()
        and addressing_kernel.ops() is not None
    )


def _write_kernel_inputs(memory, usage, previous_write, previous_read, key, strength, free_gates, allocation_gate, write_gate):  # noqa: ANN001, ANN202
    """The write inputs as the C++ kernel takes them: contiguous, key ``[B, W]``, strength and gates ``[B]``."""
    B = memory.shape[0]
    return (memory.contiguous(), usage.contiguous(), previous_write.contiguous(), previous_read.contiguous(),
            key.reshape(B, -1).contiguous(), strength.reshape(B).contiguous(), free_gates.contiguous(),
            allocation_gate.reshape(B).contiguous(), write_gate.reshape(B).contiguous())  # fmt: skip


class _WriteAddressingKernel(torch.autograd.Function):
    """:class:`_WriteAddressing` with its loops in C++ (needs ``eps > 0``); same inputs, outputs and equations."""

    @staticmethod
    def forward(ctx, memory, usage, previous_write, previous_read, key, strength, free_gates, allocation_gate, write_gate, eps):  # noqa: ANN001, ANN205
        originals = (memory, usage, previous_write, previous_read, key, strength, free_gates, allocation_gate, write_gate)
        new_usage, weights, allocation, *parts = addressing_kernel.ops().write_forward(*_write_kernel_inputs(*originals), eps)
        ctx.eps = eps
        ctx.mark_non_differentiable(allocation)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*originals, allocation, *parts)  # the inputs themselves: a double backward differentiates them
        return new_usage, weights, allocation

    @staticmethod
    def backward(ctx, d_usage, d_weights, _d_allocation):  # noqa: ANN001, ANN205
        saved, needs = ctx.saved_tensors, ctx.needs_input_grad
        if torch.is_grad_enabled():  # a double backward: differentiate the composition
            return _reference_vjp(_references().write_addressing_reference, (*saved[:9], ctx.eps), needs, (d_usage, d_weights, None))
        if d_usage is None and d_weights is None:
            return (None,) * 10
        usage = saved[1]
        d_usage = torch.zeros_like(usage) if d_usage is None else d_usage.contiguous()
        has_weights = d_weights is not None
        d_weights = d_weights.contiguous() if has_weights else usage
        grads = addressing_kernel.ops().write_backward(d_usage, d_weights, has_weights, *_write_kernel_inputs(*saved[:9]), *saved[9:], ctx.eps)
        by_input = [g.view(x.shape) for g, x in zip(grads, saved[:9])]  # the kernel's [B, W] and [B] back to [B, 1, W], [B, 1]
        if not has_weights:  # nothing flowed into the content weighting or the gates
            for i in (0, 4, 5, 7, 8):
                by_input[i] = None
        return tuple(g if needs[i] else None for i, g in enumerate(by_input)) + (None,)


class _ReadAddressingKernel(torch.autograd.Function):
    """:class:`_ReadAddressing` with its loops in C++; same inputs, outputs and equations."""

    @staticmethod
    def forward(ctx, memory, keys, strengths, modes, forward, backward):  # noqa: ANN001, ANN205
        originals = (memory, keys, strengths, modes, forward, backward)
        reads, weights, *parts = addressing_kernel.ops().read_forward(*(t.contiguous() for t in originals))
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*originals, weights, *parts)  # the inputs themselves: a double backward differentiates them
        return reads, weights

    @staticmethod
    def backward(ctx, d_reads, d_weights):  # noqa: ANN001, ANN205
        saved, needs = ctx.saved_tensors, ctx.needs_input_grad
        if torch.is_grad_enabled():
            return _reference_vjp(_references().read_addressing_reference, saved[:6], needs, (d_reads, d_weights))
        if d_reads is None and d_weights is None:
            return (None,) * 6
        keys, weights = saved[1], saved[6]
        has_reads, has_weights = d_reads is not None, d_weights is not None
        grads = addressing_kernel.ops().read_backward(
            d_reads.contiguous() if has_reads else keys, has_reads, d_weights.contiguous() if has_weights else weights,
            has_weights, *(t.contiguous() for t in saved[:6]), *saved[6:],
        )  # fmt: skip
        return tuple(g if needs[i] else None for i, g in enumerate(grads))


class _EraseAddKernel(torch.autograd.Function):
    """One write head's erase and add with its passes over ``[B, N, W]`` in C++ (weights ``[B, N]``, erase/add ``[B, W]``)."""

    @staticmethod
    def forward(ctx, memory, weights, erase, add):  # noqa: ANN001, ANN205
        ctx.save_for_backward(memory, weights, erase, add)
        return addressing_kernel.ops().erase_add_forward(memory.contiguous(), weights.contiguous(), erase.contiguous(), add.contiguous())

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        saved, needs = ctx.saved_tensors, ctx.needs_input_grad
        if torch.is_grad_enabled():
            return _reference_vjp(_references().erase_add_reference, saved, needs, (grad,))
        grads = addressing_kernel.ops().erase_add_backward(grad.contiguous(), *(t.contiguous() for t in saved), needs[0])
        return tuple(g if need else None for g, need in zip(grads, needs))
