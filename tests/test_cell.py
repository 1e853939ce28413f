"""MemoryCell: assembly derives sizes, order of heads, state is data, float64 gradcheck."""

import os
import pickle

import pytest
import torch

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.interfaces import Head, HeadOutput
from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, MLPController, ReadHead, WriteHead

B, T, I, O, N, W = 3, 5, 7, 2, 11, 4


def _cell(**kw):
    cell = MemoryCell(
        LSTMController(13),
        MatrixMemory(N, W, init="random", init_std=0.3),
        [ReadHead(ContentAddressing(), count=2), WriteHead(ContentAddressing())],
        **kw,
    )
    cell.bind(I, O)
    return cell


def test_sizes_are_derived():
    cell = _cell()
    assert cell.read_width == 2 * W
    assert cell.controller.cells[0].input_size == I + 2 * W
    assert cell.project.out_features == 2 * (W + 1) + (W + 1 + 2 * W)
    assert cell.output.in_features == 13 + 2 * W


def test_write_happens_before_read():
    torch.manual_seed(0)
    cell = _cell()
    state = cell.initial_state(B, torch.device("cpu"), torch.float32)
    _, new_state, trace = cell.step(torch.randn(B, I), state, record=True)
    assert set(trace) == {"read_weights", "write_weights", "memory"}
    assert trace["read_weights"].shape == (B, 2, N) and trace["write_weights"].shape == (B, 1, N)
    # reads were taken from the memory after the write
    expected = torch.bmm(trace["read_weights"], new_state.memory.memory).reshape(B, -1)
    torch.testing.assert_close(new_state.reads, expected)
    assert not torch.equal(new_state.memory.memory, state.memory.memory)


def test_forward_trace_has_time_axis():
    cell = _cell()
    out = cell(torch.randn(B, T, I), record=True)
    assert out.logits.shape == (B, T, O)
    assert out.trace["read_weights"].shape == (B, T, 2, N)
    torch.testing.assert_close(out.trace["read_weights"].sum(-1), torch.ones(B, T, 2))


def test_gradcheck_float64():
    torch.manual_seed(1)
    cell = MemoryCell(MLPController(5), MatrixMemory(N, W, init="learned"), [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])
    cell.bind(I, O)
    cell.double()
    x = torch.randn(2, 3, I, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: cell(v).logits, (x,))


def test_every_parameter_gets_a_gradient():
    cell = _cell(clip=20.0)
    cell(torch.randn(B, T, I)).logits.sum().backward()
    missing = [n for n, p in cell.named_parameters() if p.grad is None]
    assert not missing


def test_clip_bounds_head_parameters():
    cell = _cell(clip=0.5)
    with torch.no_grad():
        cell.project.weight.fill_(100.0)
    seen = {}
    original = cell.heads[0].forward

    def spy(params, *args, **kw):
        seen["max"] = params.abs().max().item()
        return original(params, *args, **kw)

    cell.heads[0].forward = spy
    cell(torch.ones(B, 1, I))
    assert seen["max"] <= 0.5


def test_wrong_input_width_says_both_shapes():
    with pytest.raises(ShapeError, match=r"MemoryCell input has shape \[3, 5, 6\] but \[B, T, 7\] was expected"):
        _cell()(torch.zeros(B, T, I - 1))


def test_unbound_cell_says_how_to_build():
    cell = MemoryCell(LSTMController(3), MatrixMemory(N, W), [ReadHead(ContentAddressing())])
    with pytest.raises(ConfigError, match="not built yet; call cell.bind"):
        cell(torch.zeros(B, T, I))


def test_head_incompatible_with_memory():
    class NotAMatrix(MatrixMemory):
        read = None

    cell = MemoryCell(LSTMController(3), NotAMatrix(N, W), [ReadHead(ContentAddressing())])
    with pytest.raises(ConfigError, match="ReadHead needs a memory with read .* but the memory is NotAMatrix"):
        cell.bind(I, O)


def test_empty_heads_and_bad_clip():
    with pytest.raises(ConfigError, match="heads is empty"):
        MemoryCell(LSTMController(3), MatrixMemory(N, W), [])
    with pytest.raises(ConfigError, match="clip must be positive or null, got -1"):
        MemoryCell(LSTMController(3), MatrixMemory(N, W), [ReadHead(ContentAddressing())], clip=-1)


