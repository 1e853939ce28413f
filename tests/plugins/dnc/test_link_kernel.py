"""The C++ link step (plugins/mannkit_dnc/link_kernel.py, fused_link._TemporalStepKernel) against the PyTorch one.

The kernel's row loops run in 32-byte vectors with a scalar tail and skip the diagonal column, so
the sizes here are chosen to hit every path: N below one vector (7), not a multiple of the vector
width (19, 37), and a multiple of it (32); R from 0 to the unrolled maximum (8) and one past it
(the PyTorch form then). Batch 3, float64 for gradcheck, float32 against the PyTorch form too.
"""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from mannkit_dnc import fused_link, link_kernel
from mannkit_dnc.fused import temporal_step, temporal_step_reference

B = 3
F64 = torch.float64

pytestmark = pytest.mark.skipif(link_kernel.ops() is None, reason="the C++ link kernel could not be built here")


def _inputs(N: int, R: int, dtype: torch.dtype = F64, seed: int = 0, grad: bool = True) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    link = torch.rand(B, N, N, generator=g, dtype=dtype) / N  # a non-zero diagonal, which L_t ignores
    write = 0.8 * torch.softmax(2 * torch.randn(B, N, generator=g, dtype=dtype), -1)
    precedence = 0.9 * torch.softmax(2 * torch.randn(B, N, generator=g, dtype=dtype), -1)
    read = torch.softmax(2 * torch.randn(B, R, N, generator=g, dtype=dtype), -1)
    return tuple(t.requires_grad_(grad) for t in (link, write, precedence, read))


def _grads(function: type[torch.autograd.Function], inputs: tuple[torch.Tensor, ...], seed: int = 1) -> tuple:
    outputs = function.apply(*inputs)
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(o.shape, generator=g, dtype=o.dtype) for o in outputs]
    return outputs, torch.autograd.grad(outputs, inputs, weights, allow_unused=True)


def test_the_kernel_is_what_the_dnc_runs_on_cpu():
    link, write, precedence, read = _inputs(19, 4)
    assert fused_link._temporal_function(link, write, precedence, read) is fused_link._TemporalStepKernel
    many_heads = _inputs(19, link_kernel.MAX_HEADS + 1)
    assert fused_link._temporal_function(*many_heads) is fused_link._TemporalStep
    assert fused_link._temporal_function(*(t.half() for t in (link, write, precedence, read))) is fused_link._TemporalStep


@pytest.mark.parametrize("N", [7, 19, 32, 37])
@pytest.mark.parametrize("R", [0, 1, 4, 8])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_kernel_outputs_and_gradients_equal_the_pytorch_form(N, R, dtype):
    inputs = _inputs(N, R, dtype)
    kernel_out, kernel_grads = _grads(fused_link._TemporalStepKernel, inputs)
    torch_out, torch_grads = _grads(fused_link._TemporalStep, inputs)
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {}
    torch.testing.assert_close(kernel_out, torch_out, **tolerance)
    for got, expected in zip(kernel_grads, torch_grads):
        torch.testing.assert_close(got, expected, **tolerance)


@pytest.mark.parametrize("N,R", [(7, 2), (19, 3)])
def test_kernel_gradcheck_and_gradgradcheck(N, R):
    inputs = _inputs(N, R)
    assert gradcheck(fused_link._TemporalStepKernel.apply, inputs)
    assert gradgradcheck(fused_link._TemporalStepKernel.apply, inputs, fast_mode=True)  # through the reference form


def test_kernel_each_input_alone_and_each_output_alone():
    for i in range(4):
        inputs = tuple(t.detach().requires_grad_(j == i) for j, t in enumerate(_inputs(19, 3)))
        assert gradcheck(fused_link._TemporalStepKernel.apply, inputs, fast_mode=True), i
    for k in range(4):  # only the link, only p_t, only f, only b used downstream
        assert gradcheck(lambda *x, k=k: fused_link._TemporalStepKernel.apply(*x)[k], _inputs(19, 3), fast_mode=True), k


def test_kernel_from_the_initial_expanded_zero_link():
    link = torch.zeros((), dtype=F64).expand(B, 19, 19)
    _, write, precedence, read = _inputs(19, 4)
    out = fused_link._TemporalStepKernel.apply(link, write, precedence, read)
    torch.testing.assert_close(out, temporal_step_reference(torch.zeros(B, 19, 19, dtype=F64), write, precedence, read))
    assert gradcheck(lambda w, p, r: fused_link._TemporalStepKernel.apply(link, w, p, r), (write, precedence, read))


