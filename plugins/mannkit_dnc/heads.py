"""The DNC's interface as two head banks: one write head (stage 0) and R read heads (stage 1).

Shape letters: B batch, N memory slots, W word size, R read heads.

The heads cut the controller's interface vector into its parts, apply the paper's activations
(oneplus ``1 + softplus`` for strengths, sigmoid for erase and gates, softmax for read modes) and
call their memory, which may be any memory that offers the DNC operations:

- ``memory.dnc_write(state, key [B, 1, W], strength [B, 1], erase [B, 1, W], vector [B, 1, W],
  free_gates [B, R], allocation_gate [B, 1], write_gate [B, 1], record) -> (state, trace)``;
- ``memory.dnc_read(state, keys [B, R, W], strengths [B, R], modes [B, R, 3], record)
  -> (reads [B, R, W], state, trace)``;
- ``memory.read_heads`` (R, 0 until attached) and ``memory.attach_read_heads(count)``.

:class:`~mannkit_dnc.memory.DNCMemory` (dense) is one such memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Controller, Head, HeadOutput, Memory, State
from mannkit.core.registry import register
from mannkit.testing import SIZES, register_example
from mannkit_dnc.memory import DNCMemory

__all__ = ["DNCWriteHead", "DNCReadHead"]


def _require(owner: str, memory: Memory, operations: tuple[str, ...]) -> None:
    if not all(callable(getattr(memory, op, None)) for op in operations):
        raise ConfigError(
            f"{owner} needs a memory with {' and '.join(operations)} (such as DNCMemory), but the memory is "
            f"{type(memory).__name__}; use DNCMemory as the memory, or heads made for {type(memory).__name__}."
        )


def _oneplus(x: Tensor) -> Tensor:
    """``1 + softplus(x)``: a key strength of at least 1."""
    return F.softplus(x).add_(1)  # softplus's backward needs its input, not its output


@register
class DNCWriteHead(Head):
    """The DNC write head: write key and strength, erase and write vectors, free gates, allocation and write gates.

    Its parameters per step are ``[key W | strength 1 | erase W | write vector W | free gates R |
    allocation gate 1 | write gate 1]``, so P = 3W + 3 + R with R the memory's read heads.

    Args:
        count: the number of write heads; the DNC has exactly one.
        free_gates: whether the head has the R free gates of the paper (the default). ``false``
            fixes f = 0: no location is ever freed by a read, so usage only grows and allocation
            takes each unused slot once (P = 3W + 3). For tasks that never need a slot back
            (copy, where the memory holds every item): a converged copy DNC's free gates opened
            to 0.99 while its reads rested on the first written slot, which freed that slot, the
            next write overwrote the first item, and 1-5 of 128 validation sequences were recalled
            wholly wrong; the same weights with f = 0 recalled all 128 at one checkpoint and all
            but 2 at a later one (benchmarks/RESULTS.md, "What the DNC's drift is").
        free_gate_bias: the initial bias of the R free-gate numbers (None: the projection's own
            small random bias, f about 0.5 at first, as in the paper); -5 starts them at about
            0.007. On copy the gates opened all the same (to 0.99), so it did not remove the
            failure above.
    """

    stage = 0
    needs = ("dnc_write",)

    def __init__(self, count: int = 1, free_gates: bool = True, free_gate_bias: float | None = None) -> None:
        super().__init__()
        if count != 1 or isinstance(count, bool):
            raise ConfigError(f"DNCWriteHead: count must be 1 (the DNC has one write head), got {count!r}; set count to 1.")
        if free_gate_bias is not None and (isinstance(free_gate_bias, bool) or not isinstance(free_gate_bias, (int, float))
                                           or not math.isfinite(free_gate_bias)):
            raise ConfigError(
                f"DNCWriteHead: free_gate_bias must be a finite number or null, got {free_gate_bias!r}; "
                "e.g. free_gate_bias: -5 starts the free gates nearly closed."
            )
        if not isinstance(free_gates, bool):
            raise ConfigError(f"DNCWriteHead: free_gates must be true or false, got {free_gates!r}; set free_gates: false to never free a slot.")
        if not free_gates and free_gate_bias is not None:
            raise ConfigError(
                f"DNCWriteHead: free_gate_bias ({free_gate_bias!r}) needs free gates, but free_gates is false; remove one of the two."
            )
        self._count = 1
        self.free_gates = free_gates
        self.free_gate_bias = None if free_gate_bias is None else float(free_gate_bias)

    @property
    def count(self) -> int:
        return self._count

    def bind(self, memory: Memory) -> None:
        _require("DNCWriteHead", memory, ("dnc_write",))

    def param_size(self, memory: Memory) -> int:
        return 3 * memory.word_size + 3 + (memory.read_heads if self.free_gates else 0)

    def param_bias(self, memory: Memory) -> Tensor | None:
        """``[3W + 3 + R]``: ``free_gate_bias`` on the R free-gate numbers, NaN (kept) elsewhere; None without it."""
        if self.free_gate_bias is None:
            return None
        W, R = memory.word_size, memory.read_heads
        bias = torch.full((3 * W + 3 + R,), float("nan"))
        bias[3 * W + 1 : 3 * W + 1 + R] = self.free_gate_bias  # after key W, strength 1, erase W, vector W
        return bias

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, 1, 3W + 3 + R]`` (``[B, 1, 3W + 3]`` without free gates) -> the written memory state."""
        B, W, R = params.shape[0], memory.word_size, memory.read_heads
        n_free = R if self.free_gates else 0  # free-gate numbers
        key, strength, erase, vector, gates = params.split([W, 1, W, W, n_free + 2], dim=-1)  # [B, 1, *] each
        free, allocation_gate, write_gate = torch.sigmoid(gates).view(B, n_free + 2).split([n_free, 1, 1], dim=-1)  # [B, n_free + 2] in parts
        if not self.free_gates:
            free = params.new_zeros(B, R)  # f = 0: reads never free a slot
        memory_state, trace = memory.dnc_write(
            memory_state,
            key,
            _oneplus(strength.view(B, 1)),  # beta^w: [B, 1, 1] -> [B, 1]
            torch.sigmoid(erase),  # e, [B, 1, W]
            vector,  # v, [B, 1, W]
            free,  # f, [B, R]
            allocation_gate,  # g^a, [B, 1]
            write_gate,  # g^w, [B, 1]
            record,
        )
        return HeadOutput(None, memory_state, state, trace)


