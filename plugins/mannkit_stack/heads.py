"""The head of the neural stack, queue and deque: push and pop strengths and a value per end, then the read.

Shape letters: B batch, E ends of the memory (1: stack, queue; 2: deque), W value width,
t values stored so far.

One bank (``count`` 1) acts on every end of its memory at once. Its parameters per step are, for
each end in the memory's ``ends`` order, ``[push 1 | pop 1 | value W]`` (P = E (W + 2)), activated
as in Grefenstette et al. 2015: ``d = sigmoid``, ``u = sigmoid``, ``v = tanh``. The memory pops
``u``, pushes ``(v, d)`` and the head reads, per end, the top (or bottom) unit of strength:
``reads [B, 1, E W]``. It changes the memory and reads it, so it acts with the writers (stage 0).

>>> import torch
>>> from mannkit.cell import MemoryCell
>>> from mannkit.nn import LSTMController
>>> from mannkit_stack import NeuralDeque
>>> cell = MemoryCell(LSTMController(8), NeuralDeque(word_size=3), [NeuralStackHead()])
>>> cell.bind(input_size=4, output_size=2)
>>> out = cell(torch.zeros(5, 6, 4), record=True)
>>> out.trace["values"].shape, out.trace["read_weights"].shape   # the deque grows 2 values a step: 12 at the end
(torch.Size([5, 6, 12, 3]), torch.Size([5, 6, 2, 12]))
"""

from __future__ import annotations

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Head, HeadOutput, Memory, State
from mannkit.core.registry import register

__all__ = ["NeuralStackHead", "require"]


def require(owner: str, memory: Memory, needs: tuple[str, ...], made_for: str) -> None:
    """Raise a one-sentence :class:`ConfigError` unless ``memory`` has every operation in ``needs``."""
    if not all(callable(getattr(memory, op, None)) for op in needs):
        name = type(memory).__name__
        fitting = next((heads for ops, heads in _HEADS_FOR if all(callable(getattr(memory, op, None)) for op in ops)), "")
        raise ConfigError(
            f"{owner} needs a memory with {', '.join(needs[:-1])} and {needs[-1]} ({made_for}), but the memory is "
            f"{name}; use {made_for.removeprefix('such as ')} as its memory, or heads made for {name}{fitting}."
        )


#: Which heads fit a memory offering these operations (named in the refusal's fix).
_HEADS_FOR = (
    (("read", "write"), " such as ReadHead and WriteHead"),
    (("pop", "push", "peek"), " such as NeuralStackHead"),
    (("act", "top"), " such as PushPopStackHead"),
)


@register
class NeuralStackHead(Head):
    """Push strength, pop strength and value for each end of a NeuralStack, NeuralQueue or NeuralDeque, then its read.

    P = E (W + 2) parameters (``[push | pop | value W]`` per end), reads ``[B, 1, E W]``; E and W come
    from the memory. No arguments: one bank drives every end.
    """

    stage = 0
    needs = ("pop", "push", "peek")

    @property
    def count(self) -> int:
        return 1

    def bind(self, memory: Memory) -> None:
        require("NeuralStackHead", memory, self.needs, "such as NeuralStack, NeuralQueue or NeuralDeque")

    def param_size(self, memory: Memory) -> int:
        return len(memory.ends) * (memory.word_size + 2)

    def read_size(self, memory: Memory) -> int:
        return len(memory.ends) * memory.word_size

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, 1, E (W + 2)]`` -> reads ``[B, 1, E W]`` and the state with E more values."""
        B, E, W = params.shape[0], len(memory.ends), memory.word_size
        per_end = params.view(B, E, W + 2)  # [B, 1, E (W + 2)] -> [B, E, W + 2]
        gates = torch.sigmoid(per_end[..., :2])  # [B, E, 2]: d (push), u (pop)
        push, pop = gates[..., 0], gates[..., 1]  # d_t, u_t: [B, E] each
        value = torch.tanh(per_end[..., 2:])  # v_t: [B, E, W]
        memory_state = memory.push(memory.pop(memory_state, pop), value, push)
        reads, weights = memory.peek(memory_state)  # r_t: [B, E, W], [B, E, t]
        trace = {"push": push, "pop": pop, "read_weights": weights} if record else {}
        return HeadOutput(reads.reshape(B, 1, E * W), memory_state, state, trace)  # [B, E, W] -> [B, 1, E W]