def test_kernel_on_non_contiguous_inputs_and_gradients():
    link, write, precedence, read = _inputs(19, 4)
    read_t = read.detach().mT.contiguous().mT.requires_grad_()  # [B, R, N] stored as [B, N, R]
    link_t = link.detach().mT.contiguous().mT.requires_grad_()
    assert not read_t.is_contiguous() and not link_t.is_contiguous()
    expected = temporal_step_reference(link_t, write, precedence, read_t)
    got = fused_link._TemporalStepKernel.apply(link_t, write, precedence, read_t)
    torch.testing.assert_close(got, expected)
    assert gradcheck(lambda l, r: fused_link._TemporalStepKernel.apply(l, write, precedence, r)[0].mT.sum(-1), (link_t, read_t))


def test_a_chain_of_kernel_steps_matches_the_pytorch_chain():
    """Five steps from the zero link, as a DNC runs them: dL_{t-1} is written over the next step's own buffer."""
    N, R = 37, 4
    _, write, precedence, read = _inputs(N, R, torch.float32)
    results = []
    for function in (fused_link._TemporalStepKernel, fused_link._TemporalStep):
        leaves = [t.detach().clone().requires_grad_() for t in (write, precedence, read)]
        link, p, loss = torch.zeros(()).expand(B, N, N), leaves[1], 0
        for t in range(5):
            link, p, f, b = function.apply(link, leaves[0].roll(t, -1), p, leaves[2].roll(2 * t, -1))
            loss = loss + (f * f.roll(1, -1)).sum() + b.pow(2).sum()
        loss = loss + link.pow(2).sum()
        results.append((loss.detach(), *torch.autograd.grad(loss, leaves)))
    for got, expected in zip(*results):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_temporal_step_falls_back_to_pytorch_when_the_kernel_is_unavailable(monkeypatch):
    monkeypatch.setitem(link_kernel._state, "module", None)
    inputs = _inputs(19, 4)
    assert fused_link._temporal_function(*inputs) is fused_link._TemporalStep
    torch.testing.assert_close(temporal_step(*inputs), temporal_step_reference(*inputs))


def test_a_failed_build_warns_once_and_gives_none(monkeypatch):
    monkeypatch.setattr(link_kernel, "_state", {})

    def broken() -> None:
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(link_kernel, "_build", broken)
    with pytest.warns(RuntimeWarning, match="could not be built or loaded .*no compiler here.*PyTorch link update"):
        assert link_kernel.ops() is None
    assert link_kernel.ops() is None  # cached: no second attempt, no second warning


def test_the_switch_turns_the_kernel_off(monkeypatch):
    monkeypatch.setattr(link_kernel, "_state", {})
    monkeypatch.setenv("MANNKIT_DNC_LINK_KERNEL", "0")
    assert link_kernel.ops() is None


def test_the_build_is_cached_under_the_mannkit_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MANNKIT_CACHE_DIR", str(tmp_path))
    assert link_kernel.build_directory() == tmp_path / "torch_extensions"
    monkeypatch.setenv("MANNKIT_CACHE_DIR", "none")
    assert link_kernel.build_directory() is None


# -- keeping freed memory (buffers.keep_freed_memory) ------------------------------------------


def test_malloc_tuning_is_skipped_when_switched_off_or_set_by_the_user(monkeypatch):
    from mannkit_dnc import buffers

    for name, value in [("MANNKIT_MALLOC_TUNING", "0"), ("MALLOC_TRIM_THRESHOLD_", "1000000"), ("MALLOC_MMAP_THRESHOLD_", "65536")]:
        with monkeypatch.context() as m:
            m.setattr(buffers, "_malloc_tuned", None)
            m.setenv(name, value)
            assert buffers.keep_freed_memory() is False, name
            m.delenv(name)
            assert buffers.keep_freed_memory() is False, "decided once per process"


def test_a_dnc_state_on_cpu_asks_for_the_malloc_setting(monkeypatch):
    from mannkit_dnc import DNCMemory, memory

    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(1) or True)
    DNCMemory(slots=7, word_size=5).initial_state(3, torch.device("cpu"), torch.float32)
    assert calls == [1]