def test_a_head_without_addressing_fits_the_interface():
    """A stack-like head needs no addressing: it only has to honour Head's contract."""

    class CounterHead(Head):
        stage = 0

        def __init__(self):
            super().__init__()

        @property
        def count(self):
            return 1

        def param_size(self, memory):
            return 1

        def forward(self, params, memory, memory_state, state, record=False):
            return HeadOutput(None, memory_state, state, {})

    cell = MemoryCell(MLPController(3), MatrixMemory(N, W), [CounterHead(), ReadHead(ContentAddressing())])
    cell.bind(I, O)
    assert cell(torch.zeros(B, T, I)).logits.shape == (B, T, O)


def test_pickles_for_ddp_spawn():
    cell = _cell()
    twin = pickle.loads(pickle.dumps(cell))
    x = torch.randn(B, T, I)
    torch.manual_seed(3)
    expected = cell(x).logits
    torch.manual_seed(3)  # the random memory init draws the same noise
    torch.testing.assert_close(twin(x).logits, expected)


# -- torch.compile -----------------------------------------------------------------------
# ``compile=True`` wraps ``_step`` in ``torch.compile``. The fast test traces the same step with
# the ``aot_eager`` backend (Dynamo capture and AOTAutograd, including the hand-written backwards,
# without code generation: a few seconds); the inductor test is the real thing, whose cold compile
# takes about 45 s of one CPU thread, so it only runs when MANNKIT_TEST_COMPILE=1.


def _ntm_cell(compile_step: bool, backend: str | None = None) -> MemoryCell:
    from mannkit_ntm import NTMAddressing

    torch.manual_seed(7)
    cell = MemoryCell(
        LSTMController(6),
        MatrixMemory(N, W, init="learned"),
        [WriteHead(NTMAddressing(shift_range=1)), ReadHead(NTMAddressing(shift_range=1), count=2)],
        clip=20.0,
        compile=compile_step,
    )
    cell.bind(I, O)
    if backend is not None:  # the same step function, another backend
        cell.__dict__["_compiled_step"] = torch.compile(cell._step, backend=backend, dynamic=False)
    return cell


