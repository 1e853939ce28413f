"""The head of the neural stack, queue and deque: push and pop strengths and a value per end, then the read.

Shape letters: B batch, E ends of the memory (1: stack, queue; 2: deque), W value width,
t values stored so far.

One bank (``count`` 1) acts on every end of its memory at once. Its parameters per step are, for
each end in the memory's ``ends`` order, ``[push 1 | pop 1 | value W]`` (P = E (W + 2)), activated
as in Grefenstette et al. 2015: ``d = sigmoid``, ``u = sigmoid``, ``v = tanh``. The memory pops
``u``, pushes ``(v, d)`` and the head reads, per end, the top (or bottom) unit of strength:
``reads [B, 1, E W]``. It changes the memory and reads it, so it acts with the writers (stage 0).

``gates="exclusive"`` (not in the paper) makes push and pop compete: ``[push | pop | no-op | value W]``
per end (P = E (W + 3)), ``(d, u, n) = softmax``, so ``d + u <= 1``. With the paper's independent
sigmoids, once ``d >= u`` a step's read is the value just pushed whatever ``u`` is, so the pop
strength gets almost no gradient (what a trained Dyck model showed: push about 0.9 on every bracket);
under the softmax raising ``u`` lowers ``d``, so the pop gets a gradient through the push. Measured on
Dyck-2 it did not learn better than the paper's gates (benchmarks/RESULTS.md); no preset uses it.

``push_bias`` / ``pop_bias`` (not in the paper) set the initial bias of the push and pop numbers
(through :meth:`~mannkit.Head.param_bias`). At the projection's own initialisation both gates start
near 0.5, so every step pops half a unit: a queue then holds only its newest value, the first input
is gone before the output starts, and the relu in the strength update gives a popped value no
gradient. ``push_bias: 3, pop_bias: -3`` start the memory as "keep everything" (d about 0.95, u
about 0.05), so every stored value is still there, and has a gradient, when the output needs it.
Either may be a list with one value per end (the memory's ``ends`` order): a deque given
``push_bias: [3, -6]`` starts pushing at the top only, so its bottom read is the oldest value (a
queue's). A memory read at the end it pushes (a stack on reversal) takes ``pop_bias: -3`` alone
(a deque ``push_bias: [0, -3]``): every input is kept, and no push near 1 kept on while it
answers hides the top it reads (``push_bias: 3`` there stopped the stack from learning).

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

import math

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
    from the memory; one bank drives every end.

    Args:
        gates: ``"independent"`` (the paper: a sigmoid each for push and pop) or ``"exclusive"``
            (a softmax over push, pop and no-op per end, P = E (W + 3); see the module docstring).
        push_bias, pop_bias: initial bias of the push and pop numbers (logits), one number for
            every end or a list with one per end; None keeps the projection's own initialisation,
            as in the paper.
    """

    stage = 0
    needs = ("pop", "push", "peek")
    GATES = ("independent", "exclusive")

    def __init__(
        self, gates: str = "independent", push_bias: float | list[float] | None = None, pop_bias: float | list[float] | None = None
    ) -> None:
        super().__init__()
        for name, value in (("push_bias", push_bias), ("pop_bias", pop_bias)):
            values = value if isinstance(value, (list, tuple)) else [value]
            if value is not None and (not values or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)):
                raise ConfigError(
                    f"NeuralStackHead: {name} is {value}; give a finite number (a logit, e.g. 3 or -3), a list with one "
                    f"per end of the memory, or leave it out."
                )
        self.push_bias, self.pop_bias = push_bias, pop_bias
        if gates not in self.GATES:
            raise ConfigError(
                f"NeuralStackHead: gates is {gates!r}; use one of {', '.join(map(repr, self.GATES))} "
                f"(independent: the paper's sigmoid push and pop; exclusive: a softmax over push, pop and no-op)."
            )
        self.gates = gates
        self._gate_count = 2 if gates == "independent" else 3

    @property
    def count(self) -> int:
        return 1

    def bind(self, memory: Memory) -> None:
        require("NeuralStackHead", memory, self.needs, "such as NeuralStack, NeuralQueue or NeuralDeque")
        E = len(memory.ends)
        for name, value in (("push_bias", self.push_bias), ("pop_bias", self.pop_bias)):
            if isinstance(value, (list, tuple)) and len(value) != E:
                raise ConfigError(
                    f"NeuralStackHead: {name} has {len(value)} values but {type(memory).__name__} has {E} end"
                    f"{'s' if E > 1 else ''} ({', '.join(memory.ends)}); give one value, or one per end in that order."
                )

    def param_size(self, memory: Memory) -> int:
        return len(memory.ends) * (memory.word_size + self._gate_count)

    def read_size(self, memory: Memory) -> int:
        return len(memory.ends) * memory.word_size

    def param_bias(self, memory: Memory) -> Tensor | None:
        """``[E (W + G)]``: ``push_bias`` and ``pop_bias`` on each end's first two numbers (and 0 on the no-op when exclusive), NaN (kept) elsewhere; None without them."""
        if self.push_bias is None and self.pop_bias is None:
            return None
        E = len(memory.ends)
        bias = torch.full((E, memory.word_size + self._gate_count), float("nan"))  # [E, W + G]
        for index, value in ((0, self.push_bias), (1, self.pop_bias)):
            if value is not None:
                bias[:, index] = torch.tensor(value if isinstance(value, (list, tuple)) else [value] * E, dtype=bias.dtype)
        if self._gate_count == 3:
            bias[:, 2] = 0.0  # exclusive: the no-op logit's bias is the reference the other two are set against
        return bias.flatten()  # [E, W + G] -> [E (W + G)], ends in the memory's order

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, 1, E (W + G)]`` (G = 2 gates, or 3 when exclusive) -> reads ``[B, 1, E W]`` and the state with E more values."""
        B, E, W, G = params.shape[0], len(memory.ends), memory.word_size, self._gate_count
        per_end = params.view(B, E, W + G)  # [B, 1, E (W + G)] -> [B, E, W + G]
        if G == 2:
            gates = torch.sigmoid(per_end[..., :2])  # [B, E, 2]: d (push), u (pop), each in (0, 1)
        else:
            gates = torch.softmax(per_end[..., :3], dim=-1)  # [B, E, 3]: d, u, no-op; d + u + n = 1
        push, pop = gates[..., 0], gates[..., 1]  # d_t, u_t: [B, E] each
        value = torch.tanh(per_end[..., G:])  # v_t: [B, E, W]
        memory_state = memory.push(memory.pop(memory_state, pop), value, push)
        reads, weights = memory.peek(memory_state)  # r_t: [B, E, W], [B, E, t]
        trace = {"push": push, "pop": pop, "read_weights": weights} if record else {}
        return HeadOutput(reads.reshape(B, 1, E * W), memory_state, state, trace)  # [B, E, W] -> [B, 1, E W]
