"""MemoryCell's ``auto`` defaults (issue 16): when the step is compiled, the compile cache, and
checkpointing over time chosen from the memory's size.

The compiled steps here use the aot_eager backend (Dynamo and AOTAutograd, no code generation:
a few seconds), as the other compile tests do; the real inductor compile is timed in benchmarks/.
"""

import os
import warnings

import pytest
import torch

import mannkit.cell as cell_module
from mannkit.cell import MemoryCell, auto_checkpoint_every, compile_cache_dir, saved_bytes_per_step
from mannkit.core.errors import ConfigError
from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit_dnc import DNCMemory, DNCReadHead, DNCWriteHead

B, T, I, O = 3, 6, 4, 3


def _dnc(slots: int = 7, **options) -> MemoryCell:
    cell = MemoryCell(LSTMController(13), DNCMemory(slots=slots, word_size=5), [DNCWriteHead(), DNCReadHead(count=2)], **options)
    cell.bind(I, O)
    return cell


def _fast_compile(monkeypatch) -> list:
    """torch.compile with the aot_eager backend; returns the list of compiled functions."""
    made = []
    real = torch.compile

    def compile_fast(fn, *, dynamic, options):
        made.append(fn)
        return real(fn, backend="aot_eager", dynamic=dynamic)

    monkeypatch.setattr(torch, "compile", compile_fast)
    return made


# -- defaults and validation --------------------------------------------------------------------


def test_the_defaults_are_auto():
    cell = _dnc()
    assert cell.compile == "auto" and cell.checkpoint_every == "auto"


@pytest.mark.parametrize("bad", ["yes", "always", 2.5, None])
def test_compile_is_validated(bad):
    with pytest.raises(ConfigError, match=rf"^MemoryCell: compile must be true, false or auto, got {bad!r}; use auto"):
        _dnc(compile=bad)


@pytest.mark.parametrize("bad", ["sometimes", 0, -3, 2.0, True])
def test_checkpoint_every_is_validated_with_auto_among_the_fixes(bad):
    with pytest.raises(ConfigError, match=rf"checkpoint_every must be a positive integer, auto or null, got {bad!r}; use e.g. 8, auto"):
        _dnc(checkpoint_every=bad)


