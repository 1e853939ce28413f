"""Least-recently-used access (LRUA) memory and its head bank (Santoro et al. 2016, "One-shot learning with
memory-augmented neural networks").

Shape letters: B batch, h heads of the bank (R in the paper: reads), N slots, W word size.

One step of the bank, given ``params [B, h, 2W + 2]`` (a key, a value, a raw key strength and a raw gate
per head), the memory ``(M_{t-1} [B, N, W], w^u_{t-1} [B, N])`` and the bank's state ``w^r_{t-1} [B, h, N]``:

1. ``w^lu_{t-1}`` = the least-used slot of ``w^u_{t-1}`` (one-hot);
2. ``w^w_t = sigma(alpha) w^r_{t-1} + (1 - sigma(alpha)) w^lu_{t-1}`` (eq. 7): write where the head last
   read (update a memory) or to the least-used slot (store a new one);
3. the least-used slot is zeroed, then ``M_t = M_{t-1} + w^w_t^T a`` with ``a = tanh(value)`` (eq. 8);
4. reads *after* the write: ``w^r_t = softmax(beta K(k, M_t))`` with ``k = tanh(key)``, cosine K (eq. 2-3),
   ``r_t = w^r_t M_t`` (eq. 4);
5. ``w^u_t = gamma w^u_{t-1} + sum_h w^r_t + sum_h w^w_t`` (eq. 5).

Departures, both documented: the paper's read weights are a softmax of plain cosines, which can favour one
slot of 128 over the others by at most e^2; a learned key strength ``beta = softplus(raw)`` (as in the NTM)
lets a head pick one slot. All heads share the one least-used slot of the previous step (the paper's
``m(w^u, n)`` marks n slots; one slot keeps each write's weights summing to 1).

>>> import torch
>>> from mannkit.cell import MemoryCell
>>> from mannkit.nn import LSTMController
>>> cell = MemoryCell(LSTMController(16), LRUAMemory(slots=11, word_size=5), [LRUAHead(count=2)])
>>> cell.bind(input_size=3, output_size=2)
>>> cell(torch.zeros(4, 7, 3)).logits.shape
torch.Size([4, 7, 2])
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Head, HeadOutput, Memory, State
from mannkit.core.registry import register
from mannkit.nn import content_weights, read
from mannkit_mann.mechanisms import least_used, lrua_write, lrua_write_weights, update_usage

__all__ = ["LRUAMemory", "LRUAState", "LRUAHead"]


class LRUAState(NamedTuple):
    memory: Tensor  # M, [B, N, W]
    usage: Tensor  # w^u, [B, N]


@register
class LRUAMemory(Memory):
    """A matrix memory with usage weights, written by least-recently-used access (Santoro et al. 2016).

    Args:
        slots: N (128 in the paper).
        word_size: W (40).
        gamma: usage decay (0.95 in the reference implementations; 0 <= gamma <= 1).
        init_value: every entry of the memory at the start (1e-6, so cosines are defined).
    """

    def __init__(self, slots: int = 128, word_size: int = 40, gamma: float = 0.95, init_value: float = 1e-6) -> None:
        super().__init__()
        for name, value in (("slots", slots), ("word_size", word_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"LRUAMemory: {name} must be a positive integer, got {value!r}; set it to 1 or more.")
        if not 0.0 <= gamma <= 1.0:
            raise ConfigError(f"LRUAMemory: gamma must be in [0, 1], got {gamma!r}; use e.g. 0.95.")
        self.slots, self._word_size, self.gamma, self.init_value = slots, word_size, float(gamma), float(init_value)

    @property
    def word_size(self) -> int:
        return self._word_size

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> LRUAState:
        memory = torch.full((batch_size, self.slots, self._word_size), self.init_value, device=device, dtype=dtype)
        return LRUAState(memory, torch.zeros(batch_size, self.slots, device=device, dtype=dtype))

    def read(self, weights: Tensor, state: LRUAState) -> Tensor:
        """``r = w M``: ``weights [B, h, N]`` -> ``[B, h, W]``."""
        return read(weights, state.memory)

    def lrua_write(self, gate: Tensor, previous_read: Tensor, values: Tensor, state: LRUAState) -> tuple[Tensor, LRUAState]:
        """Steps 1-3: ``gate [B, h]`` in [0, 1], ``previous_read [B, h, N]``, ``values [B, h, W]`` ->
        ``(w^w_t [B, h, N], state with M_t)``; usage is updated by :meth:`use`."""
        least = least_used(state.usage)  # w^lu_{t-1}
        weights = lrua_write_weights(gate, previous_read, least)
        return weights, LRUAState(lrua_write(state.memory, weights, values, least), state.usage)

    def use(self, read_weights: Tensor, write_weights: Tensor, state: LRUAState) -> LRUAState:
        """Step 5: the usage decays by gamma and gains this step's read and write weights."""
        return LRUAState(state.memory, update_usage(state.usage, read_weights, write_weights, self.gamma))

    def describe(self, state: LRUAState) -> dict[str, Tensor]:
        return {"memory": state.memory, "usage": state.usage}


@register
class LRUAHead(Head):
    """A bank of heads that each write by LRUA and then read by content (one key per head, as in the paper).

    P = 2W + 2 per head: a key (``tanh``), a value to write (``tanh``), a raw key strength (``softplus``)
    and a raw write gate (``sigmoid``). The bank writes and reads, so it acts at stage 0; its reads
    ``[B, h, W]`` feed the controller's next input and the output layer.

    Args:
        count: h, the heads (4 in the paper).
    """

    stage = 0
    needs = ("read", "lrua_write", "use")

    def __init__(self, count: int = 4) -> None:
        super().__init__()
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"LRUAHead: count must be a positive integer, got {count!r}; set count to 1 or more.")
        self._count = count

    @property
    def count(self) -> int:
        return self._count

    def bind(self, memory: Memory) -> None:
        missing = [name for name in self.needs if not callable(getattr(memory, name, None))]
        if missing:
            raise ConfigError(f"LRUAHead needs a memory with {', '.join(self.needs)} (such as LRUAMemory), but the memory is "
                              f"{type(memory).__name__}; use LRUAMemory with LRUAHead.")

    def param_size(self, memory: Memory) -> int:
        return 2 * memory.word_size + 2

    def read_size(self, memory: Memory) -> int:
        return memory.word_size

    def initial_state(self, batch_size: int, memory: Memory, device: torch.device, dtype: torch.dtype) -> State:
        return torch.zeros(batch_size, self._count, memory.slots, device=device, dtype=dtype)  # w^r_0, [B, h, N]

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, h, 2W + 2]``, ``state = w^r_{t-1} [B, h, N]`` -> reads ``[B, h, W]``, ``w^r_t``."""
        W = memory.word_size
        key, value, strength, gate = params.split([W, W, 1, 1], dim=-1)  # [B, h, W], [B, h, W], [B, h, 1], [B, h, 1]
        write_weights, memory_state = memory.lrua_write(torch.sigmoid(gate[..., 0]), state, torch.tanh(value), memory_state)
        read_weights = content_weights(torch.tanh(key), F.softplus(strength[..., 0]), memory_state.memory)  # [B, h, N]
        reads = memory.read(read_weights, memory_state)
        memory_state = memory.use(read_weights, write_weights, memory_state)
        trace = {"read_weights": read_weights, "write_weights": write_weights} if record else {}
        return HeadOutput(reads, memory_state, read_weights, trace)
