"""Read and write heads over a matrix memory, each a bank of ``count`` heads vectorised together."""

from __future__ import annotations

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Addressing, Head, HeadOutput, Memory, State
from mannkit.core.registry import register

__all__ = ["ReadHead", "WriteHead"]


def _check_matrix_memory(owner: str, memory: Memory, needs: tuple[str, ...] = ("read", "write")) -> None:
    if not all(callable(getattr(memory, name, None)) for name in needs):
        raise ConfigError(
            f"{owner} needs a memory with {' and '.join(needs)} (such as MatrixMemory), but the memory is "
            f"{type(memory).__name__}; use a head made for {type(memory).__name__} or a matrix memory."
        )


def _check_count(owner: str, count: int) -> None:
    if not isinstance(count, int) or count < 1:
        raise ConfigError(f"{owner}: count must be a positive integer, got {count!r}; set count to 1 or more.")


class _AddressedHead(Head):
    """Shared plumbing: an addressing module and its per-bank state."""

    def __init__(self, addressing: Addressing, count: int = 1) -> None:
        super().__init__()
        _check_count(type(self).__name__, count)
        if not isinstance(addressing, Addressing):
            raise ConfigError(
                f"{type(self).__name__}: addressing must be an Addressing component, got {type(addressing).__name__}; "
                "give a class_path such as ContentAddressing."
            )
        self.addressing = addressing
        self._count = count

    @property
    def count(self) -> int:
        return self._count

    #: the memory operations this head calls
    needs: tuple[str, ...] = ("read", "write")

    def bind(self, memory: Memory) -> None:
        _check_matrix_memory(type(self).__name__, memory, self.needs)
        self.addressing.bind(memory)

    def initial_state(self, batch_size: int, memory: Memory, device: torch.device, dtype: torch.dtype) -> State:
        return self.addressing.initial_state(batch_size, self._count, memory, device, dtype)


@register
class ReadHead(_AddressedHead):
    """``count`` read heads: weights from the addressing, then ``r = w M``.

    Args:
        addressing: how the heads find locations (e.g. ContentAddressing, NTMAddressing).
        count: R, the number of read heads in this bank.
    """

    stage = 1
    needs = ("read",)

    def __init__(self, addressing: Addressing, count: int = 1) -> None:
        super().__init__(addressing, count)

    def param_size(self, memory: Memory) -> int:
        return self.addressing.param_size(memory)

    def read_size(self, memory: Memory) -> int:
        return memory.word_size

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, R, P]`` -> reads ``[B, R, W]``."""
        weights, state = self.addressing(params, memory_state, state)
        reads = memory.read(weights, memory_state)
        return HeadOutput(reads, memory_state, state, {"read_weights": weights} if record else {})


@register
class WriteHead(_AddressedHead):
    """``count`` write heads: weights from the addressing, erase ``e = sigmoid(.)`` and add ``a``.

    Args:
        addressing: how the heads find locations.
        count: the number of write heads in this bank.
    """

    stage = 0

    def __init__(self, addressing: Addressing, count: int = 1) -> None:
        super().__init__(addressing, count)

    def param_size(self, memory: Memory) -> int:
        return self.addressing.param_size(memory) + 2 * memory.word_size

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, h, P + 2W]`` -> the written memory state."""
        W = memory.word_size
        address, erase, add = params.split([params.shape[-1] - 2 * W, W, W], dim=-1)  # [B, h, P], [B, h, W], [B, h, W]
        weights, state = self.addressing(address, memory_state, state)
        memory_state = memory.write(weights, torch.sigmoid(erase), add, memory_state)
        return HeadOutput(None, memory_state, state, {"write_weights": weights} if record else {})
