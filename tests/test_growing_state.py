"""Memories whose state grows: the kit checks what still holds, traces are padded, pictures draw them, compile copes.

The growing memory is the documented example :class:`mannkit.testing.growing.TapeMemory`: an
append-only tape ``values [B, t, W]`` (t rows after t steps) and a head that appends one value and
reads an attention-weighted sum over the rows.
"""

import pytest
import torch

from mannkit.callbacks.memory_pictures import example_figures
from mannkit.cell import MemoryCell
from mannkit.core.interfaces import Memory, stack_steps
from mannkit.nn import MatrixMemory, MLPController, ReadHead, WriteHead, ContentAddressing
from mannkit.testing import check_head, check_memory, check_sequence_model
from mannkit.testing.growing import TapeHead, TapeMemory, TapeState, tape_harness

B, T, I, O, W = 3, 5, 7, 2, 4


def _tape_cell(**kw) -> MemoryCell:
    torch.manual_seed(0)
    cell = MemoryCell(MLPController(13, activation="tanh"), TapeMemory(W), [TapeHead()], **kw)
    cell.bind(I, O)
    return cell


# -- the conformance kit ------------------------------------------------------------------------
def test_the_kit_passes_a_growing_memory_its_head_and_its_cell():
    check_memory(lambda: TapeMemory(word_size=11), harness=tape_harness)
    check_head(lambda: TapeHead(count=2), memory=lambda: TapeMemory(11), harness=lambda head: MemoryCell(
        MLPController(13, activation="tanh"), TapeMemory(11), [head]))
    check_sequence_model(lambda: MemoryCell(MLPController(13), TapeMemory(11), [TapeHead(count=2)]))


class _Undeclared(TapeMemory):
    growing = {}


class _WrongField(TapeMemory):
    growing = {"rows": 1}


class _BatchAxis(TapeMemory):
    growing = {"values": 0}


def test_the_kit_refuses_a_state_that_grows_undeclared():
    with pytest.raises(AssertionError, match=r"memory _Undeclared fails the contract check: the memory or head state changes "
                       r"shape over a step: .*declares the growing axis in its growing attribute, e.g. growing = \{'values': 1\}\."):
        check_memory(lambda: _Undeclared(11), harness=tape_harness)


@pytest.mark.parametrize("cls, message", [
    (_WrongField, r"growing names the state field 'rows', but the state's tensor fields are \['values'\]; name one of those\."),
    (_BatchAxis, r"growing\['values'\] is 0 but must be an axis of its \[3, 0, 11\] tensor other than the batch \(1 to 2\)\."),
])
def test_the_kit_refuses_a_wrong_declaration(cls, message):
    with pytest.raises(AssertionError, match=message):
        check_memory(lambda: cls(11), harness=tape_harness)


def test_the_kit_still_checks_the_dtype_of_a_growing_state_after_a_step():
    class Promoting(TapeMemory):  # keeps its tape in float64 whatever it was given
        def append(self, values, state):
            return TapeState(torch.cat([state.values, values], dim=1).double())

        def attend(self, queries, strengths, state):
            return super().attend(queries, strengths, TapeState(state.values.to(queries.dtype)))

    with pytest.raises(AssertionError, match=r"memory Promoting fails the contract check: .*torch.float32 .*torch.float64"):
        check_memory(lambda: Promoting(11), harness=tape_harness)


def test_the_declaration_is_a_class_attribute_empty_by_default():
    assert dict(Memory.growing) == {} and dict(MatrixMemory.growing) == {}
    assert dict(TapeMemory.growing) == {"values": 1}


