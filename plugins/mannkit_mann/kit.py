"""How the conformance kit builds this plugin's components: the LRUA memory with its own head bank.

The kit's default partners are a matrix memory and content heads, which the LRUA memory and head do not
fit; the harness uses a tanh MLP controller (no state of its own), so a later output depends on an earlier
input only through the memory.
"""

from __future__ import annotations

from mannkit.core.interfaces import Memory, SequenceModel
from mannkit.testing import SIZES, register_example
from mannkit_mann.lrua import LRUAHead, LRUAMemory

__all__ = ["lrua_harness"]


def lrua_harness(memory: Memory) -> SequenceModel:
    """``memory -> MemoryCell(MLP, memory, [LRUAHead(count=2)])``."""
    from mannkit.cell import MemoryCell
    from mannkit.nn import MLPController

    return MemoryCell(MLPController(hidden_size=SIZES.H, activation="tanh"), memory, [LRUAHead(count=SIZES.h)])


def _kit_memory() -> LRUAMemory:
    return LRUAMemory(slots=SIZES.N, word_size=SIZES.W)


register_example(LRUAMemory, _kit_memory, harness=lrua_harness)
register_example(LRUAHead, lambda: LRUAHead(count=SIZES.h), harness=lambda head: _head_cell(head), memory=_kit_memory)


def _head_cell(head: LRUAHead) -> SequenceModel:
    from mannkit.cell import MemoryCell
    from mannkit.nn import MLPController

    return MemoryCell(MLPController(hidden_size=SIZES.H, activation="tanh"), _kit_memory(), [head])