@register
class DNCReadHead(Head):
    """R DNC read heads: read keys and strengths, and read modes over (backward, content, forward).

    Its parameters per head are ``[key W | strength 1 | modes 3]``. Binding it tells the memory
    how many read heads there are (the write head's free gates follow that number).

    Args:
        count: R, the number of read heads.
    """

    stage = 1
    needs = ("dnc_read", "attach_read_heads")

    def __init__(self, count: int = 1) -> None:
        super().__init__()
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"DNCReadHead: count must be a positive integer, got {count!r}; set count to 1 or more.")
        self._count = count

    @property
    def count(self) -> int:
        return self._count

    def bind(self, memory: Memory) -> None:
        _require("DNCReadHead", memory, ("dnc_read", "attach_read_heads"))
        memory.attach_read_heads(self._count)

    def param_size(self, memory: Memory) -> int:
        return memory.word_size + 4

    def read_size(self, memory: Memory) -> int:
        return memory.word_size

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, R, W + 4]`` -> reads ``[B, R, W]``."""
        keys, strength, modes = params.split([memory.word_size, 1, 3], dim=-1)  # [B, R, W], [B, R, 1], [B, R, 3]
        reads, memory_state, trace = memory.dnc_read(
            memory_state, keys, _oneplus(strength.squeeze(-1)), torch.softmax(modes, dim=-1), record  # beta^r: [B, R, 1] -> [B, R]
        )
        return HeadOutput(reads, memory_state, state, trace)


# -- how the conformance kit builds these heads: over a DNCMemory, with their partner head --------
def _probe_controller() -> Controller:
    from mannkit.nn import MLPController

    return MLPController(hidden_size=SIZES.H, activation="tanh")  # no state: outputs depend on the past only through memory


def _kit_memory() -> DNCMemory:
    return DNCMemory(slots=SIZES.N, word_size=SIZES.W)


def _write_harness(head: DNCWriteHead):  # noqa: ANN202
    from mannkit.cell import MemoryCell

    return MemoryCell(_probe_controller(), _kit_memory(), [head, DNCReadHead(count=SIZES.h)])


def _read_harness(head: DNCReadHead):  # noqa: ANN202
    from mannkit.cell import MemoryCell

    return MemoryCell(_probe_controller(), _kit_memory(), [DNCWriteHead(), head])


def _memory_harness(memory: DNCMemory):  # noqa: ANN202
    from mannkit.cell import MemoryCell

    return MemoryCell(_probe_controller(), memory, [DNCWriteHead(), DNCReadHead(count=SIZES.h)])


register_example(DNCWriteHead, harness=_write_harness, memory=_kit_memory)
register_example(DNCReadHead, lambda: DNCReadHead(count=SIZES.h), harness=_read_harness, memory=_kit_memory)
register_example(DNCMemory, harness=_memory_harness)
