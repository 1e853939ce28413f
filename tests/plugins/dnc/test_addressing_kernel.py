"""The C++ write and read addressing (plugins/mannkit_dnc/addressing_kernel.py) against the PyTorch forms.

Each C++ node must give the outputs and gradients of :class:`mannkit_dnc.fused._WriteAddressing` /
``_ReadAddressing`` (themselves checked against the composed mechanisms in test_fused.py), pass
float64 gradcheck, fall back to the PyTorch form where it does not apply, and differentiate twice
through the composition. Sizes: N below and above typical vector widths, W odd, R = 0 (no read heads).
"""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from mannkit_dnc import addressing_kernel, fused

B = 3
F64 = torch.float64

pytestmark = pytest.mark.skipif(addressing_kernel.ops() is None, reason="the C++ addressing kernel could not be built here")


def _write_inputs(N: int, W: int, R: int, dtype: torch.dtype = F64, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    memory = torch.randn(B, N, W, generator=g, dtype=dtype)
    usage = torch.rand(B, N, generator=g, dtype=dtype)
    usage[0, :2] = usage[0, 2]  # ties: the stable sort must order them by slot, as torch.sort(stable=True)
    previous_write = 0.9 * torch.softmax(2 * torch.randn(B, N, generator=g, dtype=dtype), -1)
    previous_read = torch.softmax(2 * torch.randn(B, R, N, generator=g, dtype=dtype), -1)
    key = torch.randn(B, 1, W, generator=g, dtype=dtype)
    strength = 1 + 3 * torch.rand(B, 1, generator=g, dtype=dtype)
    free_gates = torch.rand(B, R, generator=g, dtype=dtype)
    allocation_gate = torch.rand(B, 1, generator=g, dtype=dtype)
    write_gate = torch.rand(B, 1, generator=g, dtype=dtype)
    tensors = (memory, usage, previous_write, previous_read, key, strength, free_gates, allocation_gate, write_gate)
    return tuple(t.requires_grad_() for t in tensors)


def _read_inputs(N: int, W: int, R: int, dtype: torch.dtype = F64, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    memory = torch.randn(B, N, W, generator=g, dtype=dtype)
    keys = torch.randn(B, R, W, generator=g, dtype=dtype)
    strengths = 1 + 3 * torch.rand(B, R, generator=g, dtype=dtype)
    modes = torch.softmax(torch.randn(B, R, 3, generator=g, dtype=dtype), -1)
    forward = torch.softmax(torch.randn(B, R, N, generator=g, dtype=dtype), -1)
    backward = torch.softmax(torch.randn(B, R, N, generator=g, dtype=dtype), -1)
    return tuple(t.requires_grad_() for t in (memory, keys, strengths, modes, forward, backward))


def _outputs_and_grads(function, inputs, extra=(), seed: int = 1, use=None):  # noqa: ANN001, ANN202
    outputs = getattr(function, "apply", function)(*inputs, *extra)
    g = torch.Generator().manual_seed(seed)
    used = [o for i, o in enumerate(outputs) if o.requires_grad and (use is None or i in use)]
    weights = [torch.randn(o.shape, generator=g, dtype=o.dtype) for o in used]
    return outputs, torch.autograd.grad(used, inputs, weights, allow_unused=True)


def _assert_same(a, b, dtype):  # noqa: ANN001, ANN202
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {}
    for x, y in zip(a, b):
        if x is None or y is None:
            other = x if y is None else y  # one form returns None where the other returns zeros (or an empty [B, 0])
            assert other is None or other.numel() == 0 or other.abs().max() == 0
        else:
            torch.testing.assert_close(x, y, **tolerance)


def test_the_kernels_are_what_the_dnc_runs_on_cpu():
    write = _write_inputs(9, 5, 2)
    assert fused._kernel_applies(*write)
    assert not fused._kernel_applies(*(t.half() for t in write))
    assert not fused._kernel_applies(write[0], write[1].double().float())  # mixed dtypes -> the PyTorch form


@pytest.mark.parametrize(("N", "W", "R"), [(5, 3, 1), (19, 7, 4), (40, 16, 0), (33, 32, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("use", [None, (0,), (1,)])  # both outputs, usage only, weights only
def test_write_kernel_equals_the_pytorch_form(N, W, R, dtype, use):
    inputs = tuple(t.detach().to(dtype).requires_grad_() for t in _write_inputs(N, W, R))
    got, got_grads = _outputs_and_grads(fused._WriteAddressingKernel, inputs, (0.005,), use=use)
    expected, expected_grads = _outputs_and_grads(fused._WriteAddressing, inputs, (0.005,), use=use)
    _assert_same(got, expected, dtype)
    _assert_same(got_grads, expected_grads, dtype)


@pytest.mark.parametrize(("N", "W", "R"), [(5, 3, 1), (19, 7, 4), (33, 32, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("use", [None, (0,), (1,)])  # reads and weights, reads only, weights only
def test_read_kernel_equals_the_pytorch_form(N, W, R, dtype, use):
    inputs = tuple(t.detach().to(dtype).requires_grad_() for t in _read_inputs(N, W, R))
    got, got_grads = _outputs_and_grads(fused._ReadAddressingKernel, inputs, use=use)
    expected, expected_grads = _outputs_and_grads(fused._ReadAddressing, inputs, use=use)
    _assert_same(got, expected, dtype)
    _assert_same(got_grads, expected_grads, dtype)


def test_write_kernel_gradcheck_and_gradgradcheck():
    inputs = _write_inputs(6, 4, 2)
    function = lambda *xs: fused._WriteAddressingKernel.apply(*xs, 0.01)[:2]  # noqa: E731  (a_t carries no gradient)
    assert gradcheck(function, inputs)
    assert gradgradcheck(function, inputs)


def test_read_kernel_gradcheck_and_gradgradcheck():
    inputs = _read_inputs(6, 4, 3)
    assert gradcheck(fused._ReadAddressingKernel.apply, inputs)
    assert gradgradcheck(fused._ReadAddressingKernel.apply, inputs)


def test_write_kernel_sorts_ties_by_slot_as_torch_does():
    inputs = [t.detach() for t in _write_inputs(8, 3, 1)]
    inputs[1] = torch.full((B, 8), 0.5, dtype=F64)  # every usage equal
    inputs[2] = torch.zeros(B, 8, dtype=F64)
    inputs[3] = torch.zeros(B, 1, 8, dtype=F64)
    allocation = fused._WriteAddressingKernel.apply(*inputs, 0.0)[2]
    # a[phi_j] = (1 - 0.5) 0.5^j with phi the slot order: halves, slot by slot
    torch.testing.assert_close(allocation, 0.5 * 0.5 ** torch.arange(8, dtype=F64).expand(B, 8))


def test_no_eps_and_no_kernel_run_the_pytorch_form(monkeypatch):
    inputs = _write_inputs(7, 4, 2)
    expected = fused.write_addressing(*inputs, 0.0)  # eps 0: the allocation's division needs eps > 0
    torch.testing.assert_close(expected, fused._WriteAddressing.apply(*inputs, 0.0))
    monkeypatch.setitem(addressing_kernel._state, "module", None)
    assert not fused._kernel_applies(*inputs)
    torch.testing.assert_close(fused.write_addressing(*inputs, 0.01), fused._WriteAddressing.apply(*inputs, 0.01))


def test_a_failed_build_warns_once_and_falls_back(monkeypatch):
    monkeypatch.delitem(addressing_kernel._state, "module")

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(addressing_kernel.link_kernel, "build_inline", broken)
    with pytest.warns(RuntimeWarning, match=r"C\+\+ addressing kernel could not be built or loaded \(RuntimeError: no compiler here\)"):
        assert addressing_kernel.ops() is None
    assert addressing_kernel.ops() is None  # cached: no second attempt, no second warning
    monkeypatch.delitem(addressing_kernel._state, "module")
    monkeypatch.setenv("MANNKIT_DNC_ADDRESSING_KERNEL", "0")
    assert addressing_kernel.ops() is None


def _erase_add_inputs(N: int, W: int, dtype: torch.dtype = F64, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    memory = torch.randn(B, N, W, generator=g, dtype=dtype)
    weights = torch.softmax(torch.randn(B, N, generator=g, dtype=dtype), -1)
    erase = torch.rand(B, W, generator=g, dtype=dtype)
    add = torch.randn(B, W, generator=g, dtype=dtype)
    return tuple(t.requires_grad_() for t in (memory, weights, erase, add))


@pytest.mark.parametrize(("N", "W"), [(5, 3), (19, 8), (33, 37)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_erase_add_kernel_equals_the_core_write(N, W, dtype):
    inputs = _erase_add_inputs(N, W, dtype)
    got, got_grads = _outputs_and_grads(lambda *xs: (fused._EraseAddKernel.apply(*xs),), inputs)  # noqa: E731
    expected, expected_grads = _outputs_and_grads(lambda *xs: fused.erase_add_reference(*xs), inputs)  # noqa: E731
    _assert_same(got, expected, dtype)
    _assert_same(got_grads, expected_grads, dtype)
    # by hand at one entry: M' = M (1 - w e) + w a
    memory, weights, erase, add = (t.detach() for t in inputs)
    by_hand = memory[1, 2, 0] * (1 - weights[1, 2] * erase[1, 0]) + weights[1, 2] * add[1, 0]
    torch.testing.assert_close(got[0][1, 2, 0], by_hand)


def test_erase_add_kernel_gradcheck_and_gradgradcheck():
    inputs = _erase_add_inputs(6, 5)
    assert gradcheck(fused._EraseAddKernel.apply, inputs)
    assert gradgradcheck(fused._EraseAddKernel.apply, inputs)


def test_erase_add_without_the_memory_gradient():
    memory, weights, erase, add = _erase_add_inputs(7, 9)
    memory = memory.detach()  # needs_input_grad[0] False: the kernel skips dM
    out = fused._EraseAddKernel.apply(memory, weights, erase, add)
    grads = torch.autograd.grad(out.sum(), (weights, erase, add))
    expected = torch.autograd.grad(fused.erase_add_reference(memory, weights, erase, add)[0].sum(), (weights, erase, add))
    _assert_same(grads, expected, F64)
