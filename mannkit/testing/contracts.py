"""The interface contracts, run on one component directly: shapes, dtypes, finiteness, batch-first states.

Shape letters: B batch, T time, I input width, O output width, N memory slots, W word size,
H controller output size, h heads of one bank, P parameters per head (the kit's
:data:`~mannkit.testing.defaults.SIZES`). Each contract runs in float32 and float64, or, with
``zero``, on an all-zero memory with all-zero parameters; a failure raises ``AssertionError``
through :func:`fail` (``"<kind> <Class> fails the <check> check: <sentence>"``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mannkit.core.interfaces import HeadOutput, Memory
from mannkit.testing.defaults import SIZES

__all__ = [
    "Where",
    "fail",
    "leaves",
    "structure",
    "growing_structure",
    "zeros_like",
    "shape_of",
    "fixed_input",
    "controller_contract",
    "memory_contract",
    "addressing_contract",
    "head_contract",
    "model_contract",
]

CPU = torch.device("cpu")
SEED = 0  # every build of a check is made under this seed (others say which seed they use)


# -- small helpers ------------------------------------------------------------------------------
def fail(label: str, check: str, message: str) -> None:
    raise AssertionError(f"{label} fails the {check} check: {message}")


def leaves(state: Any) -> list[Tensor]:
    """Every tensor in a (possibly nested) state."""
    if isinstance(state, Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for v in state.values() for t in leaves(v)]
    if isinstance(state, (tuple, list)):
        return [t for v in state for t in leaves(v)]
    return []


def structure(state: Any) -> Any:
    """The shapes of a state, in its nesting (to compare a state before and after a step)."""
    if isinstance(state, Tensor):
        return tuple(state.shape)
    if isinstance(state, dict):
        return {k: structure(v) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return tuple(structure(v) for v in state)
    return type(state).__name__


def zeros_like(state: Any) -> Any:
    """The same state with every floating tensor replaced by zeros (NamedTuples keep their type)."""
    if isinstance(state, Tensor):
        return torch.zeros_like(state) if state.is_floating_point() else state
    if isinstance(state, dict):
        return {k: zeros_like(v) for k, v in state.items()}
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(zeros_like(v) for v in state))
    if isinstance(state, (tuple, list)):
        return type(state)(zeros_like(v) for v in state)
    return state


def shape_of(t: Any) -> str:
    return f"[{', '.join(map(str, t.shape))}]" if isinstance(t, Tensor) else repr(t)


def fixed_input(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Fixed random data from a private generator (the global seed stays the build's)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(7), dtype=dtype)


# -- contracts, one per interface ---------------------------------------------------------------
@dataclass(frozen=True)
class Where:
    """Who is checked, and under which check's name a contract failure is reported."""

    label: str
    check: str = "contract"


def _expect(ok: bool, where: Where, message: str) -> None:
    if not ok:
        fail(where.label, where.check, message)


def _expect_finite(state: Any, where: Where, what: str) -> None:
    for t in leaves(state):
        if t.is_floating_point() and not torch.isfinite(t).all():
            fail(where.label, where.check, f"{what} holds NaN or inf (a tensor of shape {shape_of(t)}).")


def _expect_batch_first(state: Any, where: Where, what: str, dtype: torch.dtype) -> None:
    for t in leaves(state):
        _expect(t.dim() >= 1 and t.shape[0] == SIZES.B, where,
                f"{what} has a tensor of shape {shape_of(t)} but states are batch-first: its first axis must be B={SIZES.B}.")
        _expect(not t.is_floating_point() or t.dtype == dtype, where,
                f"{what} has a {t.dtype} tensor but {dtype} was asked for; pass dtype= (and device=) to torch.zeros and friends.")


def _dtypes(state: Any) -> list[torch.dtype]:
    return [t.dtype for t in leaves(state)]