def _check_compiled_against_eager(compiled: MemoryCell) -> None:
    """Logits and gradients equal eager's; two graphs (first step, later steps), no break, no recompile."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # earlier tests' graphs of MemoryCell._step count against Dynamo's recompile limit
    eager = _ntm_cell(False)
    x = torch.randn(B, T, I, generator=torch.Generator().manual_seed(3))
    graphs_before = counters["stats"]["unique_graphs"]
    breaks_before = sum(counters["graph_break"].values())
    for attempt in range(2):  # the second pass must reuse the graphs of the first
        expected, got = eager(x).logits, compiled(x).logits
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        loss_weights = torch.randn(B, T, O, generator=torch.Generator().manual_seed(attempt))
        eager.zero_grad()
        compiled.zero_grad()
        (expected * loss_weights).sum().backward()
        (got * loss_weights).sum().backward()
        for (name, p_eager), (_, p_compiled) in zip(eager.named_parameters(), compiled.named_parameters()):
            torch.testing.assert_close(p_compiled.grad, p_eager.grad, rtol=1e-4, atol=1e-6, msg=name)
        if attempt == 0:
            graphs_after_first = counters["stats"]["unique_graphs"]
    assert graphs_after_first - graphs_before == 2  # the first step (fresh state) and every later step
    assert counters["stats"]["unique_graphs"] == graphs_after_first
    assert sum(counters["graph_break"].values()) == breaks_before, dict(counters["graph_break"])


# torch's own warnings while compiling (inductor importing torch.jit, Dynamo inspecting tensors and Functions)
@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")
@pytest.mark.filterwarnings("ignore::UserWarning:torch")
def test_traced_step_matches_eager_and_does_not_recompile():
    _check_compiled_against_eager(_ntm_cell(True, backend="aot_eager"))


@pytest.mark.skipif(
    os.environ.get("MANNKIT_TEST_COMPILE") != "1",
    reason="the cold inductor compile takes about 45 s of one CPU thread; set MANNKIT_TEST_COMPILE=1 to run it",
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")
@pytest.mark.filterwarnings("ignore::UserWarning:torch")
def test_compiled_step_matches_eager_and_does_not_recompile():
    _check_compiled_against_eager(_ntm_cell(True))


@pytest.mark.parametrize("every", [1, 2, 3, T])
def test_checkpointing_over_time_gives_the_same_outputs_and_gradients(every):
    torch.manual_seed(3)
    plain = _cell(dropout=0.2).double()
    segmented = _cell(dropout=0.2, checkpoint_every=every).double()
    segmented.load_state_dict(plain.state_dict())
    x = torch.randn(B, T, I, dtype=torch.float64)
    grads = []
    for cell in (plain, segmented):
        cell.train()
        torch.manual_seed(7)  # the same dropout masks; checkpoint replays the RNG state when it recomputes
        cell(x).logits.pow(2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in cell.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)


def test_checkpointing_frees_the_saved_steps():
    """With k = 1 only the boundary states stay alive between forward and backward: fewer saved bytes."""
    def saved_bytes(cell):
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            cell(torch.randn(B, 20, I)).logits.sum()
        return total

    torch.manual_seed(0)
    assert saved_bytes(_cell(checkpoint_every=5)) < 0.5 * saved_bytes(_cell())


def test_checkpoint_every_is_validated():
    with pytest.raises(ConfigError, match=r"checkpoint_every must be a positive integer, auto or null, got 0; use e.g. 8"):
        _cell(checkpoint_every=0)

    class InPlaceMemory(MatrixMemory):
        recomputable = False

    with pytest.raises(ConfigError, match=r"checkpoint_every=4 cannot be used with InPlaceMemory, which updates"):
        MemoryCell(LSTMController(3), InPlaceMemory(3, 2), [ReadHead(ContentAddressing())], checkpoint_every=4)


class _BiasedRead(ReadHead):
    """A content read head whose strength number (index W of its W + 1) starts at 7; the key keeps its init."""

    def __init__(self, bias, count=1):
        super().__init__(ContentAddressing(), count=count)
        self._bias = bias

    def param_bias(self, memory):
        return self._bias(memory)


def _strength_bias(memory):
    bias = torch.full((memory.word_size + 1,), float("nan"))
    bias[memory.word_size] = 7.0
    return bias


def _biased_cell(head):
    torch.manual_seed(3)
    cell = MemoryCell(LSTMController(13), MatrixMemory(N, W), [WriteHead(ContentAddressing()), head])
    cell.bind(I, O)
    return cell


def test_param_bias_sets_its_rows_for_every_head_of_the_bank_and_keeps_the_nan_rows():
    plain = _biased_cell(ReadHead(ContentAddressing(), count=2)).project.bias.detach()
    biased = _biased_cell(_BiasedRead(_strength_bias, count=2)).project.bias.detach()
    write = W + 1 + 2 * W  # the write bank's rows come first
    rows = biased[write:].view(2, W + 1)  # [h, P]
    assert torch.equal(rows[:, W], torch.full((2,), 7.0))  # the strength of both heads
    assert torch.equal(rows[:, :W], plain[write:].view(2, W + 1)[:, :W])  # NaN entries: the init is kept
    assert torch.equal(biased[:write], plain[:write])  # other banks untouched


def test_param_bias_passes_through_on_memory():
    from mannkit.nn.cells import OnMemory

    head = OnMemory("main", _BiasedRead(_strength_bias))
    assert torch.equal(head.param_bias(MatrixMemory(N, W)).nan_to_num(), _strength_bias(MatrixMemory(N, W)).nan_to_num())


def test_param_bias_of_the_wrong_shape_is_one_sentence():
    with pytest.raises(ShapeError, match=r"MemoryCell: _BiasedRead.param_bias gave shape \[3\] but the head has param_size 5") as info:
        _biased_cell(_BiasedRead(lambda memory: torch.zeros(3)))
    assert "\n" not in str(info.value)
