"""Head sets: each memory is paired with the registered heads whose ``needs`` it offers.

A fake third-party stack memory with its own push and pop heads is registered in a private
registry next to the matrix memory and heads: each memory gets exactly the heads made for it.
"""

import pytest
import torch

from mannkit.core.interfaces import Head, HeadOutput, Memory
from mannkit.core.registry import Registry
from mannkit.nn import ContentAddressing, MatrixMemory, ReadHead, WriteHead
from mannkit.testing import defaults as kit_defaults
from mannkit.testing import fits, head_sets, no_set_reason
from mannkit.testing.mixing import build_heads


class StackMemory(Memory):
    """A stand-in for a neural stack: it offers push and pop, not read and write."""

    @property
    def word_size(self) -> int:
        return 3

    def initial_state(self, batch_size, device, dtype):
        return (torch.zeros(batch_size, 5, 3, device=device, dtype=dtype),)

    def push(self, value, state):
        return state

    def pop(self, state):
        return state


class _StackHead(Head):
    @property
    def count(self) -> int:
        return 1

    def param_size(self, memory):
        return 3

    def forward(self, params, memory, memory_state, state, record=False):
        return HeadOutput(None, memory_state, state, {})


class PushHead(_StackHead):
    stage = 0
    needs = ("push",)


class PopHead(_StackHead):
    needs = ("pop",)


class PushPopHead(_StackHead):
    """Pushes and pops in one bank: a writer (stage 0) that also reads."""

    stage = 0
    needs = ("push", "pop")


class UndeclaredHead(_StackHead):
    """Declares no needs: never paired automatically."""


class LoadedMemory(MatrixMemory):
    """Offers read but not write (filled whole by its model, like a story memory)."""

    write = None


@pytest.fixture()
def registry(monkeypatch):
    reg = Registry()
    reg._loaded = True  # nothing to load: only what the test registers
    for cls in (MatrixMemory, StackMemory, LoadedMemory, ReadHead, WriteHead, PushHead, PopHead, PushPopHead, UndeclaredHead):
        reg.register(cls)
    monkeypatch.setattr(kit_defaults, "registry", reg)
    return reg


def test_each_memory_gets_the_heads_made_for_it(registry):
    assert head_sets("MatrixMemory") == [("WriteHead", "ReadHead")]
    assert head_sets(StackMemory) == [("PushHead", "PopHead"), ("PushPopHead", "PopHead")]
    assert not fits(UndeclaredHead, StackMemory) and not fits(PushHead, MatrixMemory) and fits(ReadHead, StackMemory) is False


def test_a_memory_no_writer_fits_has_no_set_and_a_reason(registry):
    assert head_sets(LoadedMemory) == []
    assert no_set_reason(LoadedMemory).startswith("no registered head of stage 0 (a writer) fits LoadedMemory by its Head.needs")
    assert no_set_reason(MatrixMemory) == ""


def test_a_writer_alone_where_no_reader_fits(registry):
    registry._entries["head"].pop("PopHead")
    assert head_sets(StackMemory) == [("PushHead",), ("PushPopHead",)]


def test_head_sets_build_with_the_kits_partners(registry):
    write, read = build_heads(("WriteHead", "ReadHead"))
    assert isinstance(write, WriteHead) and isinstance(read.addressing, ContentAddressing)
