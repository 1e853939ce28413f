"""A worked example of a memory whose state grows: an append-only tape and the head that uses it.

Shape letters: B batch, t rows on the tape (grows by ``count`` per step), W word size,
h heads of one bank, P parameters per head.

Plugin authors writing a stack, a queue or any memory with no fixed N can copy the pattern:

- the state keeps the growing axis in a named field and the memory declares it,
  ``growing = {"values": 1}`` (see :attr:`mannkit.core.interfaces.Memory.growing`);
- the state starts empty (``[B, 0, W]``) and a read from an empty tape gives zeros, not NaN;
- the kit runs on it like on any memory, with a harness whose heads fit it.

These classes are not registered (they are an example, not a component to train); YAML names
them by their full class path, ``mannkit.testing.growing.TapeMemory``.

>>> import torch
>>> from mannkit.cell import MemoryCell
>>> from mannkit.nn import MLPController
>>> cell = MemoryCell(MLPController(8), TapeMemory(word_size=4), [TapeHead()])
>>> cell.bind(input_size=3, output_size=2)
>>> out = cell(torch.zeros(5, 6, 3), record=True)
>>> out.trace["tape"].shape, out.trace["tape_weights"].shape  # padded to the 6 rows of the last step
(torch.Size([5, 6, 6, 4]), torch.Size([5, 6, 1, 6]))
>>> from mannkit.testing import check_memory
>>> check_memory(lambda: TapeMemory(word_size=11), harness=tape_harness)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Head, HeadOutput, Memory, SequenceModel, State

__all__ = ["TapeMemory", "TapeState", "TapeHead", "tape_harness"]


class TapeState(NamedTuple):
    values: Tensor  # V, [B, t, W]: one row per appended value, oldest first


class TapeMemory(Memory):
    """An append-only tape: each step appends rows; reads attend over every row so far.

    ``append(v [B, h, W])``: ``V' = [V; v]`` (t -> t + h rows). ``attend(q [B, h, W], beta [B, h])``:
    ``w = softmax_j(beta * q . V_j / sqrt(W))`` over the t rows, ``r = w V``; an empty tape reads zeros.

    Args:
        word_size: W, the width of one row.
    """

    growing = {"values": 1}  # values [B, t, W] gains rows along axis 1

    def __init__(self, word_size: int = 20) -> None:
        super().__init__()
        if isinstance(word_size, bool) or not isinstance(word_size, int) or word_size < 1:
            raise ConfigError(f"TapeMemory: word_size must be a positive integer, got {word_size!r}; set it to 1 or more.")
        self._word_size = word_size

    @property
    def word_size(self) -> int:
        return self._word_size

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> TapeState:
        return TapeState(torch.zeros(batch_size, 0, self._word_size, device=device, dtype=dtype))  # an empty tape

    def append(self, values: Tensor, state: TapeState) -> TapeState:
        """``values [B, h, W]`` -> the tape with h more rows ``[B, t + h, W]``."""
        return TapeState(torch.cat([state.values, values], dim=1))

    def attend(self, queries: Tensor, strengths: Tensor, state: TapeState) -> tuple[Tensor, Tensor]:
        """``queries [B, h, W]``, ``strengths [B, h]`` -> ``(reads [B, h, W], weights [B, h, t])``."""
        V = state.values
        scores = torch.bmm(queries, V.transpose(1, 2)) / math.sqrt(self._word_size)  # [B, h, W] @ [B, W, t] -> [B, h, t]
        weights = torch.softmax(strengths.unsqueeze(-1) * scores, dim=-1)  # an empty tape: [B, h, 0], no NaN
        return torch.bmm(weights, V), weights  # [B, h, t] @ [B, t, W] -> [B, h, W] (zeros when t = 0)

    def describe(self, state: TapeState) -> dict[str, Tensor]:
        return {"tape": state.values}


class TapeHead(Head):
    """``count`` heads that each append a value ``tanh(a)`` and then read by attention over the whole tape.

    Parameters per head: ``[value W | query W | strength 1]`` (P = 2W + 1), ``beta = 1 + softplus``.
    Needs a memory with ``append`` and ``attend`` (:class:`TapeMemory`). It writes and reads, so it
    acts with the writers (stage 0) and still returns its reads.

    Args:
        count: h, the number of heads in the bank (the tape grows by h rows per step).
    """

    stage = 0
    needs = ("append", "attend")

    def __init__(self, count: int = 1) -> None:
        super().__init__()
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"TapeHead: count must be a positive integer, got {count!r}; set count to 1 or more.")
        self._count = count

    @property
    def count(self) -> int:
        return self._count

    def bind(self, memory: Memory) -> None:
        if not all(callable(getattr(memory, name, None)) for name in self.needs):
            raise ConfigError(
                f"TapeHead needs a memory with append and attend (such as TapeMemory), but the memory is "
                f"{type(memory).__name__}; use TapeMemory as its memory."
            )

    def param_size(self, memory: Memory) -> int:
        return 2 * memory.word_size + 1

    def read_size(self, memory: Memory) -> int:
        return memory.word_size

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, h, 2W + 1]`` -> reads ``[B, h, W]`` and a tape with h more rows."""
        W = memory.word_size
        value, query, strength = params.split([W, W, 1], dim=-1)  # [B, h, W], [B, h, W], [B, h, 1]
        memory_state = memory.append(torch.tanh(value), memory_state)
        reads, weights = memory.attend(query, 1 + F.softplus(strength.squeeze(-1)), memory_state)
        return HeadOutput(reads, memory_state, state, {"tape_weights": weights} if record else {})


def tape_harness(memory: Memory) -> SequenceModel:
    """``memory -> MemoryCell`` for the kit: a tanh MLP controller and one :class:`TapeHead` (13 hidden units)."""
    from mannkit.cell import MemoryCell
    from mannkit.nn import MLPController

    return MemoryCell(MLPController(hidden_size=13, activation="tanh"), memory, [TapeHead()])