# -- compile: auto --------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")
@pytest.mark.filterwarnings("ignore::UserWarning:torch")
def test_auto_compiles_training_steps_only_after_the_eager_time_budget(monkeypatch):
    made = _fast_compile(monkeypatch)
    monkeypatch.setattr(cell_module, "AUTO_COMPILE_AFTER_S", 1e9)
    cell = _dnc().train()
    x = torch.randn(B, T, I)
    cell(x).logits.sum().backward()
    assert not made and cell._eager_seconds > 0  # a short run stays eager
    monkeypatch.setattr(cell_module, "AUTO_COMPILE_AFTER_S", 0.0)
    with torch.no_grad():
        cell(x)  # evaluation stays eager
    cell(x, record=True)  # so does recording
    assert not made
    eager = _dnc().train()
    eager.load_state_dict(cell.state_dict())
    got = cell(x).logits  # now compiled
    assert len(made) == 1
    torch.testing.assert_close(got, eager(x).logits, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")
@pytest.mark.filterwarnings("ignore::UserWarning:torch")
def test_one_compile_serves_every_sequence_length(monkeypatch):
    from torch._dynamo.utils import counters

    _fast_compile(monkeypatch)
    torch._dynamo.reset()
    cell = _dnc(compile=True).train()
    before = counters["stats"]["unique_graphs"]
    for steps in (4, 9, 17):
        cell(torch.randn(B, steps, I)).logits.sum().backward()
        if steps == 4:
            graphs = counters["stats"]["unique_graphs"] - before
    assert graphs <= 2  # the first step (fresh state), then every later step
    assert counters["stats"]["unique_graphs"] - before == graphs


def test_auto_leaves_a_memory_that_does_not_say_compiling_pays_eager(monkeypatch):
    made = _fast_compile(monkeypatch)
    monkeypatch.setattr(cell_module, "AUTO_COMPILE_AFTER_S", 0.0)
    cell = MemoryCell(LSTMController(13), MatrixMemory(5, 4), [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])
    cell.bind(I, O)
    cell.train()(torch.randn(B, T, I)).logits.sum().backward()
    assert not made


def test_auto_falls_back_to_eager_with_one_warning_when_the_compile_fails(monkeypatch):
    def broken(fn, **_):
        def run(*args):
            raise RuntimeError("no C++ compiler found\nmore detail")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(cell_module, "AUTO_COMPILE_AFTER_S", 0.0)
    cell, eager = _dnc().train(), _dnc(compile=False).train()
    eager.load_state_dict(cell.state_dict())
    x = torch.randn(B, T, I)
    with pytest.warns(UserWarning, match=r"compiling the MemoryCell step failed \(RuntimeError: no C\+\+ compiler found\); running eagerly"):
        got = cell(x).logits
    torch.testing.assert_close(got, eager(x).logits)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cell(x)  # no second warning, no second try


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")
@pytest.mark.filterwarnings("ignore::UserWarning:torch")
def test_auto_falls_back_to_eager_when_only_the_backward_fails_to_compile(monkeypatch):
    """AOTAutograd compiles a backward lazily, at the first ``backward()``, outside the cell: auto asks for it at once."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    def backward_compiler(gm, example_inputs):
        raise RuntimeError("the backward cannot be lowered")

    backend = aot_autograd(fw_compiler=lambda gm, _: make_boxed_func(gm.forward), bw_compiler=backward_compiler)
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, *, dynamic, options: real(fn, backend=backend, dynamic=dynamic))
    monkeypatch.setattr(cell_module, "AUTO_COMPILE_AFTER_S", 0.0)
    torch._dynamo.reset()
    cell, eager = _dnc().train(), _dnc(compile=False).train()
    eager.load_state_dict(cell.state_dict())
    x = torch.randn(B, T, I)
    with pytest.warns(UserWarning, match=r"compiling the MemoryCell step failed \(RuntimeError: the backward cannot be lowered\); running eagerly"):
        got = cell(x).logits
    got.sum().backward()  # eager from the first step: nothing compiled is left to fail here
    expected = eager(x).logits
    expected.sum().backward()
    torch.testing.assert_close(got, expected)
    for mine, theirs in zip(cell.parameters(), eager.parameters()):
        torch.testing.assert_close(mine.grad, theirs.grad)


def test_compile_true_does_not_hide_a_failed_compile(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **_: (lambda *a: (_ for _ in ()).throw(RuntimeError("boom"))))
    cell = _dnc(compile=True).train()
    with pytest.raises(RuntimeError, match="boom"):
        cell(torch.randn(B, T, I))


# -- the compile cache ----------------------------------------------------------------------------


def test_the_compile_cache_is_under_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("MANNKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache_dir() == tmp_path / "mannkit" / "torchinductor"
    monkeypatch.setenv("MANNKIT_CACHE_DIR", str(tmp_path / "mine"))
    assert compile_cache_dir() == tmp_path / "mine" / "torchinductor"
    cell_module._use_compile_cache()
    assert (tmp_path / "mine" / "torchinductor").is_dir()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine" / "torchinductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "torch's"))
    assert compile_cache_dir() == tmp_path / "torch's"  # torch's own setting wins
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("MANNKIT_CACHE_DIR", "none")
    assert compile_cache_dir() is None


def test_a_cache_dir_that_is_a_file_is_refused(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    path = tmp_path / "file"
    path.write_text("")
    monkeypatch.setenv("MANNKIT_CACHE_DIR", str(path))
    with pytest.raises(ConfigError, match=rf"^MANNKIT_CACHE_DIR is {str(path)!r}, which is a file, not a folder; point it at a folder"):
        compile_cache_dir()


# -- checkpoint_every: auto -----------------------------------------------------------------------


def test_auto_checkpointing_turns_on_from_the_memory_size():
    assert auto_checkpoint_every(0, 41) is None
    assert auto_checkpoint_every(2**20, 41) is None  # 41 MiB in all: saved
    assert auto_checkpoint_every(64 * 2**20, 41) == 7  # the DNC's link at N = 1024: ceil(sqrt(41))
    small, large = _dnc(slots=64), _dnc(slots=1024)
    assert small.checkpoint_interval(16, 41, torch.float32) is None
    assert large.checkpoint_interval(16, 41, torch.float32) == 7
    assert large.checkpoint_interval(1, 41, torch.float32) is None  # one sequence's links fit
    assert saved_bytes_per_step(large.memory, 16, torch.float32) >= 16 * 1024 * 1024 * 4
    assert _dnc(slots=1024, checkpoint_every=None).checkpoint_interval(16, 41, torch.float32) is None
    assert _dnc(slots=64, checkpoint_every=3).checkpoint_interval(16, 41, torch.float32) == 3


def test_auto_checkpointing_gives_the_same_gradients(monkeypatch):
    monkeypatch.setattr(cell_module, "AUTO_CHECKPOINT_BYTES", 1)  # checkpoint even this tiny memory
    torch.manual_seed(0)
    auto, plain = _dnc().double().train(), _dnc(checkpoint_every=None).double().train()
    plain.load_state_dict(auto.state_dict())
    assert auto.checkpoint_interval(B, T, torch.float64) == 3  # ceil(sqrt(6))
    x = torch.randn(B, T, I, dtype=torch.float64)
    for cell in (auto, plain):
        cell(x).logits.pow(2).sum().backward()
    for (name, a), (_, b) in zip(auto.named_parameters(), plain.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_auto_never_checkpoints_a_memory_that_cannot_recompute():
    class InPlaceMemory(MatrixMemory):
        recomputable = False

        def saved_bytes_per_step(self, batch_size, dtype):
            return 2**40

    cell = MemoryCell(LSTMController(3), InPlaceMemory(3, 2), [ReadHead(ContentAddressing())])
    cell.bind(I, O)
    assert cell.checkpoint_interval(B, T, torch.float32) is None


def test_the_dense_dnc_asks_for_a_compile_only_where_it_paid():
    assert DNCMemory(slots=64).compile_pays and not DNCMemory(slots=256).compile_pays and not DNCMemory(slots=1024).compile_pays


def test_torchs_own_tmp_default_does_not_count_as_the_users_choice(monkeypatch, tmp_path):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.delenv("MANNKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what importing torch._inductor.config writes
    assert compile_cache_dir() == tmp_path / "mannkit" / "torchinductor"
    _dnc()  # a cell that may compile points the cache at the user's cache when it is built
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mannkit" / "torchinductor")


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")
@pytest.mark.filterwarnings("ignore::UserWarning:torch")
def test_a_compiled_large_dnc_runs_its_link_update_eagerly_and_matches(monkeypatch):
    made = _fast_compile(monkeypatch)
    slots = DNCMemory.COMPILE_LINK_UP_TO_SLOTS + 2
    compiled, eager = _dnc(slots=slots, compile=True).train(), _dnc(slots=slots, compile=False).train()
    eager.load_state_dict(compiled.state_dict())
    x = torch.randn(B, T, I)
    got, want = compiled(x).logits, eager(x).logits
    assert made
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    weights = torch.randn_like(got)
    (got * weights).sum().backward()
    (want * weights).sum().backward()
    for (name, a), (_, b) in zip(compiled.named_parameters(), eager.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")
@pytest.mark.filterwarnings("ignore::UserWarning:torch")
def test_the_recomputation_of_a_checkpointed_segment_runs_as_its_forward_did(monkeypatch):
    """compile: auto turning on between a forward and its backward must not change how the segments recompute.

    Found by ``mannkit fit --config configs/dnc/babi_small.yaml``: the eager budget ran out in the forward
    that checkpointed the long bAbI streams; the backward recomputed with the compiled step, whose early
    stop (torch's ``_StopRecomputationError``, control flow, not a failure) was taken for a failed compile;
    the eager retry then crashed the run with ``Unexpected state: target_frame.early_stop is set``.
    """
    made = _fast_compile(monkeypatch)
    monkeypatch.setattr(cell_module, "AUTO_CHECKPOINT_BYTES", 1)  # checkpoint even this tiny memory
    monkeypatch.setattr(cell_module, "AUTO_COMPILE_AFTER_S", 1e-12)  # the first forward uses up the budget
    torch.manual_seed(0)
    cell, plain = _dnc().train(), _dnc(compile=False, checkpoint_every=None).train()
    plain.load_state_dict(cell.state_dict())
    x = torch.randn(B, T, I)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):  # eager forward, then a compiled one; both recomputed in their backward
            cell.zero_grad()
            cell(x).logits.pow(2).sum().backward()
    assert not [w for w in caught if "compiling the MemoryCell step failed" in str(w.message)]
    assert len(made) == 1 and not cell._compile_failed
    plain(x).logits.pow(2).sum().backward()
    for (name, a), (_, b) in zip(cell.named_parameters(), plain.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)
