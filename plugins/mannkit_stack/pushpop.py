"""The stack-augmented RNN's memory (Joulin & Mikolov 2015): K stacks of fixed depth D, moved by a push/pop/no-op softmax.

Shape letters: B batch, K stacks, D depth of each stack, W value width, k rows read from the top
(``read_depth``), A = 3 actions.

Each step, for every stack, the head emits action logits ``[B, K, 3]`` (softmax: push, pop, no-op)
and a value ``v = tanh(.)`` ``[B, K, W]``; the memory mixes the three outcomes
(:func:`mannkit_stack.mechanisms.act`): a push shifts every row down and puts ``v`` on top (the
bottom row falls off: the depth is fixed), a pop shifts every row up and fills the bottom with the
empty value 0, a no-op keeps the stack. The head then reads the top ``k`` rows of every stack:
``reads [B, 1, K k W]``. The paper uses scalar values (W = 1), sigmoid values with -1 as empty,
40 hidden units and 10 stacks; here the value is a ``tanh`` and the empty value 0.

>>> import torch
>>> from mannkit.cell import MemoryCell
>>> from mannkit.nn import GRUController
>>> cell = MemoryCell(GRUController(8), PushPopStack(stacks=3, depth=5, word_size=2), [PushPopStackHead()])
>>> cell.bind(input_size=4, output_size=2)
>>> out = cell(torch.zeros(2, 7, 4), record=True)
>>> out.trace["action_weights"].shape, out.trace["stacks"].shape   # [B, T, K, 3], [B, T, D, K W]
(torch.Size([2, 7, 3, 3]), torch.Size([2, 7, 5, 6]))
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Head, HeadOutput, Memory, State
from mannkit.core.registry import register
from mannkit_stack.heads import require
from mannkit_stack.mechanisms import act

__all__ = ["PushPopState", "PushPopStack", "PushPopStackHead"]


class PushPopState(NamedTuple):
    stacks: Tensor  # S, [B, K, D, W]: row 0 of each stack is its top


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"PushPopStack: {name} must be a positive integer, got {value!r}; set {name} to 1 or more.")


@register
class PushPopStack(Memory):
    """K stacks of fixed depth D moved by push/pop/no-op mixtures (Joulin & Mikolov 2015's stack-augmented RNN).

    Args:
        stacks: K, the number of stacks (the paper uses up to 10).
        depth: D, the rows of each stack; a push beyond D drops the bottom row.
        word_size: W, the width of one stored value (the paper's are scalars, W = 1).
        read_depth: k, how many rows from the top the head reads (the paper reads the top 1 or 2).
    """

    def __init__(self, stacks: int = 2, depth: int = 64, word_size: int = 8, read_depth: int = 1) -> None:
        super().__init__()
        for name, value in (("stacks", stacks), ("depth", depth), ("word_size", word_size), ("read_depth", read_depth)):
            _positive(name, value)
        if read_depth > depth:
            raise ConfigError(
                f"PushPopStack: read_depth ({read_depth}) is more than depth ({depth}); set read_depth to {depth} or less."
            )
        self.stacks, self.depth, self.read_depth = stacks, depth, read_depth
        self._word_size = word_size

    @property
    def word_size(self) -> int:
        """W, the width of one stored value."""
        return self._word_size

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> PushPopState:
        """Every stack empty: ``S [B, K, D, W]`` of zeros."""
        return PushPopState(torch.zeros(batch_size, self.stacks, self.depth, self._word_size, device=device, dtype=dtype))

    def act(self, state: PushPopState, actions: Tensor, values: Tensor) -> PushPopState:
        """``actions [B, K, 3]`` (push, pop, no-op; each row sums to 1), ``values [B, K, W]`` -> the moved stacks."""
        return PushPopState(act(state.stacks, actions, values))

    def top(self, state: PushPopState) -> Tensor:
        """The top ``k`` rows of every stack, ``[B, K, k, W]``."""
        return state.stacks[:, :, : self.read_depth]

    def describe(self, state: PushPopState) -> dict[str, Tensor]:
        """``stacks [B, D, K W]``: row d of every stack side by side (drawn at the last step)."""
        S = state.stacks
        B, K, D, W = S.shape
        return {"stacks": S.permute(0, 2, 1, 3).reshape(B, D, K * W)}  # [B, K, D, W] -> [B, D, K, W] -> [B, D, K W]


@register
class PushPopStackHead(Head):
    """Action logits (push, pop, no-op) and a value for every stack of a PushPopStack, then the top rows of each.

    P = K (3 + W) parameters (``[actions 3 | value W]`` per stack), reads ``[B, 1, K k W]``. No
    arguments: one bank drives every stack.
    """

    stage = 0
    needs = ("act", "top")

    @property
    def count(self) -> int:
        return 1

    def bind(self, memory: Memory) -> None:
        require("PushPopStackHead", memory, self.needs, "such as PushPopStack")

    def param_size(self, memory: Memory) -> int:
        return memory.stacks * (3 + memory.word_size)

    def read_size(self, memory: Memory) -> int:
        return memory.stacks * memory.read_depth * memory.word_size

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, 1, K (3 + W)]`` -> reads ``[B, 1, K k W]`` and the moved stacks."""
        B, K, W = params.shape[0], memory.stacks, memory.word_size
        per_stack = params.view(B, K, 3 + W)  # [B, 1, K (3 + W)] -> [B, K, 3 + W]
        actions = torch.softmax(per_stack[..., :3], dim=-1)  # a_t: [B, K, 3] (push, pop, no-op)
        memory_state = memory.act(memory_state, actions, torch.tanh(per_stack[..., 3:]))
        reads = memory.top(memory_state).reshape(B, 1, -1)  # [B, K, k, W] -> [B, 1, K k W]
        return HeadOutput(reads, memory_state, state, {"action_weights": actions} if record else {})
