"""How the conformance kit builds this plugin's components: each memory with its own head, each head over its memory.

Shape letters: W value width (the kit's ``SIZES.W``), H the probe controller's width.

The kit's default partners are a matrix memory and content heads, which these components do not
fit; the harnesses below use a tanh MLP controller (no state of its own), so a later output depends
on an earlier input only through the stack.
"""

from __future__ import annotations

from collections.abc import Callable

from mannkit.core.interfaces import Controller, Head, Memory, SequenceModel
from mannkit.testing import SIZES, register_example
from mannkit_stack.heads import NeuralStackHead
from mannkit_stack.memory import NeuralDeque, NeuralQueue, NeuralStack
from mannkit_stack.pushpop import PushPopStack, PushPopStackHead

__all__ = ["stack_harness", "pushpop_harness"]


def _probe() -> Controller:
    from mannkit.nn import MLPController

    return MLPController(hidden_size=SIZES.H, activation="tanh")


def stack_harness(memory: Memory) -> SequenceModel:
    """``memory -> MemoryCell(MLP, memory, [NeuralStackHead()])`` for a NeuralStack, NeuralQueue or NeuralDeque."""
    from mannkit.cell import MemoryCell

    return MemoryCell(_probe(), memory, [NeuralStackHead()])


def pushpop_harness(memory: Memory) -> SequenceModel:
    """``memory -> MemoryCell(MLP, memory, [PushPopStackHead()])`` for a PushPopStack."""
    from mannkit.cell import MemoryCell

    return MemoryCell(_probe(), memory, [PushPopStackHead()])


def _kit_pushpop() -> PushPopStack:
    return PushPopStack(stacks=3, depth=SIZES.N, word_size=SIZES.W, read_depth=2)


def _head_harness(make_memory: Callable[[], Memory]) -> Callable[[Head], SequenceModel]:
    """``head -> MemoryCell(MLP, make_memory(), [head])``: the head alone over its memory."""
    from mannkit.cell import MemoryCell

    return lambda head: MemoryCell(_probe(), make_memory(), [head])


for _cls in (NeuralStack, NeuralQueue, NeuralDeque):
    register_example(_cls, lambda cls=_cls: cls(word_size=SIZES.W), harness=stack_harness)
register_example(PushPopStack, _kit_pushpop, harness=pushpop_harness)
register_example(NeuralStackHead, harness=_head_harness(lambda: NeuralDeque(word_size=SIZES.W)), memory=lambda: NeuralDeque(word_size=SIZES.W))
register_example(PushPopStackHead, harness=_head_harness(_kit_pushpop), memory=_kit_pushpop)
