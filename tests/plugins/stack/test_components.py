"""The conformance kit on every component of the plugin, the cell with them, and the one-sentence refusals."""

import pytest
import torch

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError
from mannkit.nn import ContentAddressing, ControllerCell, LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.testing import check_head, check_memory, check_sequence_model, head_sets
from mannkit_ntm import NTMAddressing
from mannkit_stack import (
    NeuralDeque,
    NeuralQueue,
    NeuralStack,
    NeuralStackHead,
    PushPopStack,
    PushPopStackHead,
)
from mannkit_stack.kit import pushpop_harness, stack_harness


@pytest.mark.parametrize("cls", [NeuralStack, NeuralQueue, NeuralDeque])
def test_the_growing_memories_conform(cls):
    check_memory(lambda: cls(word_size=11), harness=stack_harness)


def test_the_push_pop_stack_conforms():
    check_memory(lambda: PushPopStack(stacks=3, depth=7, word_size=5, read_depth=2), harness=pushpop_harness)


def test_the_heads_conform():
    check_head(NeuralStackHead)  # its registered example: over a NeuralDeque
    check_head(PushPopStackHead)


def test_the_lstm_baseline_conforms():
    check_sequence_model(lambda: ControllerCell(LSTMController(13)))


def test_the_heads_are_paired_with_their_memories_by_needs():
    for memory in ("NeuralStack", "NeuralQueue", "NeuralDeque"):
        assert head_sets(memory) == [("NeuralStackHead",)]
    assert head_sets("PushPopStack") == [("PushPopStackHead",)]
    assert ("NeuralStackHead",) not in head_sets("MatrixMemory")


def test_a_stack_head_on_a_matrix_memory_is_refused_in_one_sentence():
    cell = MemoryCell(LSTMController(8), MatrixMemory(7, 5), [NeuralStackHead()])
    with pytest.raises(
        ConfigError,
        match=r"^NeuralStackHead needs a memory with pop, push and peek \(such as NeuralStack, NeuralQueue or NeuralDeque\), "
        r"but the memory is MatrixMemory; use NeuralStack, NeuralQueue or NeuralDeque as its memory, or heads made for "
        r"MatrixMemory such as ReadHead and WriteHead\.$",
    ):
        cell.bind(4, 3)


@pytest.mark.parametrize("head", [lambda: ReadHead(NTMAddressing()), lambda: WriteHead(NTMAddressing())])
def test_an_ntm_head_on_a_stack_is_refused_in_one_sentence(head):
    cell = MemoryCell(LSTMController(8), NeuralStack(5), [head()])
    with pytest.raises(ConfigError, match=r"^(Read|Write)Head needs a memory with read.* but the memory is NeuralStack; use a head made for NeuralStack or a matrix memory\.$"):
        cell.bind(4, 3)


def test_a_push_pop_head_on_a_neural_stack_is_refused():
    cell = MemoryCell(LSTMController(8), NeuralStack(5), [PushPopStackHead()])
    with pytest.raises(ConfigError, match=r"^PushPopStackHead needs a memory with act and top \(such as PushPopStack\), but the memory is NeuralStack; "
                       r"use PushPopStack as its memory, or heads made for NeuralStack such as NeuralStackHead\.$"):
        cell.bind(4, 3)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: NeuralStack(word_size=0), r"^NeuralStack: word_size must be a positive integer, got 0; set word_size to 1 or more\.$"),
        (lambda: PushPopStack(depth=0), r"^PushPopStack: depth must be a positive integer, got 0; set depth to 1 or more\.$"),
        (lambda: PushPopStack(depth=3, read_depth=4), r"^PushPopStack: read_depth \(4\) is more than depth \(3\); set read_depth to 3 or less\.$"),
        (lambda: ControllerCell(MatrixMemory(3, 2)), r"^ControllerCell: controller is a MatrixMemory, not a Controller; "),
    ],
)
def test_bad_settings_are_refused_in_one_sentence(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_a_matrix_memory_and_a_stack_in_one_cell():
    from mannkit.nn import OnMemory

    cell = MemoryCell(
        LSTMController(13), MatrixMemory(7, 5),
        [WriteHead(ContentAddressing()), ReadHead(ContentAddressing()), OnMemory("stack", NeuralStackHead())],
        memories={"stack": NeuralStack(3)},
    )
    cell.bind(4, 2)
    out = cell(torch.randn(2, 6, 4), record=True)
    assert out.logits.shape == (2, 6, 2)
    assert out.trace["stack/strengths"].shape == (2, 6, 6) and out.trace["stack/values"].shape == (2, 6, 6, 3)
    assert out.trace["stack/push"].shape == (2, 6, 1)


def test_the_stack_is_the_only_path_through_time_and_it_carries_information():
    """With a stateless controller, an output depends on an earlier input only through the stack."""
    torch.manual_seed(0)
    cell = stack_harness(NeuralStack(5))
    cell.bind(3, 2)
    x = torch.randn(2, 5, 3, requires_grad=True)
    cell(x).logits[:, -1].sum().backward()
    assert x.grad[:, 0].abs().sum() > 0
