"""The dense DNC (plugins/mannkit_dnc/memory.py, heads.py): the head protocol, the memory, the
conformance kit, mixes with the core heads and controllers, pictures, learning, and the presets.

Sizes are distinct (B=3, R=2, N=7, W=5, H=13) so that a transposed axis breaks a test.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mannkit.callbacks  # noqa: F401  (check_config resolves short names; main() imports these itself)
import mannkit.systems  # noqa: F401
import mannkit_dnc
from mannkit.cell import MemoryCell
from mannkit.cli import check_config, main
from mannkit.core.config import instantiate
from mannkit.core.errors import ConfigError, ShapeError
from mannkit.nn import ContentAddressing, GRUController, LSTMController, MatrixMemory, MLPController, ReadHead, WriteHead
from mannkit.tasks import CopyTask
from mannkit.testing import check_component, check_head, check_memory, registered_components
from mannkit.viz import draw_trace
from mannkit_dnc import DNCMemory, DNCReadHead, DNCState, DNCWriteHead
from mannkit_dnc import fused as fused_module
from mannkit_dnc import memory as memory_module

B, R, N, W, H = 3, 2, 7, 5, 13
CPU = torch.device("cpu")
F64 = torch.float64
ROOT = Path(__file__).parents[3]
PRESETS = [ROOT / "configs" / "dnc" / f"{name}.yaml" for name in ("copy", "repeat_copy", "associative_recall")]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cell(controller=None, memory=None, heads=None, inputs: int = 4, outputs: int = 3) -> MemoryCell:
    cell = MemoryCell(
        controller or MLPController(H, activation="tanh"),
        memory or DNCMemory(slots=N, word_size=W),
        heads if heads is not None else [DNCWriteHead(), DNCReadHead(count=R)],
    )
    cell.bind(inputs, outputs)
    return cell


# -- configuration errors --------------------------------------------------------------------


@pytest.mark.parametrize("name, bad", [("slots", 0), ("slots", 2.5), ("word_size", True), ("word_size", "5")])
def test_memory_sizes_must_be_positive_integers(name, bad):
    with pytest.raises(ConfigError, match=rf"^DNCMemory: {name} must be a positive integer, got {bad!r}; set {name} to 1 or more\.$"):
        DNCMemory(**{name: bad})


@pytest.mark.parametrize("bad", [-0.1, 1.0, True, "small"])
def test_allocation_eps_must_be_in_zero_one(bad):
    with pytest.raises(ConfigError, match=rf"^DNCMemory: allocation_eps must be a number in \[0, 1\), got {bad!r}; keep the default 1e-6\.$"):
        DNCMemory(allocation_eps=bad)


def test_the_write_head_count_must_be_one():
    with pytest.raises(ConfigError, match=r"^DNCWriteHead: count must be 1 \(the DNC has one write head\), got 2; set count to 1\.$"):
        DNCWriteHead(count=2)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_the_read_head_count_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match=rf"^DNCReadHead: count must be a positive integer, got {bad!r}; set count to 1 or more\.$"):
        DNCReadHead(count=bad)


@pytest.mark.parametrize("head, needs", [(DNCWriteHead, "dnc_write"), (lambda: DNCReadHead(count=R), "dnc_read and attach_read_heads")])
def test_dnc_heads_refuse_a_memory_without_the_dnc_operations(head, needs):
    name = "DNCWriteHead" if needs == "dnc_write" else "DNCReadHead"
    with pytest.raises(ConfigError, match=rf"^{name} needs a memory with {needs} \(such as DNCMemory\), but the memory is MatrixMemory; use DNCMemory"):
        MemoryCell(MLPController(H), MatrixMemory(N, W), [head()]).bind(4, 3)


def test_a_memory_serves_one_read_head_count():
    memory = DNCMemory(slots=N, word_size=W)
    memory.attach_read_heads(R)
    memory.attach_read_heads(R)  # binding again with the same count is fine
    with pytest.raises(ConfigError, match=r"^DNCMemory already serves 2 read heads and cannot serve 3 as well; use one DNCReadHead bank"):
        memory.attach_read_heads(3)
    with pytest.raises(ConfigError, match=r"^DNCMemory: the read head count must be a positive integer, got 0; set count to 1 or more\.$"):
        DNCMemory().attach_read_heads(0)


def test_mismatched_read_heads_and_state_say_both_shapes():
    memory = DNCMemory(slots=N, word_size=W)
    memory.attach_read_heads(R)
    state = memory.initial_state(B, CPU, torch.float32)
    with pytest.raises(ShapeError, match=r"free_gates has shape \[3, 4\] but the state has 2 read heads"):
        memory.dnc_write(state, torch.zeros(B, 1, W), torch.ones(B, 1), torch.zeros(B, 1, W), torch.zeros(B, 1, W),
                         torch.zeros(B, 4), torch.zeros(B, 1), torch.zeros(B, 1))  # fmt: skip
    with pytest.raises(ShapeError, match=r"keys has shape \[3, 3, 5\] but the state has 2 read heads"):
        memory.dnc_read(state, torch.zeros(B, 3, W), torch.ones(B, 3), torch.ones(B, 3, 3) / 3)


# -- the head protocol -----------------------------------------------------------------------


class _RecordingMemory(DNCMemory):
    """A DNCMemory that keeps the arguments its heads pass (to pin the layout of their parameters)."""

    def dnc_write(self, state, *args):  # noqa: ANN001, ANN201
        self.__dict__["write_args"] = args[:7]  # key, strength, erase, vector, free gates, allocation gate, write gate
        return super().dnc_write(state, *args)

    def dnc_read(self, state, *args):  # noqa: ANN001, ANN201
        self.__dict__["read_args"] = args[:3]  # keys, strengths, modes
        return super().dnc_read(state, *args)


@pytest.mark.parametrize("write_first", [True, False])
def test_param_sizes_follow_the_read_head_count_whatever_the_head_order(write_first):
    heads = [DNCWriteHead(), DNCReadHead(count=R)]
    cell = _cell(heads=heads if write_first else heads[::-1])
    memory = cell.memory
    assert memory.read_heads == R
    assert heads[0].param_size(memory) == 3 * W + 3 + R
    assert heads[1].param_size(memory) == W + 4 and heads[1].read_size(memory) == W
    assert cell.project.out_features == (3 * W + 3 + R) + R * (W + 4)
    assert heads[0].stage == 0 and heads[1].stage == 1


def test_the_write_head_cuts_and_activates_its_parameters_in_the_documented_layout():
    memory = _RecordingMemory(slots=N, word_size=W)
    memory.attach_read_heads(R)
    head = DNCWriteHead()
    head.bind(memory)
    # [key W | strength 1 | erase W | write vector W | free gates R | allocation gate 1 | write gate 1]
    parts = [torch.randn(B, 1, size, generator=_gen(i)) for i, size in enumerate([W, 1, W, W, R, 1, 1])]
    head(torch.cat(parts, -1), memory, memory.initial_state(B, CPU, torch.float32), ())
    key, strength, erase, vector, free, allocation_gate, write_gate = memory.write_args
    torch.testing.assert_close(key, parts[0])
    torch.testing.assert_close(strength, 1 + F.softplus(parts[1][:, 0]))  # oneplus, [B, 1]
    torch.testing.assert_close(erase, torch.sigmoid(parts[2]))
    torch.testing.assert_close(vector, parts[3])
    torch.testing.assert_close(free, torch.sigmoid(parts[4][:, 0]))  # [B, R]
    torch.testing.assert_close(allocation_gate, torch.sigmoid(parts[5][:, 0]))  # [B, 1]
    torch.testing.assert_close(write_gate, torch.sigmoid(parts[6][:, 0]))


def test_the_read_head_cuts_and_activates_its_parameters_in_the_documented_layout():
    memory = _RecordingMemory(slots=N, word_size=W)
    head = DNCReadHead(count=R)
    head.bind(memory)
    parts = [torch.randn(B, R, size, generator=_gen(i)) for i, size in enumerate([W, 1, 3])]  # key | strength | modes
    out = head(torch.cat(parts, -1), memory, memory.initial_state(B, CPU, torch.float32), ())
    keys, strengths, modes = memory.read_args
    torch.testing.assert_close(keys, parts[0])
    torch.testing.assert_close(strengths, 1 + F.softplus(parts[1][..., 0]))  # [B, R]
    torch.testing.assert_close(modes, torch.softmax(parts[2], -1))  # [B, R, 3]
    assert out.reads.shape == (B, R, W) and out.state == ()


def _write_params(*, write_gate: float = 10.0, allocation_gate: float = 10.0, seed: int = 0) -> torch.Tensor:
    """Raw write-head parameters ``[B, 1, 3W + 3 + R]`` with the two gates set (raw, before the sigmoid)."""
    raw = torch.randn(B, 1, 3 * W + 1 + R, generator=_gen(seed))
    return torch.cat([raw, torch.full((B, 1, 1), allocation_gate), torch.full((B, 1, 1), write_gate)], -1)


def _memory_after(steps: int, memory: DNCMemory, seed: int = 0) -> DNCState:
    head = DNCWriteHead()
    head.bind(memory)
    state = memory.initial_state(B, CPU, torch.float32)
    for t in range(steps):
        state = head(_write_params(seed=seed + t), memory, state, ()).memory_state
    return state


def test_a_shut_write_gate_leaves_memory_links_and_precedence_unchanged():
    memory = DNCMemory(slots=N, word_size=W)
    memory.attach_read_heads(R)
    before = _memory_after(3, memory)
    head = DNCWriteHead()
    head.bind(memory)
    after = head(_write_params(write_gate=-1e4, seed=9), memory, before, ()).memory_state
    torch.testing.assert_close(after.memory, before.memory)
    torch.testing.assert_close(after.link, before.link)
    torch.testing.assert_close(after.precedence, before.precedence)
    assert (after.write_weights == 0).all()


def test_allocation_writes_fill_fresh_slots_one_after_another():
    memory = DNCMemory(slots=N, word_size=W)
    memory.attach_read_heads(R)
    state = _memory_after(N - 1, memory)  # write and allocation gates open: each write takes a free slot
    # usage folds in the write weighting at the next write, so the last write is still in write_weights
    slots = (state.usage > 0.5) | (state.write_weights[:, 0] > 0.5)
    assert (slots.sum(-1) == N - 1).all(), (state.usage, state.write_weights)  # N - 1 distinct slots are in use
    assert (state.link.sum(-1) <= 1 + 1e-5).all() and (torch.diagonal(state.link, dim1=1, dim2=2) == 0).all()


def test_read_modes_select_the_forward_weighting():
    memory = DNCMemory(slots=N, word_size=W)
    memory.attach_read_heads(R)
    state = _memory_after(3, memory)
    forward = torch.softmax(torch.randn(B, R, N, generator=_gen(1)), -1)
    state = state._replace(forward_weights=forward)
    head = DNCReadHead(count=R)
    params = torch.cat([torch.randn(B, R, W + 1, generator=_gen(2)), torch.tensor([-1e4, -1e4, 1e4]).expand(B, R, 3)], -1)
    out = head(params, memory, state, (), record=True)
    torch.testing.assert_close(out.memory_state.read_weights, forward)
    torch.testing.assert_close(out.reads, forward @ state.memory)
    assert torch.equal(out.trace["read_weights"], out.memory_state.read_weights)


def test_initial_state_shapes_and_describe():
    memory = DNCMemory(slots=N, word_size=W)
    memory.attach_read_heads(R)
    state = memory.initial_state(B, CPU, F64)
    shapes = {name: tuple(t.shape) for name, t in state._asdict().items()}
    assert shapes == {
        "memory": (B, N, W), "usage": (B, N), "link": (B, N, N), "precedence": (B, N),
        "read_weights": (B, R, N), "write_weights": (B, 1, N), "forward_weights": (B, R, N), "backward_weights": (B, R, N),
    }  # fmt: skip
    assert all(t.dtype == F64 and not t.any() for t in state)
    assert set(memory.describe(state)) == {"memory", "usage", "precedence", "link"}


# -- the whole cell: fused functions against the composed mechanisms ------------------------------


def test_the_fused_cell_matches_the_cell_built_from_the_mechanisms(monkeypatch):
    torch.manual_seed(0)
    cell = _cell(controller=LSTMController(H)).to(F64)
    x = torch.randn(B, 6, 4, generator=_gen(1), dtype=F64)
    weights = torch.randn(B, 6, 3, generator=_gen(2), dtype=F64)

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        cell.zero_grad()
        logits = cell(x).logits
        (logits * weights).sum().backward()
        return logits.detach(), [p.grad.clone() for p in cell.parameters()]

    fast_logits, fast_grads = run()
    monkeypatch.setattr(memory_module, "write_addressing", lambda *a: fused_module.write_addressing_reference(*a))
    monkeypatch.setattr(memory_module, "temporal_step", fused_module.temporal_step_reference)
    monkeypatch.setattr(memory_module, "read_addressing", fused_module.read_addressing_reference)
    slow_logits, slow_grads = run()
    torch.testing.assert_close(fast_logits, slow_logits)
    torch.testing.assert_close(fast_grads, slow_grads)


def test_weights_stay_weightings_and_usage_in_range_over_a_sequence():
    torch.manual_seed(0)
    cell = _cell()
    out = cell(torch.randn(B, 9, 4, generator=_gen(3)), record=True)
    trace = out.trace
    for name in ("write_weights", "read_weights", "allocation_weights"):
        assert (trace[name] >= 0).all() and (trace[name].sum(-1) <= 1 + 1e-5).all(), name
    assert (trace["usage"] >= 0).all() and (trace["usage"] <= 1).all()


def test_no_nan_with_an_all_zero_memory_and_inputs():
    torch.manual_seed(0)
    cell = _cell()
    x = torch.zeros(B, 5, 4, requires_grad=True)
    logits = cell(x).logits
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in cell.parameters())


@pytest.mark.parametrize("kernels", ["built", "unavailable"])
@pytest.mark.parametrize("every", [1, 2, 4])
def test_checkpointing_over_time_gives_the_same_outputs_and_gradients(every, kernels, monkeypatch):
    """MemoryCell(checkpoint_every=k) recomputes the DNC steps (and their link matrices) in the backward pass,
    with the C++ kernels and with the PyTorch forms a machine without a compiler runs (each backward may read
    ``ctx.saved_tensors`` only once under checkpointing)."""
    if kernels == "unavailable":
        from mannkit_dnc import addressing_kernel, link_kernel

        monkeypatch.setitem(link_kernel._state, "module", None)
        monkeypatch.setitem(addressing_kernel._state, "module", None)
    grads = []
    for checkpoint_every in (None, every):
        torch.manual_seed(0)
        cell = MemoryCell(LSTMController(H), DNCMemory(slots=N, word_size=W), [DNCWriteHead(), DNCReadHead(count=R)],
                          checkpoint_every=checkpoint_every)  # fmt: skip
        cell.bind(4, 3)
        cell.to(F64).train()
        logits = cell(torch.randn(B, 7, 4, generator=_gen(1), dtype=F64)).logits
        (logits * torch.randn(B, 7, 3, generator=_gen(2), dtype=F64)).sum().backward()
        grads.append((logits.detach(), [p.grad for p in cell.parameters()]))
    torch.testing.assert_close(grads[1], grads[0])


@pytest.mark.skipif(
    os.environ.get("MANNKIT_TEST_COMPILE") != "1",
    reason="tracing the DNC step's forward and backward takes about 10 s of one CPU thread; set MANNKIT_TEST_COMPILE=1 to run it",
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")
@pytest.mark.filterwarnings("ignore::UserWarning:torch")
def test_a_traced_step_matches_eager_without_graph_breaks():
    """Dynamo and AOTAutograd (the aot_eager backend: no code generation) trace the fused functions whole."""
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    eager = _cell(controller=LSTMController(H), memory=DNCMemory(slots=N, word_size=W))
    traced = _cell(controller=LSTMController(H), memory=DNCMemory(slots=N, word_size=W))
    traced.load_state_dict(eager.state_dict())
    traced.__dict__["_compiled_step"] = torch.compile(traced._step, backend="aot_eager", dynamic=False)
    traced.compile = True
    breaks = sum(counters["graph_break"].values())
    x = torch.randn(B, 5, 4, generator=_gen(3))
    expected, got = eager(x).logits, traced(x).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    weights = torch.randn(B, 5, 3, generator=_gen(4))
    (expected * weights).sum().backward()
    (got * weights).sum().backward()
    for (name, a), (_, b) in zip(eager.named_parameters(), traced.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert sum(counters["graph_break"].values()) == breaks, dict(counters["graph_break"])


# -- the conformance kit ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["DNCMemory", "DNCWriteHead", "DNCReadHead"])
def test_registered_components_conform(name):
    assert name in registered_components("head" if "Head" in name else "memory")
    check_component(name)


def test_non_default_settings_conform():
    check_memory(lambda: DNCMemory(slots=11, word_size=3, allocation_eps=0.0))
    check_head(lambda: DNCReadHead(count=3))


# -- mixes: other controllers, the core heads ----------------------------------------------------


def _trains(cell: MemoryCell, steps: int = 3) -> list[float]:
    batch = CopyTask(bits=3, min_length=2, max_length=2).example_batch(4)  # input [4, 6, 4], target [4, 6, 3]
    optimizer = torch.optim.Adam(cell.parameters(), lr=1e-2)
    mask = batch["mask"].unsqueeze(-1)
    losses = []
    for _ in range(steps):
        logits = cell(batch["input"]).logits
        loss = (F.binary_cross_entropy_with_logits(logits, batch["target"], reduction="none") * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)), losses
    return losses


@pytest.mark.parametrize(
    "heads",
    [
        lambda: [DNCWriteHead(), ReadHead(ContentAddressing(), count=R)],  # DNC write, plain content reads
        lambda: [WriteHead(ContentAddressing()), DNCReadHead(count=R)],  # plain write, DNC reads
        lambda: [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())],  # the memory as a matrix
    ],
    ids=["dnc-write", "dnc-read", "core-heads"],
)
def test_dnc_memory_mixes_with_the_core_heads(heads):
    torch.manual_seed(0)
    _trains(_cell(controller=LSTMController(H), heads=heads(), outputs=3))


def test_core_heads_use_plain_matrix_semantics_and_leave_the_bookkeeping():
    memory = DNCMemory(slots=N, word_size=W)
    memory.attach_read_heads(R)
    state = _memory_after(2, memory)
    weights = torch.softmax(torch.randn(B, 1, N, generator=_gen(5)), -1)
    erase, add = torch.rand(B, 1, W, generator=_gen(6)), torch.randn(B, 1, W, generator=_gen(7))
    written = memory.write(weights, erase, add, state)
    expected = state.memory * (1 - weights.mT * erase) + weights.mT * add
    torch.testing.assert_close(written.memory, expected)
    for name in ("usage", "link", "precedence", "read_weights", "write_weights"):
        assert torch.equal(getattr(written, name), getattr(state, name)), name
    torch.testing.assert_close(memory.read(weights, written), weights @ written.memory)


def test_a_gru_controller_drives_a_dnc():
    torch.manual_seed(0)
    cell = _cell(controller=GRUController(H), outputs=3)
    losses = _trains(cell, steps=5)
    assert losses[-1] < losses[0]


def test_config_round_trip_rebuilds_the_same_cell():
    torch.manual_seed(0)
    cell = _cell(controller=LSTMController(H))
    rebuilt = instantiate(cell.to_config())
    rebuilt.bind(4, 3)
    rebuilt.load_state_dict(cell.state_dict())
    x = torch.randn(B, 5, 4, generator=_gen(8))
    torch.testing.assert_close(rebuilt(x).logits, cell(x).logits)
    assert rebuilt.memory.read_heads == R


# -- pictures ---------------------------------------------------------------------------------


def test_the_trace_is_drawable():
    torch.manual_seed(0)
    out = _cell()(torch.randn(B, 6, 4, generator=_gen(4)), record=True)
    trace = out.trace
    assert trace["write_weights"].shape == (B, 6, 1, N)
    assert trace["allocation_weights"].shape == (B, 6, 1, N)
    assert trace["read_weights"].shape == (B, 6, R, N)
    assert trace["usage"].shape == (B, 6, N) and trace["memory"].shape == (B, 6, N, W)
    figures = draw_trace({k: v[0].detach().numpy() for k, v in trace.items()})
    assert set(figures) == {
        "write_weights", "allocation_weights", "read_weights", "read_modes", "usage", "memory", "precedence", "link",
    }


# -- learning ---------------------------------------------------------------------------------


def test_a_small_dnc_learns_to_copy():
    """A seeded 200-step run: the copy loss must fall below half its start (3 bits, length 1-3)."""
    torch.manual_seed(0)
    cell = MemoryCell(LSTMController(32), DNCMemory(slots=N, word_size=W), [DNCWriteHead(), DNCReadHead(count=R)], clip=20.0)
    cell.bind(4, 3)
    task = CopyTask(bits=3, min_length=1, max_length=3)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(cell.parameters(), lr=1e-2)
    losses = []
    for _ in range(200):
        batch = task.generate(generator, 16, 1, 3)
        mask = batch["mask"].unsqueeze(-1)
        logits = cell(batch["input"]).logits
        loss = (F.binary_cross_entropy_with_logits(logits, batch["target"], reduction="none") * mask).sum() / (3 * mask.sum())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(cell.parameters(), 10.0)
        optimizer.step()
        losses.append(loss.item())
    start, end = np.mean(losses[:20]), np.mean(losses[-20:])
    assert end < 0.5 * start, (start, end)


# -- plugin and presets -----------------------------------------------------------------------


def test_registered_through_the_entry_point():
    from mannkit.core.registry import load_plugins, registry

    load_plugins()
    info = registry.plugins["dnc"]
    assert info.error is None and info.module == "mannkit_dnc"
    assert {"memory:DNCMemory", "head:DNCWriteHead", "head:DNCReadHead"} <= set(info.registered)
    assert registry.get("DNCMemory") is DNCMemory
    assert mannkit_dnc.MANNKIT_API == 1
    assert {"DNCMemory", "DNCState", "DNCWriteHead", "DNCReadHead"} <= set(mannkit_dnc.__all__)


def test_the_presets_exist_and_open_with_the_command():
    for path in PRESETS:
        text = path.read_text()
        assert text.startswith("#") and f"mannkit fit --config configs/dnc/{path.name}" in text, path.name


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_a_preset_checks_and_trains_one_step(path, tmp_path):
    check_config(path)
    main([
        "fit", "--config", str(path),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.max_steps", "1",
        "--trainer.limit_val_batches", "1",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false",
        "--data.init_args.batch_size", "2",
        "--data.init_args.val_batches", "1",
        "--data.init_args.test_batches", "1",
    ])  # fmt: skip
    checkpoint = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=True)
    assert checkpoint["global_step"] == 1
