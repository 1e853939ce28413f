"""The matrix memory shared by NTM-style models: ``M [B, N, W]`` with read and erase/add write.

The mechanisms are pure functions (:func:`read`, :func:`erase_add`) so that they can
be tested and gradchecked on their own; :class:`MatrixMemory` owns the state.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Memory
from mannkit.core.registry import register

__all__ = ["MatrixMemory", "MatrixState", "read", "erase_add", "outer_sum"]


class MatrixState(NamedTuple):
    memory: Tensor  # M, [B, N, W]


def outer_sum(weights: Tensor, vectors: Tensor) -> Tensor:
    """``sum_h w_h v_h^T``, the rank-h update of a memory.

    A broadcast product for one head (a ``bmm`` with an inner size of 1 is several times
    slower on CPU), ``bmm`` otherwise.

    Args:
        weights: w, ``[B, h, N]``.
        vectors: v, ``[B, h, W]``.

    Returns:
        ``[B, N, W]``.
    """
    if weights.shape[1] == 1:
        return weights.transpose(1, 2) * vectors  # [B, N, 1] * [B, 1, W] -> [B, N, W]
    return torch.bmm(weights.transpose(1, 2), vectors)  # [B, N, h] @ [B, h, W] -> [B, N, W]


class _Read(torch.autograd.Function):
    """``r = w M`` with a backward that forms ``dM = w^T dr`` without a k=1 ``bmm``."""

    @staticmethod
    def forward(ctx, weights: Tensor, memory: Tensor) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(weights, memory)
        return torch.bmm(weights, memory)  # [B, h, N] @ [B, N, W] -> [B, h, W]

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:  # noqa: ANN001
        weights, memory = ctx.saved_tensors
        d_weights = torch.bmm(grad, memory.transpose(1, 2)) if ctx.needs_input_grad[0] else None  # [B, h, N]
        d_memory = outer_sum(weights, grad) if ctx.needs_input_grad[1] else None  # w^T dr: [B, N, W]
        return d_weights, d_memory


class _EraseAddOneHead(torch.autograd.Function):
    """The single-head write ``M' = M + w^T (a - e * M)`` (= ``M (1 - w e^T) + w a^T``) in two passes over M.

    Backward, with ``G = dL/dM'``: ``dM = G (1 - w e^T)``, ``dw[n] = G[n] . a - (G * M)[n] . e``,
    ``da = w G``, ``de = -w (G * M)``; nothing of size ``[B, N, W]`` is saved but the input M.
    """

    @staticmethod
    def forward(ctx, memory: Tensor, weights: Tensor, erase: Tensor, add: Tensor) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(memory, weights, erase, add)
        delta = torch.addcmul(add, erase, memory, value=-1)  # D = a - e * M: [B, 1, W] and [B, N, W] -> [B, N, W]
        return torch.addcmul(memory, weights.mT, delta)  # M + w^T D: [B, N, 1] * [B, N, W]

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN205, ANN001
        memory, weights, erase, add = ctx.saved_tensors
        need_m, need_w, need_e, need_a = ctx.needs_input_grad
        w_col = weights.mT  # [B, 1, N] -> [B, N, 1]
        d_memory = d_weights = d_erase = d_add = None
        if need_m:
            d_memory = torch.addcmul(grad, w_col, grad * erase, value=-1)  # G - w^T (e * G) = G (1 - w e^T)
        grad_memory = grad * memory if (need_w or need_e) else None  # G * M, [B, N, W]
        if need_w:  # dw[n] = G[n] . a - (G * M)[n] . e, as two [B, 1, W] @ [B, W, N] products
            d_weights = torch.baddbmm(torch.bmm(add, grad.transpose(1, 2)), erase, grad_memory.transpose(1, 2), alpha=-1)
        if need_e:
            d_erase = -torch.bmm(weights, grad_memory)  # -w (G * M): [B, 1, N] @ [B, N, W] -> [B, 1, W]
        if need_a:
            d_add = torch.bmm(weights, grad)  # w G: [B, 1, W]
        return d_memory, d_weights, d_erase, d_add


def read(weights: Tensor, memory: Tensor) -> Tensor:
    """Read vectors ``r_h = sum_n w_h[n] M[n]``.

    Args:
        weights: ``[B, h, N]``.
        memory: ``[B, N, W]``.

    Returns:
        ``[B, h, W]``.
    """
    return _Read.apply(weights, memory)


def erase_add(memory: Tensor, weights: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """NTM write for ``h`` heads at once: ``M' = M * prod_h(1 - w_h e_h^T) + sum_h w_h a_h^T``.

    Args:
        memory: M, ``[B, N, W]``.
        weights: w, ``[B, h, N]``.
        erase: e in [0, 1], ``[B, h, W]``.
        add: a, ``[B, h, W]``.

    Returns:
        The new memory ``[B, N, W]``.
    """
    if weights.shape[1] == 1:  # the common single-write-head case: M + w^T (a - e * M), hand-written backward
        return _EraseAddOneHead.apply(memory, weights, erase, add)
    keep = (1 - weights.unsqueeze(-1) * erase.unsqueeze(-2)).prod(dim=1)  # [B, h, N, W] -> [B, N, W]
    return memory * keep + torch.bmm(weights.transpose(1, 2), add)  # sum_h w_h a_h^T: [B, N, h] @ [B, h, W]


@register
class MatrixMemory(Memory):
    """N slots of W numbers per example.

    Args:
        slots: N, the number of memory locations.
        word_size: W, the width of each location.
        init: how the memory starts each sequence: ``constant`` (every entry ``init_value``,
            Collier & Beel 2018's best), ``learned`` (one learned ``[N, W]`` matrix shared across
            the batch), or ``random`` (fresh Gaussian noise of std ``init_std`` each sequence).
        init_value: the constant for ``constant`` init.
        init_std: the standard deviation for ``random`` and the initial scale of ``learned``.
    """

    def __init__(
        self,
        slots: int = 128,
        word_size: int = 20,
        init: Literal["constant", "learned", "random"] = "constant",
        init_value: float = 1e-6,
        init_std: float = 0.5,
    ) -> None:
        super().__init__()
        for name, value in (("slots", slots), ("word_size", word_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"MatrixMemory: {name} must be a positive integer, got {value!r}; set it to 1 or more.")
        if not isinstance(init_std, (int, float)) or isinstance(init_std, bool) or not init_std >= 0:
            raise ConfigError(f"MatrixMemory: init_std must be a non-negative number, got {init_std!r}; set it to 0 or more.")
        if init not in ("constant", "learned", "random"):
            raise ConfigError(f"MatrixMemory: init must be constant, learned or random, got {init!r}; pick one of those.")
        self.slots, self._word_size, self.init = slots, word_size, init
        self.init_value, self.init_std = init_value, init_std
        if init == "learned":
            self.initial = nn.Parameter(torch.randn(slots, word_size) * init_std / math.sqrt(word_size))
        else:
            self.initial = None

    @property
    def word_size(self) -> int:
        return self._word_size

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> MatrixState:
        shape = (batch_size, self.slots, self._word_size)
        if self.init == "learned":
            return MatrixState(self.initial.to(device=device, dtype=dtype).expand(batch_size, -1, -1))  # [N, W] -> [B, N, W]
        if self.init == "random":
            return MatrixState(torch.randn(shape, device=device, dtype=dtype) * self.init_std)
        return MatrixState(torch.full(shape, self.init_value, device=device, dtype=dtype))

    def read(self, weights: Tensor, state: MatrixState) -> Tensor:
        """``weights [B, h, N]`` -> read vectors ``[B, h, W]``."""
        return read(weights, state.memory)

    def write(self, weights: Tensor, erase: Tensor, add: Tensor, state: MatrixState) -> MatrixState:
        """Erase then add (see :func:`erase_add`)."""
        return MatrixState(erase_add(state.memory, weights, erase, add))

    def describe(self, state: MatrixState) -> dict[str, Tensor]:
        return {"memory": state.memory}
