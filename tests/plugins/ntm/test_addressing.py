"""NTM location addressing (plugins/mannkit_ntm/addressing.py): equations, invariants, extremes, errors.

Sizes are distinct (B=3, h=2, N=7, W=5) so that a transposed axis breaks a test.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.nn import ContentAddressing, MatrixMemory, MatrixState, ReadHead, WriteHead, content_weights
from mannkit_ntm import NTMAddressing, circular_shift, interpolate, sharpen, shift_index

B, H, N, W = 3, 2, 7, 5
F64 = torch.float64
CPU = torch.device("cpu")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int, grad: bool = False, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype).requires_grad_(grad)


def _weighting(*shape: int, seed: int, grad: bool = False, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.softmax(2 * torch.randn(*shape, generator=_gen(seed), dtype=dtype), -1).requires_grad_(grad)


def _one_hot(slots: torch.Tensor, size: int = N) -> torch.Tensor:
    return F.one_hot(slots, size).to(F64)


def _raw_params(k: int, *, key=None, beta=0.0, gate=0.0, shift=None, gamma=0.0, seed=0) -> torch.Tensor:
    """NTM head parameters ``[B, h, W + 2k + 4]`` laid out as k | beta | g | s | gamma (raw, unactivated)."""
    S = 2 * k + 1
    key = _randn(B, H, W, seed=seed) if key is None else key
    shift = torch.zeros(B, H, S, dtype=F64) if shift is None else shift
    scalar = lambda v: torch.full((B, H, 1), float(v), dtype=F64)  # noqa: E731
    return torch.cat([key, scalar(beta), scalar(gate), shift, scalar(gamma)], dim=-1)


def _shift_on(offset: int, k: int = 1, size: float = 1e4) -> torch.Tensor:
    """Raw shift logits putting all the mass on one offset (-k..k)."""
    raw = torch.zeros(B, H, 2 * k + 1, dtype=F64)
    raw[..., offset + k] = size
    return raw


# -- gradients (float64 gradcheck) ----------------------------------------------------------


def test_interpolate_gradcheck():
    gate = torch.rand(B, H, generator=_gen(3), dtype=F64).requires_grad_()
    assert gradcheck(interpolate, (_weighting(B, H, N, seed=1, grad=True), _weighting(B, H, N, seed=2, grad=True), gate))


@pytest.mark.parametrize("k", [0, 1, 3])
def test_circular_shift_gradcheck(k):
    shift = _weighting(B, H, 2 * k + 1, seed=2, grad=True)
    assert gradcheck(circular_shift, (_weighting(B, H, N, seed=1, grad=True), shift))


def test_sharpen_gradcheck():
    gamma = (1 + 3 * torch.rand(B, H, generator=_gen(2), dtype=F64)).requires_grad_()
    assert gradcheck(sharpen, (_weighting(B, H, N, seed=1, grad=True), gamma))


@pytest.mark.parametrize("k", [0, 1, 2])
def test_ntm_addressing_forward_gradcheck(k):
    addressing = NTMAddressing(shift_range=k)
    params = _randn(B, H, W + 2 * k + 4, seed=1, grad=True)
    memory = _randn(B, N, W, seed=2, grad=True)
    previous = _weighting(B, H, N, seed=3, grad=True)

    def step(params, memory, previous):
        return addressing(params, MatrixState(memory), previous)[0]

    assert gradcheck(step, (params, memory, previous))


# -- invariants ------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 3])
def test_every_stage_keeps_a_weighting(k):
    addressing = NTMAddressing(shift_range=k)
    for seed in range(25):
        memory = MatrixState(_randn(B, N, W, seed=seed))
        params = 3 * _randn(B, H, W + 2 * k + 4, seed=seed + 1000)
        previous = _weighting(B, H, N, seed=seed + 2000)
        gate = torch.rand(B, H, generator=_gen(seed), dtype=F64)
        stages = [
            interpolate(_weighting(B, H, N, seed=seed + 3000), previous, gate),
            circular_shift(previous, _weighting(B, H, 2 * k + 1, seed=seed + 4000)),
            sharpen(previous, 1 + 10 * torch.rand(B, H, generator=_gen(seed + 5000), dtype=F64)),
            addressing(params, memory, previous)[0],
        ]
        for weights in stages:
            assert weights.shape == (B, H, N)
            assert (weights >= 0).all()
            torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, dtype=F64))


def test_interpolate_with_gate_one_gives_content_and_zero_gives_previous():
    content, previous = _weighting(B, H, N, seed=1), _weighting(B, H, N, seed=2)
    assert torch.equal(interpolate(content, previous, torch.ones(B, H, dtype=F64)), content)
    assert torch.equal(interpolate(content, previous, torch.zeros(B, H, dtype=F64)), previous)


def test_interpolate_gate_is_per_head():
    content, previous = _weighting(B, H, N, seed=1), _weighting(B, H, N, seed=2)
    gate = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.25]], dtype=F64)  # [B, h]
    out = interpolate(content, previous, gate)
    for b in range(B):
        for h in range(H):
            torch.testing.assert_close(out[b, h], gate[b, h] * content[b, h] + (1 - gate[b, h]) * previous[b, h])


def test_circular_shift_wraps_round():
    first, last = _one_hot(torch.full((B, H), 0)), _one_hot(torch.full((B, H), N - 1))  # [B, h, N]
    minus_one, plus_one = _one_hot(torch.full((B, H), 0), 3), _one_hot(torch.full((B, H), 2), 3)  # offsets -1, 0, +1
    torch.testing.assert_close(circular_shift(last, plus_one), first)  # +1 from slot N-1 lands on slot 0
    torch.testing.assert_close(circular_shift(first, minus_one), last)  # -1 from slot 0 lands on slot N-1


@pytest.mark.parametrize("k", [0, 1, 3])
def test_circular_shift_with_the_identity_shift_returns_the_input(k):
    weights = _weighting(B, H, N, seed=1)
    identity = _one_hot(torch.full((B, H), k), 2 * k + 1)  # all mass on offset 0
    torch.testing.assert_close(circular_shift(weights, identity), weights, rtol=0, atol=0)


def _paper_shift(weights, shift):
    """NTM eq. 8 written out: w~(i) = sum_j w(j) s(i - j mod N), offsets -k..k, one example at a time."""
    n, k = weights.shape[-1], shift.shape[-1] // 2
    out = torch.zeros_like(weights)
    for b in range(weights.shape[0]):
        for h in range(weights.shape[1]):
            for i in range(n):
                for j in range(n):
                    for offset in range(-k, k + 1):
                        if (i - j - offset) % n == 0:
                            out[b, h, i] += weights[b, h, j] * shift[b, h, offset + k]
    return out


@pytest.mark.parametrize("k", [1, 3])
def test_circular_shift_matches_the_paper_equation(k):
    weights, shift = _weighting(B, H, N, seed=1), _weighting(B, H, 2 * k + 1, seed=2)
    torch.testing.assert_close(circular_shift(weights, shift), _paper_shift(weights, shift))


def test_circular_shift_by_hand_on_four_slots():
    weights = torch.tensor([[[0.1, 0.2, 0.3, 0.4]]], dtype=F64)  # [B=1, h=1, N=4]
    shift = torch.tensor([[[0.5, 0.5, 0.0]]], dtype=F64)  # offsets -1, 0, +1
    # w~(i) = 0.5 w(i + 1) + 0.5 w(i): [0.5(0.2+0.1), 0.5(0.3+0.2), 0.5(0.4+0.3), 0.5(0.1+0.4)]
    expected = torch.tensor([[[0.15, 0.25, 0.35, 0.25]]], dtype=F64)
    torch.testing.assert_close(circular_shift(weights, shift), expected)


def test_shift_index_rows_are_offsets_minus_k_to_k():
    assert torch.equal(shift_index(5, 3), torch.tensor([[1, 2, 3, 4, 0], [0, 1, 2, 3, 4], [4, 0, 1, 2, 3]]))


def test_circular_shift_rejects_an_even_number_of_offsets():
    with pytest.raises(ShapeError, match=r"shift has shape \[3, 2, 4\] but its last axis must be odd"):
        circular_shift(_weighting(B, H, N, seed=1), _weighting(B, H, 4, seed=2))


def test_sharpen_by_hand():
    out = sharpen(torch.tensor([[[0.2, 0.3, 0.5]]], dtype=F64), torch.tensor([[2.0]], dtype=F64))
    torch.testing.assert_close(out, torch.tensor([[[0.04, 0.09, 0.25]]], dtype=F64) / 0.38)


def test_sharpen_with_gamma_one_normalises():
    weights = torch.rand(B, H, N, generator=_gen(1), dtype=F64) + 0.01  # positive, not normalised
    torch.testing.assert_close(sharpen(weights, torch.ones(B, H, dtype=F64)), weights / weights.sum(-1, keepdim=True))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_sharpen_with_huge_gamma_is_the_one_hot_argmax(dtype):
    weights = _weighting(B, H, N, seed=1, dtype=dtype, grad=True)
    weights.data[0, 0] = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], dtype=dtype)  # zeros too
    out = sharpen(weights, torch.full((B, H), 1e6, dtype=dtype))
    torch.testing.assert_close(out, F.one_hot(weights.argmax(-1), N).to(dtype))
    (out * torch.randn(B, H, N, generator=_gen(2), dtype=dtype)).sum().backward()
    assert torch.isfinite(weights.grad).all()


# -- the composed addressing -----------------------------------------------------------------


def test_param_size_and_initial_state():
    memory = MatrixMemory(slots=N, word_size=W)
    for k in (0, 1, 3):
        assert NTMAddressing(shift_range=k).param_size(memory) == W + 1 + 1 + (2 * k + 1) + 1
    state = NTMAddressing().initial_state(B, H, memory, CPU, F64)
    assert state.dtype == F64
    assert torch.equal(state, _one_hot(torch.zeros(B, H, dtype=torch.long)))


def test_gate_one_identity_shift_gamma_one_gives_the_content_weights():
    memory = _randn(B, N, W, seed=1)
    params = _raw_params(1, beta=2.0, gate=1e4, shift=_shift_on(0), gamma=-1e4, seed=2)
    weights, state = NTMAddressing()(params, MatrixState(memory), _weighting(B, H, N, seed=3))
    expected = content_weights(params[..., :W], F.softplus(torch.full((B, H), 2.0, dtype=F64)), memory)
    torch.testing.assert_close(weights, expected)
    assert state is weights


@pytest.mark.parametrize("offset", [-2, -1, 0, 1, 2])
def test_gate_zero_shifts_the_previous_weighting(offset):
    previous = _weighting(B, H, N, seed=3)
    params = _raw_params(2, gate=-1e4, shift=_shift_on(offset, k=2), gamma=-1e4, seed=2)
    weights, _ = NTMAddressing(shift_range=2)(params, MatrixState(_randn(B, N, W, seed=1)), previous)
    torch.testing.assert_close(weights, torch.roll(previous, offset, dims=-1))


def test_sharpening_parameter_is_the_last_one():
    previous = _weighting(B, H, N, seed=3)
    params = _raw_params(1, gate=-1e4, shift=_shift_on(0), gamma=2.0, seed=2)
    weights, _ = NTMAddressing()(params, MatrixState(_randn(B, N, W, seed=1)), previous)
    gamma = 1 + F.softplus(torch.tensor(2.0, dtype=F64))
    torch.testing.assert_close(weights, previous**gamma / (previous**gamma).sum(-1, keepdim=True))


def test_forward_is_pure_and_deterministic():
    addressing = NTMAddressing()
    before = dict(vars(addressing))
    buffers = list(addressing.buffers())
    args = (_randn(B, H, W + 6, seed=1), MatrixState(_randn(B, N, W, seed=2)), _weighting(B, H, N, seed=3))
    first, second = addressing(*args)[0], addressing(*args)[0]
    assert torch.equal(first, second)
    assert dict(vars(addressing)) == before and list(addressing.buffers()) == buffers


def test_ntm_addressing_drives_the_core_heads():
    torch.manual_seed(0)
    memory = MatrixMemory(slots=N, word_size=W, init="random")
    write, read = WriteHead(NTMAddressing(shift_range=1)), ReadHead(NTMAddressing(shift_range=2), count=H)
    memory_state = memory.initial_state(B, CPU, F64)
    write_out = write(
        _randn(B, 1, write.param_size(memory), seed=1), memory, memory_state, write.initial_state(B, memory, CPU, F64), True
    )
    read_out = read(
        _randn(B, H, read.param_size(memory), seed=2), memory, write_out.memory_state, read.initial_state(B, memory, CPU, F64), True
    )
    assert write_out.state.shape == (B, 1, N) and read_out.state.shape == (B, H, N)
    assert read_out.reads.shape == (B, H, W)
    torch.testing.assert_close(read_out.reads, torch.bmm(read_out.trace["read_weights"], write_out.memory_state.memory))


# -- extremes: no NaN or inf in outputs or gradients ----------------------------------------


def _extreme_case(name: str):
    k = 1
    memory = _randn(B, N, W, seed=1, dtype=torch.float32)
    params = _randn(B, H, W + 2 * k + 4, seed=2, dtype=torch.float32)
    previous = _weighting(B, H, N, seed=3, dtype=torch.float32)
    if name in ("zero memory", "everything at once"):
        memory = torch.zeros_like(memory)
    if name in ("zero keys", "everything at once"):
        params[..., :W] = 0
    if name == "huge key strength":
        params[..., W] = 1e4
    if name == "very negative key strength":
        params[..., W] = -1e4
    if name in ("huge gamma", "everything at once"):
        params[..., -1] = 1e4
    if name in ("one-hot previous", "everything at once"):
        previous = NTMAddressing().initial_state(B, H, MatrixMemory(slots=N, word_size=W), CPU, torch.float32)
    if name == "saturated gate and shift":
        params[..., W + 1] = -1e4  # g = 0: only the (one-hot) previous weighting
        params[..., W + 2 : W + 5] = torch.tensor([0.0, 1e4, -1e4])
        previous = F.one_hot(torch.full((B, H), 4), N).float()
    return memory, params, previous


EXTREMES = [
    "zero memory",
    "zero keys",
    "huge key strength",
    "very negative key strength",
    "huge gamma",
    "one-hot previous",
    "saturated gate and shift",
    "everything at once",
]


@pytest.mark.parametrize("name", EXTREMES)
def test_no_nan_or_inf_at_extremes(name):
    memory, params, previous = (t.requires_grad_() for t in _extreme_case(name))
    weights, _ = NTMAddressing(shift_range=1)(params, MatrixState(memory), previous)
    assert torch.isfinite(weights).all()
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H))
    (weights * torch.randn(B, H, N, generator=_gen(4))).sum().backward()
    for tensor in (params, memory, previous):
        assert torch.isfinite(tensor.grad).all(), name


# -- configuration errors --------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_shift_range_must_be_a_non_negative_integer(bad):
    with pytest.raises(ConfigError, match=rf"NTMAddressing: shift_range must be a non-negative integer, got {bad!r}; set it to 0"):
        NTMAddressing(shift_range=bad)


TOO_LARGE = r"NTMAddressing: shift_range=4 needs 9 slots for its shifts but the memory has N=7; set shift_range to at most 3"


def test_shift_range_too_large_for_the_memory_fails_at_bind():
    memory = MatrixMemory(slots=N, word_size=W)
    addressing = NTMAddressing(shift_range=4)
    with pytest.raises(ConfigError, match=TOO_LARGE):
        addressing.param_size(memory)
    with pytest.raises(ConfigError, match=TOO_LARGE):
        addressing.initial_state(B, H, memory, CPU, F64)
    with pytest.raises(ConfigError, match=TOO_LARGE):
        addressing(_randn(B, H, W + 12, seed=1), MatrixState(_randn(B, N, W, seed=2)), _weighting(B, H, N, seed=3))
    assert NTMAddressing(shift_range=3).param_size(memory) == W + 10  # S = N is allowed


def test_memory_without_slots_is_refused():
    class NoSlots(ContentAddressing):  # anything without a ``slots`` attribute
        word_size = W

    with pytest.raises(ConfigError, match=r"NTMAddressing needs a memory with a fixed number of slots .* but the memory is NoSlots"):
        NTMAddressing().param_size(NoSlots())


def test_wrong_param_or_state_shapes_say_both_shapes():
    addressing, memory = NTMAddressing(), MatrixState(_randn(B, N, W, seed=2))
    with pytest.raises(ShapeError, match=r"NTMAddressing params has shape \[3, 2, 12\] but \[3, h, 11\] was expected; each head needs W \+ 2 \* shift_range \+ 4 numbers\."):
        addressing(_randn(B, H, W + 7, seed=1), memory, _weighting(B, H, N, seed=3))
    with pytest.raises(ShapeError, match=r"NTMAddressing state has shape \[3, 2, 6\] but \[3, 2, 7\] was expected; it is the previous weighting \[B, h, N\]\."):
        addressing(_randn(B, H, W + 6, seed=1), memory, _weighting(B, H, N - 1, seed=3))


# -- plugin registration ---------------------------------------------------------------------


def test_registered_through_the_entry_point():
    from mannkit.core.registry import load_plugins, registry

    load_plugins()
    assert registry.get("NTMAddressing") is NTMAddressing
    assert registry.get("NTMAddressing", kind="addressing") is NTMAddressing
    info = registry.plugins["ntm"]
    assert info.error is None and info.module == "mannkit_ntm"
    assert "addressing:NTMAddressing" in info.registered
    assert info.distribution == "mannkit"
    entry = next(e for e in registry.entries("addressing") if e.name == "NTMAddressing")
    assert (entry.plugin, entry.distribution) == ("ntm", "mannkit")


def test_plugin_module_declares_its_api():
    import mannkit_ntm

    assert mannkit_ntm.MANNKIT_API == 1
    assert set(mannkit_ntm.__all__) >= {"NTMAddressing", "interpolate", "circular_shift", "sharpen"}


def test_config_round_trip():
    from mannkit.core.config import instantiate

    config = NTMAddressing(shift_range=2).to_config()
    assert config == {"class_path": "mannkit_ntm.addressing.NTMAddressing", "init_args": {"shift_range": 2}}
    assert instantiate({"class_path": "NTMAddressing", "init_args": {"shift_range": 2}}).shift_range == 2


# -- the fused autograd function behind NTMAddressing.forward -------------------------------


@pytest.mark.parametrize("heads", [1, H])
def test_ntm_addressing_gradgradcheck(heads):
    """Second order through the hand-written backward (it rebuilds its intermediates differentiably)."""
    from torch.autograd import gradgradcheck

    addressing = NTMAddressing(shift_range=1)
    params = _randn(B, heads, W + 6, seed=1, grad=True)
    memory = _randn(B, N, W, seed=2, grad=True)
    previous = _weighting(B, heads, N, seed=3, grad=True)

    def step(params, memory, previous):
        return addressing(params, MatrixState(memory), previous)[0]

    assert gradcheck(step, (params, memory, previous))
    assert gradgradcheck(step, (params, memory, previous))


@pytest.mark.parametrize("needs", ["params", "memory", "previous"])
def test_ntm_addressing_gradient_of_one_input_alone(needs):
    params = _randn(B, 1, W + 6, seed=1, grad=needs == "params")
    memory = _randn(B, N, W, seed=2, grad=needs == "memory")
    previous = _weighting(B, 1, N, seed=3, grad=needs == "previous")
    assert gradcheck(lambda p, m, s: NTMAddressing()(p, MatrixState(m), s)[0], (params, memory, previous))


def test_slots_not_in_use_get_no_weight():
    """A memory state with a slot mask (a short story in a longer memory): the shift's spill is removed."""
    from typing import NamedTuple

    class MaskedState(NamedTuple):
        memory: torch.Tensor
        mask: torch.Tensor

    torch.manual_seed(0)
    addressing = NTMAddressing(shift_range=1)
    memory = torch.randn(2, 5, 3)
    mask = torch.tensor([[True, True, True, False, False], [True, False, False, False, False]])
    state = torch.full((2, 1, 5), 0.2)
    weights, _ = addressing(torch.randn(2, 1, 3 + 3 + 3), MaskedState(memory, mask), state)
    assert (weights[0, :, 3:] == 0).all() and (weights[1, :, 1:] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 1))
