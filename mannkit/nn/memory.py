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

__all__ = ["MatrixMemory", "MatrixState", "read", "erase_add"]


class MatrixState(NamedTuple):
    memory: Tensor  # M, [B, N, W]


def read(weights: Tensor, memory: Tensor) -> Tensor:
    """Read vectors ``r_h = sum_n w_h[n] M[n]``.

    Args:
        weights: ``[B, h, N]``.
        memory: ``[B, N, W]``.

    Returns:
        ``[B, h, W]``.
    """
    return torch.bmm(weights, memory)


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
    if weights.shape[1] == 1:  # the common single-write-head case, without the product
        keep = 1 - weights.transpose(1, 2) * erase  # [B, N, 1] * [B, 1, W] -> [B, N, W]
        return memory * keep + weights.transpose(1, 2) * add
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