def _expect_dtypes_kept(before: list[torch.dtype], after: Any, where: Where, what: str) -> None:
    """Every tensor of a state keeps its dtype over a step (a float64 run must not fall back to float32)."""
    changed = [(a, b) for a, b in zip(before, _dtypes(after)) if a != b]
    if changed:
        fail(where.label, where.check, f"{what} changes dtype over a step: a {changed[0][0]} tensor comes back as "
             f"{changed[0][1]}; build new state tensors with the dtype of the ones they replace (torch.zeros_like, dtype=x.dtype).")


def _randomised(state: Any, generator: torch.Generator) -> Any:
    """The same state with every floating tensor replaced by fixed noise (uniform in [0, 1); a ``memory`` field
    normal) and a slot ``mask`` field all True (every slot in use)."""

    def noise(t: Tensor, name: str) -> Tensor:
        if name == "mask" and t.dtype == torch.bool:
            return torch.ones_like(t)
        if not t.is_floating_point():
            return t
        return (torch.randn if name == "memory" else torch.rand)(t.shape, generator=generator, dtype=t.dtype)

    if isinstance(state, Tensor):
        return noise(state, "")
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(noise(v, name) if isinstance(v, Tensor) else _randomised(v, generator)
                             for name, v in zip(state._fields, state)))
    if isinstance(state, dict):
        return {k: _randomised(v, generator) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return type(state)(_randomised(v, generator) for v in state)
    return state


def _step_outputs(head: nn.Module, params: Tensor, memory: Memory, memory_state: Any, state: Any) -> list[Tensor]:
    """The floating tensors one step gives back (reads, memory state, head state), from copies of the states."""
    out = head(params, memory, copy.deepcopy(memory_state), copy.deepcopy(state))
    return [t for t in leaves((out.reads, out.memory_state, out.state)) if t.is_floating_point()]


def _expect_every_parameter_used(head: nn.Module, memory: Memory, memory_state: Any, where: Where) -> None:
    """Each of the P numbers per head (``param_size``) moves something a step gives back: reads, memory or head state.

    One float64 step from ``memory_state`` (the last one a step gave back) with every field made
    noise (so that gates acting on earlier weightings, usage or links matter). A number is used
    when a fixed random projection of the outputs has a gradient with respect to it, or, failing
    that (a discrete top-k choice has none), when shifting it by 3 changes an output.
    """
    B, count, P = SIZES.B, head.count, head.param_size(memory)
    generator = torch.Generator().manual_seed(11)
    memory_state = _randomised(memory_state, generator)
    state = _randomised(head.initial_state(B, memory, CPU, torch.float64), generator)
    params = fixed_input(B, count, P, dtype=torch.float64).requires_grad_(True)
    outputs = [t for t in _step_outputs(head, params, memory, memory_state, state) if t.requires_grad]
    total = sum((t * torch.randn(t.shape, generator=generator, dtype=t.dtype)).sum() for t in outputs)
    grad = torch.autograd.grad(total, params, allow_unused=True)[0] if outputs else None
    used = torch.zeros(P, dtype=torch.bool) if grad is None else grad.abs().sum(dim=(0, 1)) > 0  # [B, count, P] -> [P]
    unused = []
    with torch.no_grad():
        baseline = _step_outputs(head, params, memory, memory_state, state)
        for i in (i for i in range(P) if not used[i]):
            shifted = params.clone()
            shifted[..., i] += 3.0
            if all(torch.equal(a, b) for a, b in zip(baseline, _step_outputs(head, shifted, memory, memory_state, state))):
                unused.append(i)
    if unused:
        fail(where.label, where.check, f"param_size(memory) declares P={P} parameters per head but forward ignores "
             f"{len(unused)} of them (positions {unused[:8]}{'...' if len(unused) > 8 else ''}); make param_size count only "
             "what forward uses, or the cell's projection trains rows that do nothing.")


def controller_contract(factory: Callable[[], nn.Module], where: Where) -> None:
    B, T, I = SIZES.B, SIZES.T, SIZES.I
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(SEED)
        controller = factory()
        controller.bind(I)
        controller.to(dtype)
        H = controller.output_size
        _expect(isinstance(H, int) and H >= 1, where, f"output_size must be a positive int, got {H!r}.")
        state = controller.initial_state(B, CPU, dtype)
        _expect_finite(state, where, "initial_state")
        before, dtypes = structure(state), _dtypes(state)
        x = fixed_input(B, T, I, dtype=dtype)
        for t in range(T):
            h, state = controller(x[:, t], state)
            _expect_dtypes_kept(dtypes, state, where, "the state")
            _expect(isinstance(h, Tensor) and tuple(h.shape) == (B, H), where,
                    f"forward(x [{B}, {I}]) gives h of shape {shape_of(h)} but [B, H] = [{B}, {H}] was expected.")
            _expect(h.dtype == dtype, where, f"forward gives {h.dtype} outputs for {dtype} inputs and parameters.")
            _expect(structure(state) == before, where,
                    f"the state changes shape over a step: {before} becomes {structure(state)}.")
        _expect_finite(h, where, "the output h")


def memory_contract(factory: Callable[[], nn.Module], where: Where) -> None:
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(SEED)
        memory = factory().to(dtype)
        W = memory.word_size
        _expect(isinstance(W, int) and W >= 1, where, f"word_size must be a positive int, got {W!r}.")
        state = memory.initial_state(SIZES.B, CPU, dtype)
        _expect(bool(leaves(state)), where, "initial_state holds no tensor; a memory's state is its contents.")
        _expect_batch_first(state, where, "initial_state", dtype)
        _expect_finite(state, where, "initial_state")
        described = memory.describe(state)
        _expect(isinstance(described, dict), where, f"describe(state) must return a dict of tensors, got {type(described).__name__}.")
        _expect_batch_first(described, where, "describe(state)", dtype)
        _expect_growing_declared(memory, state, where)


# -- growing state (Memory.growing): the declared axes may change size over a step, nothing else --
def _expect_growing_declared(memory: Memory, state: Any, where: Where) -> None:
    """``memory.growing`` names fields of the state and axes (not the batch) of their tensors."""
    growing = getattr(memory, "growing", {})
    fields = getattr(state, "_fields", ())
    for field, axis in dict(growing).items():
        value = getattr(state, field, None) if field in fields else None
        _expect(isinstance(value, Tensor), where,
                f"growing names the state field {field!r}, but the state's tensor fields are {list(fields)}; name one of those.")
        _expect(isinstance(axis, int) and not isinstance(axis, bool) and 1 <= axis < value.dim(), where,
                f"growing[{field!r}] is {axis!r} but must be an axis of its {shape_of(value)} tensor other than the batch "
                f"(1 to {value.dim() - 1}).")


def growing_structure(state: Any, memory: Memory) -> Any:
    """:func:`structure` of a memory state with each axis declared in ``memory.growing`` shown as ``'*'``."""
    shapes = structure(state)
    growing = getattr(memory, "growing", {})
    if not growing or not hasattr(state, "_fields"):
        return shapes
    shapes = list(shapes)
    for i, field in enumerate(state._fields):
        if field in growing and isinstance(shapes[i], tuple) and growing[field] < len(shapes[i]):
            dims = list(shapes[i])
            dims[growing[field]] = "*"
            shapes[i] = tuple(dims)
    return tuple(shapes)


def _matrix_state(memory: Memory, dtype: torch.dtype, zero: bool) -> Any:
    """The memory's initial state, all-zero or with random contents in a field named ``memory`` (``[B, N, W]``)."""
    state = memory.initial_state(SIZES.B, CPU, dtype)
    if zero:
        return zeros_like(state)
    if isinstance(state, tuple) and "memory" in getattr(state, "_fields", ()):
        return state._replace(memory=fixed_input(*state.memory.shape, dtype=dtype))
    return state


def _variants(zero: bool) -> tuple[tuple[torch.dtype, bool], ...]:
    """(dtype, all-zero memory) pairs a direct contract runs: float32 and float64, or the all-zero case."""
    return ((torch.float32, True),) if zero else ((torch.float32, False), (torch.float64, False))


def _params(B: int, h: int, P: int, dtype: torch.dtype, zero: bool, t: int) -> Tensor:
    """Raw parameters ``[B, h, P]`` for step t: noise; on an all-zero memory zeros first, then noise
    (an empty memory must also give finite results for a key that is not zero)."""
    return torch.zeros(B, h, P, dtype=dtype) if zero and t == 0 else 2 * fixed_input(B, h, P, dtype=dtype)


def _when(zero: bool, t: int) -> str:
    if not zero:
        return f"at step {t}"
    return "on an all-zero memory with " + ("all-zero parameters" if t == 0 else "non-zero parameters")


def addressing_contract(factory: Callable[[], nn.Module], where: Where, make_memory: Callable[[], Memory], zero: bool) -> None:
    B, h, T = SIZES.B, SIZES.h, SIZES.T
    for dtype, zero in _variants(zero):
        torch.manual_seed(SEED)
        memory = make_memory().to(dtype)
        addressing = factory()
        addressing.bind(memory)  # layers that depend on the memory exist before the dtype is set
        addressing = addressing.to(dtype)
        N = getattr(memory, "slots", None)
        P = addressing.param_size(memory)
        _expect(isinstance(P, int) and P >= 0, where, f"param_size(memory) must be a non-negative int, got {P!r}.")
        memory_state = _matrix_state(memory, dtype, zero)
        state = addressing.initial_state(B, h, memory, CPU, dtype)
        _expect_batch_first(state, where, "initial_state", dtype)
        before, dtypes = structure(state), _dtypes(state)
        for t in range(T):
            params = _params(B, h, P, dtype, zero, t)
            weights, state = addressing(params, memory_state, state)
            _expect_dtypes_kept(dtypes, state, where, "the state")
            when = _when(zero, t)
            expected = (B, h, N) if N is not None else (B, h, weights.shape[-1])
            _expect(tuple(weights.shape) == expected, where,
                    f"forward(params [{B}, {h}, {P}]) gives weights of shape {shape_of(weights)} but [B, h, N] = "
                    f"[{', '.join(map(str, expected))}] was expected.")
            _expect(bool(torch.isfinite(weights).all()), where, f"the weights hold NaN or inf {when}.")
            _expect(bool((weights >= -1e-6).all()), where, f"the weights have negative entries {when}.")
            sums = weights.sum(-1)
            _expect(torch.allclose(sums, torch.ones_like(sums), atol=1e-4), where,
                    f"the weights must sum to 1 over N but sum to {sums.flatten().tolist()} {when}.")
            _expect(structure(state) == before, where, f"the state changes shape over a step: {before} becomes {structure(state)}.")


def head_contract(
    factory: Callable[[], nn.Module], where: Where, make_memory: Callable[[], Memory], zero: bool, *, param_use: bool = True
) -> None:
    """A head's shapes, dtypes and finiteness over T steps; with ``param_use``, also that it uses all P parameters.

    ``param_use`` is off when a memory is checked with its harness's heads: whether a head's
    numbers matter may depend on the memory's settings (a top-1 sparse read ignores its strength).
    """
    B, T = SIZES.B, SIZES.T
    for dtype, zero in _variants(zero):
        torch.manual_seed(SEED)
        memory = make_memory().to(dtype)
        head = factory()
        head.bind(memory)  # layers that depend on the memory exist before the dtype is set
        head = head.to(dtype)
        count, P, R = head.count, head.param_size(memory), head.read_size(memory)
        for name, value, low in (("count", count, 1), ("param_size(memory)", P, 0), ("read_size(memory)", R, 0)):
            _expect(isinstance(value, int) and value >= low, where, f"{name} must be an int of at least {low}, got {value!r}.")
        _expect(isinstance(head.stage, int), where, f"stage must be an int (0 writes, 1 reads), got {head.stage!r}.")
        bias = head.param_bias(memory)
        _expect(bias is None or (isinstance(bias, torch.Tensor) and tuple(bias.shape) == (P,) and bias.is_floating_point()
                                 and not torch.isinf(bias).any()), where,
                f"param_bias(memory) must be None or a float tensor of shape [{P}] (NaN where the init stays, no inf), "
                f"got {bias if bias is None or not isinstance(bias, torch.Tensor) else list(bias.shape)!r}.")
        memory_state = _matrix_state(memory, dtype, zero)
        state = head.initial_state(B, memory, CPU, dtype)
        _expect_batch_first(state, where, "initial_state", dtype)
        shapes = (growing_structure(memory_state, memory), structure(state))
        dtypes = (_dtypes(memory_state), _dtypes(state))
        for t in range(T):
            params = _params(B, count, P, dtype, zero, t)
            out = head(params, memory, memory_state, state, record=True)
            _expect(isinstance(out, HeadOutput), where, f"forward must return a HeadOutput, got {type(out).__name__}.")
            if R == 0:
                _expect(out.reads is None, where, f"read_size is 0 but forward returns reads of shape {shape_of(out.reads)}; return None.")
            else:
                _expect(isinstance(out.reads, Tensor) and tuple(out.reads.shape) == (B, count, R), where,
                        f"forward gives reads of shape {shape_of(out.reads)} but [B, count, read_size] = [{B}, {count}, {R}] was expected.")
                _expect(bool(torch.isfinite(out.reads).all()), where, f"the reads hold NaN or inf {_when(zero, t)}"
                        + ("; guard divisions by a norm or a sum of the memory with an epsilon." if zero else "."))
            memory_state, state = out.memory_state, out.state
            _expect_dtypes_kept(dtypes[0], memory_state, where, "the memory state")
            _expect_dtypes_kept(dtypes[1], state, where, "the head state")
            if param_use and dtype == torch.float64 and not zero and t == T - 1:
                _expect_every_parameter_used(head, memory, memory_state, where)
            _expect((growing_structure(memory_state, memory), structure(state)) == shapes, where,
                    f"the memory or head state changes shape over a step: {shapes} becomes "
                    f"{(growing_structure(memory_state, memory), structure(state))}; a memory whose state grows "
                    "declares the growing axis in its growing attribute, e.g. growing = {'values': 1}.")
            _expect_finite(memory_state, where, "the memory state after a step" + (" from an all-zero memory" if zero else ""))
            _expect_batch_first(out.trace, where, "the trace", dtype)


def model_contract(factory: Callable[[], nn.Module], where: Where, wrap: Callable[[nn.Module], nn.Module] = lambda m: m) -> None:
    B, T, I, O = SIZES.B, SIZES.T, SIZES.I, SIZES.O
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(SEED)
        model = wrap(factory())
        model.bind(I, O)
        model.to(dtype)
        x = fixed_input(B, T, I, dtype=dtype)
        out = model(x, record=True)
        logits = out.logits
        _expect(tuple(logits.shape) == (B, T, O), where,
                f"forward(x [{B}, {T}, {I}]) gives logits of shape {shape_of(logits)} but [B, T, O] = [{B}, {T}, {O}] was expected.")
        _expect(logits.dtype == dtype, where, f"forward gives {logits.dtype} logits for {dtype} inputs and parameters.")
        _expect(bool(torch.isfinite(logits).all()), where, "the logits hold NaN or inf on random inputs.")
        for key, value in (out.trace or {}).items():
            _expect(isinstance(value, Tensor) and tuple(value.shape[:2]) == (B, T), where,
                    f"trace['{key}'] has shape {shape_of(value)} but recorded tensors are [B, T, ...] = [{B}, {T}, ...].")
