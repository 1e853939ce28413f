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


def test_the_exclusive_stack_head_conforms():
    check_head(lambda: NeuralStackHead(gates="exclusive"), memory=lambda: NeuralDeque(word_size=11),
               harness=lambda head: MemoryCell(LSTMController(9), NeuralDeque(word_size=11), [head]))


def test_exclusive_gates_compete_and_sum_to_at_most_one():
    memory, head = NeuralDeque(word_size=4), NeuralStackHead(gates="exclusive")
    head.bind(memory)
    assert head.param_size(memory) == 2 * (4 + 3)  # [push | pop | no-op | value 4] per end
    torch.manual_seed(0)
    params = torch.randn(5, 1, 14, dtype=torch.float64)
    state = memory.initial_state(5, torch.device("cpu"), torch.float64)
    out = head(params, memory, state, (), record=True)
    push, pop = out.trace["push"], out.trace["pop"]  # [B, E]
    assert bool((push + pop <= 1).all()) and bool((push > 0).all()) and bool((pop > 0).all())
    # hand-computed: logits (push, pop, no-op) = (0, 0, 0) give d = u = 1/3 at each end
    zero = torch.zeros(1, 1, 14, dtype=torch.float64)
    out = head(zero, memory, memory.initial_state(1, torch.device("cpu"), torch.float64), (), record=True)
    torch.testing.assert_close(out.trace["push"], torch.full((1, 2), 1 / 3, dtype=torch.float64))
    # raising the pop logit lowers the push strength (the gradient the independent gates lack)
    logits = torch.zeros(1, 1, 14, dtype=torch.float64, requires_grad=True)
    out = head(logits, memory, memory.initial_state(1, torch.device("cpu"), torch.float64), (), record=True)
    (grad,) = torch.autograd.grad(out.trace["push"][0, 0], logits)
    assert grad[0, 0, 1] < 0 and grad[0, 0, 0] > 0


def test_exclusive_gates_gradcheck_through_a_cell():
    torch.manual_seed(1)
    cell = MemoryCell(LSTMController(6), NeuralStack(word_size=3), [NeuralStackHead(gates="exclusive")])
    cell.bind(input_size=4, output_size=2)
    cell.double()
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: cell(x).logits, (x,))


def test_an_unknown_gates_value_is_refused_in_one_sentence():
    with pytest.raises(ConfigError, match=r"^NeuralStackHead: gates is 'softmax'; use one of 'independent', 'exclusive' "):
        NeuralStackHead(gates="softmax")


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


@pytest.mark.parametrize("gates", ["independent", "exclusive"])
def test_push_and_pop_biases_start_the_memory_keeping_everything(gates):
    torch.manual_seed(0)
    head = NeuralStackHead(gates=gates, push_bias=3.0, pop_bias=-3.0)
    memory = NeuralDeque(word_size=4)
    G = 2 if gates == "independent" else 3
    bias = head.param_bias(memory)
    assert bias.shape == (2 * (4 + G),)  # both ends
    for end in range(2):
        row = bias[end * (4 + G) : (end + 1) * (4 + G)]
        assert row[:2].tolist() == [3.0, -3.0] and bool(row[G:].isnan().all())
        assert G == 2 or row[2].item() == 0.0  # exclusive: the no-op logit is the reference
    cell = MemoryCell(LSTMController(8), memory, [head])
    cell.bind(input_size=3, output_size=2)
    with torch.no_grad():  # zero weights on the projection: the gates are the biases alone
        for name, p in cell.named_parameters():
            if p.dim() == 2 and p.shape[0] == bias.shape[0]:
                p.zero_()
    out = cell(torch.zeros(2, 5, 3), record=True)
    push, pop = out.trace["push"], out.trace["pop"]  # [B, T, E]
    if gates == "independent":
        torch.testing.assert_close(push, torch.full_like(push, torch.sigmoid(torch.tensor(3.0)).item()))
    else:
        expected = torch.softmax(torch.tensor([3.0, -3.0, 0.0]), 0)
        torch.testing.assert_close(push, torch.full_like(push, expected[0].item()))
        torch.testing.assert_close(pop, torch.full_like(pop, expected[1].item()))
    assert bool((pop < 0.06).all())


def test_no_biases_keep_the_projection_initialisation():
    assert NeuralStackHead().param_bias(NeuralStack(word_size=4)) is None


@pytest.mark.parametrize("name", ["push_bias", "pop_bias"])
def test_a_non_finite_bias_is_refused_in_one_sentence(name):
    with pytest.raises(ConfigError, match=rf"^NeuralStackHead: {name} is nan; give a finite number"):
        NeuralStackHead(**{name: float("nan")})
    with pytest.raises(ConfigError, match=rf"^NeuralStackHead: {name} is \[1.0, 'x'\]; give a finite number"):
        NeuralStackHead(**{name: [1.0, "x"]})


def test_biases_per_end_start_a_deque_pushing_at_the_top_only():
    head, memory = NeuralStackHead(push_bias=[3.0, -3.0], pop_bias=-3.0), NeuralDeque(word_size=2)
    head.bind(memory)
    bias = head.param_bias(memory).view(2, 4)  # [E, W + 2]: top, then bottom
    assert bias[:, :2].tolist() == [[3.0, -3.0], [-3.0, -3.0]]


def test_a_bias_list_of_the_wrong_length_is_refused_in_one_sentence():
    cell = MemoryCell(LSTMController(8), NeuralQueue(word_size=3), [NeuralStackHead(push_bias=[3.0, -3.0])])
    with pytest.raises(ConfigError, match=r"^NeuralStackHead: push_bias has 2 values but NeuralQueue has 1 end \(top\); give one value"):
        cell.bind(4, 3)
