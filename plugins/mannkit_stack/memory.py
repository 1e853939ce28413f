"""The neural stack, queue and deque (Grefenstette et al. 2015) as memories whose state grows one value per push.

Shape letters: B batch, t values stored so far, W value width, E ends a head acts on (1 for the
stack and the queue, 2 for the deque: top, bottom).

The state is :class:`StackState`: ``values [B, t, W]`` (bottom first) and ``strengths [B, t]``;
both grow along axis 1 (``growing``), from an empty ``[B, 0, W]``. The memories differ only in
where they pop, push and read (the equations are in :mod:`mannkit_stack.mechanisms`):

============  ================  ===================  ==============================
memory        pop               push                 read
============  ================  ===================  ==============================
NeuralStack   top               top                  top
NeuralQueue   bottom (oldest)   top                  bottom
NeuralDeque   top, then bottom  top and bottom       top and bottom
============  ================  ===================  ==============================

A step is ``pop`` then ``push`` then ``peek`` (the paper's order: the read sees this step's push).
Their head is :class:`~mannkit_stack.heads.NeuralStackHead`.

>>> import torch
>>> stack = NeuralStack(word_size=2)
>>> state = stack.initial_state(1, torch.device("cpu"), torch.float32)
>>> a, b = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 1.0]]])
>>> for v in (a, b):
...     state = stack.push(stack.pop(state, torch.zeros(1, 1)), v, torch.ones(1, 1))
>>> state = stack.pop(state, torch.ones(1, 1))        # pop 1: b is gone
>>> stack.peek(state)[0].tolist()                      # the read is a
[[[1.0, 0.0]]]
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Memory
from mannkit.core.registry import register
from mannkit_stack import mechanisms as m

__all__ = ["StackState", "NeuralStack", "NeuralQueue", "NeuralDeque"]


class StackState(NamedTuple):
    values: Tensor  # V, [B, t, W]: the stored values, bottom (oldest push) first
    strengths: Tensor  # s, [B, t]: how much of each value is still on the structure, in [0, 1]


class _ContinuousMemory(Memory):
    """Shared state and operations; a subclass names its ``ends`` and where each pops, pushes and reads."""

    growing = {"values": 1, "strengths": 1}  # one row per push along axis 1
    #: The ends a head acts on, in the order of its parameters and reads.
    ends: ClassVar[tuple[str, ...]] = ("top",)
    _pops: ClassVar[tuple[str, ...]] = ("top",)  # where the pop strength of each end acts
    _reads: ClassVar[tuple[str, ...]] = ("top",)  # where each end reads

    def __init__(self, word_size: int = 32) -> None:
        super().__init__()
        if isinstance(word_size, bool) or not isinstance(word_size, int) or word_size < 1:
            name = type(self).__name__
            raise ConfigError(f"{name}: word_size must be a positive integer, got {word_size!r}; set word_size to 1 or more.")
        self._word_size = word_size

    @property
    def word_size(self) -> int:
        """W, the width of one stored value."""
        return self._word_size

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> StackState:
        """An empty structure: ``values [B, 0, W]``, ``strengths [B, 0]``."""
        return StackState(
            torch.zeros(batch_size, 0, self._word_size, device=device, dtype=dtype),
            torch.zeros(batch_size, 0, device=device, dtype=dtype),
        )

    def pop(self, state: StackState, strengths: Tensor) -> StackState:
        """Pop ``u [B, E]`` (one strength per end, in :attr:`ends` order); the values stay, their strengths fall."""
        s = state.strengths
        for e, where in enumerate(self._pops):  # E <= 2 ends, not slots
            s = (m.pop_top if where == "top" else m.pop_bottom)(s, strengths[:, e])
        return StackState(state.values, s)

    def push(self, state: StackState, values: Tensor, strengths: Tensor) -> StackState:
        """Push ``v [B, E, W]`` with ``d [B, E]``: the state grows by E values (a deque pushes at both ends)."""
        V, s = state.values, state.strengths
        for e, where in enumerate(self.ends):
            V, s = m.push(V, s, values[:, e], strengths[:, e], at_top=where == "top")
        return StackState(V, s)

    def peek(self, state: StackState) -> tuple[Tensor, Tensor]:
        """The reads ``[B, E, W]`` and their weights ``[B, E, t]`` (zeros from an empty structure)."""
        s = state.strengths
        weights = torch.stack([(m.top_weights if w == "top" else m.bottom_weights)(s) for w in self._reads], dim=1)
        return torch.bmm(weights, state.values), weights  # [B, E, t] @ [B, t, W] -> [B, E, W]

    def describe(self, state: StackState) -> dict[str, Tensor]:
        """``strengths [B, t]`` (drawn as time x value) and ``values [B, t, W]`` (drawn at the last step)."""
        return {"strengths": state.strengths, "values": state.values}


@register
class NeuralStack(_ContinuousMemory):
    """A continuous stack (Grefenstette et al. 2015): pops, pushes and reads at the top; grows one value per step.

    Args:
        word_size: W, the width of one stored value.
    """


@register
class NeuralQueue(_ContinuousMemory):
    """A continuous queue (Grefenstette et al. 2015): pushes at the top, pops and reads at the bottom (first in, first out).

    Args:
        word_size: W, the width of one stored value.
    """

    _pops = ("bottom",)
    _reads = ("bottom",)


@register
class NeuralDeque(_ContinuousMemory):
    """A continuous double-ended queue (Grefenstette et al. 2015): pops, pushes and reads at both ends (top, then bottom).

    Grows two values per step (one at each end). The top pop acts first, then the bottom pop on what is left.

    Args:
        word_size: W, the width of one stored value.
    """

    ends = ("top", "bottom")
    _pops = ("top", "bottom")
    _reads = ("top", "bottom")
