"""Which registered heads fit which memory: the head sets a memory is mixed with.

A head declares the memory operations it calls in :attr:`Head.needs <mannkit.core.interfaces.Head.needs>`
(``("read", "write")``, ``("dnc_read", "attach_read_heads")``, ``("push", "pop")`` ...); a memory
*fits* it when the memory class has each as a callable attribute. From those declarations alone
(nothing is built), :func:`head_sets` gives every memory the banks made for it:

- *writers*: fitting heads of stage 0 (a head that both writes and reads, like a stack's push/pop
  head, is a writer: see ``Head.stage``); *readers*: fitting heads of a later stage;
- one set ``(writer, reader)`` per pair, or ``(writer,)`` for each writer where no reader fits;
- a memory that no writer fits gets no set (a cell could not change it; memories loaded whole by
  their model, like a story, are checked by that model's tests): :func:`no_set_reason` says so.

Heads whose ``needs`` is None (undeclared, or wrappers such as ``OnMemory``) are left out.
``tests/test_mixing.py`` trains a ``MemoryCell`` of every registered controller, every memory and
each of its head sets, so a new memory whose heads declare ``needs`` is mixed without new test code.

>>> head_sets("MatrixMemory")[:2]
[('AllocatingWriteHead', 'AttentionGRUHead'), ('AllocatingWriteHead', 'HopReadHead')]
>>> ("DNCWriteHead", "DNCReadHead") in head_sets("DNCMemory")
True
"""

from __future__ import annotations

from torch import nn

from mannkit.core.interfaces import Head
from mannkit.testing.defaults import _resolve, build_default, registered_components

__all__ = ["fits", "head_sets", "no_set_reason", "build_heads"]


def fits(head: type | str, memory: type | str) -> bool:
    """Whether ``memory`` offers every operation ``head`` declares in ``needs`` (False when it declares none)."""
    head_cls, memory_cls = _resolve(head), _resolve(memory)
    needs = getattr(head_cls, "needs", None)
    return needs is not None and all(callable(getattr(memory_cls, op, None)) for op in needs)


def _fitting(memory: type | str) -> tuple[list[str], list[str]]:
    """(writers, readers): registered heads that fit ``memory``, by stage, sorted by name."""
    heads = [name for name in registered_components("head") if fits(name, memory)]
    writers = [name for name in heads if _resolve(name).stage <= 0]
    return writers, [name for name in heads if name not in writers]


def head_sets(memory: type | str) -> list[tuple[str, ...]]:
    """The head sets (registered head names, in the order the cell lists them) made for ``memory``."""
    writers, readers = _fitting(memory)
    if not readers:
        return [(writer,) for writer in writers]
    return [(writer, reader) for writer in writers for reader in readers]


def no_set_reason(memory: type | str) -> str:
    """One sentence on why ``memory`` has no head set ('' when it has one)."""
    if head_sets(memory):
        return ""
    name = _resolve(memory).__name__
    return (f"no registered head of stage 0 (a writer) fits {name} by its Head.needs, so no MemoryCell can change "
            f"{name} and it is not mixed; if heads should write it, declare needs on them (a memory its model loads "
            "whole, like a story, is checked by that model's tests).")


def build_heads(names: tuple[str, ...]) -> list[nn.Module]:
    """Fresh heads built the conformance kit's way (registered example, else defaults and partners)."""
    heads = [build_default(name) for name in names]
    assert all(isinstance(h, Head) for h in heads), f"not all of {names} are heads"
    return heads
