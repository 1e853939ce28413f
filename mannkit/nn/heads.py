"""Read and write heads over a matrix memory, each a bank of ``count`` heads vectorised together.

Shape letters: B batch, h heads of the bank, N slots, W word size, P one addressing's parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Addressing, Head, HeadOutput, Memory, State
from mannkit.core.registry import register
from mannkit.nn.allocation import allocation_weights, write_weighting

__all__ = ["ReadHead", "WriteHead", "AllocatingWriteHead", "AllocationState"]


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


class AllocationState(NamedTuple):
    """The state of an :class:`AllocatingWriteHead` bank."""

    addressing: State  #: the content addressing's own state
    usage: Tensor  #: u, how much each slot is in use, ``[B, N]`` in [0, 1]


@register
class AllocatingWriteHead(WriteHead):
    """``count`` write heads that write to the least-used slot or to a content match, as a learned gate decides.

    The DNC's dynamic allocation (Graves et al. 2016) on any memory with ``write`` and a fixed number of ``slots``.

    Per head, P = (the addressing's P) + 2 + 2W: the content addressing's numbers, the allocation
    gate g^a and the write gate g^w (sigmoids), erase e (sigmoid) and add a. At each step:

    - allocation ``a[phi_j] = (1 - u[phi_j]) prod_{i<j} u[phi_i]`` (:func:`~mannkit.nn.allocation.allocation_weights`);
      with several heads, head i allocates from the usage after heads 1..i-1's allocations
      (``u <- u + g^w_i (1 - u) a_i``), so two heads do not pick the same free slot;
    - the write weighting ``w = g^w (g^a a + (1 - g^a) c)``, c the addressing's content weighting;
    - the memory's erase/add write with w; then the usage ``u <- 1 - (1 - u) prod_h (1 - w_h)``
      (:func:`~mannkit.nn.allocation.update_usage` with every head's write).

    **Shortcut:** the DNC frees slots through its read heads' free gates, ``psi = prod_i (1 - f_i w^r_i)``;
    a head bank does not see another bank's weights, so here nothing is freed (psi = 1): usage only
    grows, and once every slot is in use (about N writes of weight 1) allocation gives little weight
    and the content weighting takes over. The DNC plugin's own ``DNCWriteHead`` has the free gates.

    The trace (``record``) adds ``allocation_weights [B, h, N]`` and ``usage [B, N]`` to ``write_weights``.

    Args:
        addressing: the content part (e.g. ContentAddressing; NTMAddressing works too).
        count: the number of write heads in this bank.

    >>> from mannkit.nn import ContentAddressing, MatrixMemory
    >>> memory, head = MatrixMemory(slots=3, word_size=2), AllocatingWriteHead(ContentAddressing())
    >>> head.bind(memory)
    >>> head.param_size(memory)  # key 2 + strength 1, g^a, g^w, erase 2, add 2
    9
    """

    needs = ("write",)

    def bind(self, memory: Memory) -> None:
        slots = getattr(memory, "slots", None)
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise ConfigError(
                f"AllocatingWriteHead needs a memory with a fixed number of slots (an int attribute slots), but "
                f"{type(memory).__name__} has slots={slots!r}; use a memory with fixed slots such as MatrixMemory or "
                "GraphMemory, or a WriteHead."
            )
        super().bind(memory)

    def param_size(self, memory: Memory) -> int:
        return self.addressing.param_size(memory) + 2 + 2 * memory.word_size

    def initial_state(self, batch_size: int, memory: Memory, device: torch.device, dtype: torch.dtype) -> AllocationState:
        return AllocationState(
            self.addressing.initial_state(batch_size, self._count, memory, device, dtype),
            torch.zeros(batch_size, memory.slots, device=device, dtype=dtype),  # u_0 = 0: every slot free
        )

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, h, P + 2 + 2W]`` -> the written memory state; the state carries the new usage ``[B, N]``."""
        W = memory.word_size
        address, gates, erase, add = params.split([params.shape[-1] - 2 - 2 * W, 2, W, W], dim=-1)
        allocation_gate, write_gate = torch.sigmoid(gates).unbind(-1)  # g^a, g^w: [B, h] each
        content, addressing_state = self.addressing(address, memory_state, state.addressing)  # c: [B, h, N]
        usage = state.usage  # u: [B, N]
        allocations = []
        for i in range(self._count):  # head i allocates from the usage after heads < i
            allocations.append(allocation_weights(usage))  # a_i: [B, N]
            if i + 1 < self._count:
                usage = usage + write_gate[:, i : i + 1] * (1 - usage) * allocations[-1]
        allocation = torch.stack(allocations, dim=1)  # a: [B, h, N]
        weights = write_weighting(allocation, content, allocation_gate.unsqueeze(-1), write_gate.unsqueeze(-1))  # [B, h, N]
        memory_state = memory.write(weights, torch.sigmoid(erase), add, memory_state)
        # u <- 1 - (1 - u) prod_h (1 - w_h): update_usage applied once per head, psi = 1
        new_usage = 1 - (1 - state.usage) * torch.prod(1 - weights, dim=1)  # [B, N]
        trace = {"write_weights": weights, "allocation_weights": allocation, "usage": new_usage} if record else {}
        return HeadOutput(None, memory_state, AllocationState(addressing_state, new_usage), trace)