# -- the trace path pads growing entries ----------------------------------------------------------
def test_stack_steps_pads_with_zeros_after_the_last_entry():
    steps = [torch.full((2, t + 1, 3), float(t + 1)) for t in range(4)]  # [B, t + 1, W]
    stacked = stack_steps(steps)
    assert stacked.shape == (2, 4, 4, 3)
    for t in range(4):
        assert torch.equal(stacked[:, t, : t + 1], steps[t])
        assert not stacked[:, t, t + 1 :].any()
    same = [torch.randn(2, 3) for _ in range(4)]
    assert torch.equal(stack_steps(same), torch.stack(same, dim=1))
    with pytest.raises(ValueError, match=r"per-step entries must keep their rank, got shapes \[\[2, 3\], \[2\]\]"):
        stack_steps([torch.zeros(2, 3), torch.zeros(2)])


def test_a_recorded_growing_trace_is_padded_per_step():
    cell = _tape_cell()
    x = torch.randn(B, T, I, generator=torch.Generator().manual_seed(1))
    out = cell(x, record=True)
    tape, weights = out.trace["tape"], out.trace["tape_weights"]
    assert tape.shape == (B, T, T, W) and weights.shape == (B, T, 1, T)  # padded to the T rows of the last step
    state = cell.initial_state(B, x.device, x.dtype)
    for t in range(T):
        _, state, _ = cell.step(x[:, t], state)
        assert torch.equal(tape[:, t, : t + 1], state.memory.values)  # the rows so far, as the state holds them
        assert not tape[:, t, t + 1 :].any() and not weights[:, t, :, t + 1 :].any()  # zero padding after them
        torch.testing.assert_close(weights[:, t].sum(-1), torch.ones(B, 1))
    torch.testing.assert_close(out.logits, cell(x).logits)


def test_memory_pictures_draw_a_growing_memory():
    cell = _tape_cell()
    batch = {"input": torch.rand(2, T, I), "target": torch.rand(2, T, O)}
    figures = example_figures(cell, batch)
    assert {"example", "tape", "tape_weights"} <= set(figures)
    (panel,) = [ax for ax in figures["tape_weights"].axes if ax.get_title() == "tape head 0"]
    assert panel.images[0].get_array().shape == (T, T)  # [N_max, T]: rows of the tape over time steps


# -- recomputation and compiling --------------------------------------------------------------------
def test_checkpointing_over_time_copes_with_a_growing_state():
    plain, segmented = _tape_cell().double(), _tape_cell(checkpoint_every=2).double()
    x = torch.randn(B, T, I, dtype=torch.float64)
    for cell in (plain, segmented):
        cell(x).logits.pow(2).sum().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), segmented.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")
@pytest.mark.filterwarnings("ignore::UserWarning:torch")
def test_a_compiled_growing_memory_uses_dynamic_shapes_and_a_few_graphs(monkeypatch):
    """``compile: true`` asks for dynamic shapes; run with the fast aot_eager backend, the graphs do not grow with T."""
    from torch._dynamo.utils import counters

    asked = {}
    real_compile = torch.compile

    def compile_fast(fn, *, dynamic, options):
        asked["dynamic"] = dynamic
        return real_compile(fn, backend="aot_eager", dynamic=dynamic)

    monkeypatch.setattr(torch, "compile", compile_fast)
    torch._dynamo.reset()
    compiled, eager = _tape_cell(compile=True), _tape_cell()
    graphs_before = counters["stats"]["unique_graphs"]
    for steps in (6, 9):  # the second, longer sequence must reuse the graphs of the first
        x = torch.randn(B, steps, I, generator=torch.Generator().manual_seed(steps))
        torch.testing.assert_close(compiled(x).logits, eager(x).logits)
        if steps == 6:
            graphs = counters["stats"]["unique_graphs"] - graphs_before
    assert asked == {"dynamic": True}
    assert graphs <= 3, graphs  # an empty tape, one row, then any number of rows
    assert counters["stats"]["unique_graphs"] - graphs_before == graphs

    fixed = MemoryCell(MLPController(13), MatrixMemory(5, W), [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())],
                       compile=True)
    fixed.bind(I, O)
    fixed.step(torch.zeros(B, I), fixed.initial_state(B, torch.device("cpu"), torch.float32))
    assert asked == {"dynamic": False}  # a fixed-shape memory keeps its static graphs
