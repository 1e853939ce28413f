"""The model-level conformance checks (all but ``contract``), run on a component or on its harness.

Shape letters: B batch, T time, I input width, O output width (the kit's
:data:`~mannkit.testing.defaults.SIZES`). :mod:`mannkit.testing.conformance` describes each
check; this module holds how a subject is built and run, and the checks themselves.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mannkit.core.config import Configurable, instantiate
from mannkit.core.interfaces import RecurrentCell
from mannkit.testing.contracts import SEED, fail, fixed_input, shape_of, zeros_like
from mannkit.testing.defaults import SIZES

__all__ = ["CHECKS"]

CHECKS = ("contract", "zero_memory", "gradients", "determinism", "state_dict", "pickle", "config")
_OTHER_SEED = 1  # the fresh build that loads a state_dict starts from other weights
_RUN_SEED = 1234  # set before every compared run, so components that draw noise draw the same


def _max_diff(a: Tensor, b: Tensor) -> str:
    if a.shape != b.shape:
        return f"shapes {shape_of(a)} and {shape_of(b)}"
    return f"largest difference {(a - b).abs().max().item():.3g}"


# -- what is checked: the component, or a harness around it -------------------------------------
@dataclass
class _Subject:
    """How to build, bind and run the module the model-level checks look at."""

    label: str
    factory: Callable[[], nn.Module]  # the component under test, unbound
    wrap: Callable[[nn.Module], nn.Module]  # component -> the module checked (itself or a harness)
    bind: Callable[[nn.Module], None]
    run: Callable[[nn.Module, Tensor, bool], Tensor]  # (module, x [B, T, I], zero memory) -> [B, T, ...]
    stateful: bool  # the last output must depend on the first input

    def build(self, seed: int) -> tuple[nn.Module, str]:
        """A bound module built under ``seed``, and the component's path inside it ('' if it is the module)."""
        torch.manual_seed(seed)
        component = self.factory()
        module = self.wrap(component)
        self.bind(module)
        path = next(name for name, m in module.named_modules() if m is component)
        return module, path

    def outputs(self, module: nn.Module, x: Tensor, zero: bool = False) -> Tensor:
        """Outputs under a fixed seed (components that draw noise draw the same noise), without gradients."""
        torch.manual_seed(_RUN_SEED)
        with torch.no_grad():
            return self.run(module, x, zero)


def _run_controller(controller: nn.Module, x: Tensor, zero: bool) -> Tensor:
    """``x [B, T, I]`` -> ``h [B, T, H]``, one step at a time."""
    B, T, _ = x.shape
    state = controller.initial_state(B, x.device, x.dtype)
    if zero:
        state = zeros_like(state)
    outputs = []
    for t in range(T):
        h, state = controller(x[:, t], state)
        outputs.append(h)
    return torch.stack(outputs, dim=1)  # T x [B, H] -> [B, T, H]


def _run_model(model: nn.Module, x: Tensor, zero: bool) -> Tensor:
    """``x [B, T, I]`` -> logits ``[B, T, O]``; with ``zero``, a state field named ``memory`` starts all-zero."""
    if zero and isinstance(model, RecurrentCell):
        B, T, _ = x.shape
        state = model.initial_state(B, x.device, x.dtype)
        if isinstance(state, tuple) and "memory" in getattr(state, "_fields", ()):
            state = state._replace(memory=zeros_like(state.memory))
        outputs = []
        for t in range(T):
            y, state, _ = model.step(x[:, t], state)
            outputs.append(y)
        return torch.stack(outputs, dim=1)  # T x [B, O] -> [B, T, O]
    return model(x).logits


def _bind_model(model: nn.Module) -> None:
    model.bind(SIZES.I, SIZES.O)


# -- the model-level checks --------------------------------------------------------------------
def _check_zero_memory(s: _Subject) -> None:
    module, _ = s.build(SEED)
    x = torch.zeros(SIZES.B, SIZES.T, SIZES.I, requires_grad=True)
    torch.manual_seed(_RUN_SEED)
    y = s.run(module, x, True)
    if not torch.isfinite(y).all():
        fail(s.label, "zero_memory", f"all-zero inputs and an all-zero memory give non-finite outputs {y.flatten()[:6].tolist()}...; "
              "add an epsilon where a norm or a sum of zeros divides or sits under a root or a log.")
    (y * fixed_input(*y.shape)).sum().backward()
    bad = [n for n, p in module.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    if x.grad is not None and not torch.isfinite(x.grad).all():
        bad.append("the input")
    if bad:
        fail(s.label, "zero_memory", f"all-zero inputs and memory give non-finite gradients for {', '.join(bad)}; "
              "guard the backward of norms, roots and logs at zero.")


def _check_gradients(s: _Subject) -> None:
    module, path = s.build(SEED)
    x = fixed_input(SIZES.B, SIZES.T, SIZES.I).requires_grad_(True)
    torch.manual_seed(_RUN_SEED)
    y = s.run(module, x, False)
    (y * fixed_input(*y.shape)).sum().backward()  # a weighted sum: a plain sum of normalised outputs has no gradient
    missing, zero, bad = [], [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        where = f"'{name}'" + ("" if not path or name.startswith(path + ".") else " (of the harness)")
        if p.grad is None:
            missing.append(where)
        elif not torch.isfinite(p.grad).all():
            bad.append(where)
        elif not p.grad.any():
            zero.append(where)
    steps = f"a forward over {SIZES.T} steps and a backward"
    if missing:
        fail(s.label, "gradients", f"parameter {', '.join(missing)} received no gradient after {steps}; "
              "use every parameter in the forward, or register unused tensors as buffers.")
    if bad:
        fail(s.label, "gradients", f"parameter {', '.join(bad)} has a non-finite gradient after {steps}.")
    if zero:
        fail(s.label, "gradients", f"parameter {', '.join(zero)} has an all-zero gradient after {steps}; "
              "something detaches or masks its path to the outputs.")
    if s.stateful:
        x2 = fixed_input(SIZES.B, SIZES.T, SIZES.I).requires_grad_(True)
        torch.manual_seed(_RUN_SEED)
        last = s.run(module, x2, False)[:, -1]
        (grad,) = torch.autograd.grad((last * fixed_input(*last.shape)).sum(), x2, allow_unused=True)
        if grad is None or not grad[:, 0].any():
            fail(s.label, "gradients", f"the output at the last of {SIZES.T} steps has no gradient with respect to the "
                  "input at the first step; the recurrent state (or the memory) is detached or ignored somewhere.")


def _check_determinism(s: _Subject) -> None:
    x = fixed_input(SIZES.B, SIZES.T, SIZES.I)
    first, _ = s.build(SEED)
    second, _ = s.build(SEED)
    a, b = s.outputs(first, x), s.outputs(second, x)
    if not torch.equal(a, b):
        fail(s.label, "determinism", f"two builds under torch.manual_seed({SEED}) give different outputs ({_max_diff(a, b)}); "
              "draw all randomness from torch's global generator (no unseeded generators, clocks or os.urandom).")
    again = s.outputs(second, x)
    if not torch.equal(b, again):
        fail(s.label, "determinism", f"running one module twice on the same input and seed gives different outputs "
              f"({_max_diff(b, again)}); a step must not keep state on self (return it in the state instead).")


def _check_state_dict(s: _Subject) -> None:
    x = fixed_input(SIZES.B, SIZES.T, SIZES.I)
    original, _ = s.build(SEED)
    fresh, _ = s.build(_OTHER_SEED)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    try:
        fresh.load_state_dict(torch.load(buffer, weights_only=True))
    except Exception as exc:
        fail(s.label, "state_dict", f"a fresh build cannot load the state_dict ({type(exc).__name__}: {exc}).")
    a, b = s.outputs(original, x), s.outputs(fresh, x)
    if not torch.equal(a, b):
        fail(s.label, "state_dict", f"a fresh build loaded with the state_dict gives different outputs ({_max_diff(a, b)}); "
              "keep every learned or sampled tensor in a parameter or a persistent buffer.")


def _check_pickle(s: _Subject) -> None:
    x = fixed_input(SIZES.B, SIZES.T, SIZES.I)
    original, _ = s.build(SEED)
    try:
        restored = pickle.loads(pickle.dumps(original))
    except Exception as exc:
        fail(s.label, "pickle", f"the built module does not survive pickle.dumps/loads ({type(exc).__name__}: {exc}); "
              "DDP spawn and checkpoints pickle modules, so keep no lambdas, generators or open files on them.")
    a, b = s.outputs(original, x), s.outputs(restored, x)
    if not torch.equal(a, b):
        fail(s.label, "pickle", f"the unpickled module gives different outputs ({_max_diff(a, b)}).")


def _argument_differences(a: nn.Module, b: nn.Module) -> list[str]:
    """Constructor arguments (plain values) that differ between two modules of the same structure."""
    differences = []
    for (name, m1), (_, m2) in zip(a.named_modules(), b.named_modules()):
        if not isinstance(m1, Configurable):
            continue
        args1, args2 = m1.__dict__.get("_init_config", {}), m2.__dict__.get("_init_config", {})
        for key, value in args1.items():
            if isinstance(value, (nn.Module, list, tuple, dict)):
                continue
            if key not in args2 or args2[key] != value:
                owner = f"{type(m1).__name__}" + (f" at '{name}'" if name else "")
                differences.append(f"{owner} argument '{key}' is {value!r} but {args2.get(key, '<missing>')!r} after the round trip")
    return differences


def _check_config(s: _Subject) -> None:
    x = fixed_input(SIZES.B, SIZES.T, SIZES.I)
    original, _ = s.build(SEED)
    if not isinstance(original, Configurable):
        fail(s.label, "config", f"{type(original).__name__} has no to_config(); subclass mannkit's interfaces.")
    config = original.to_config()
    try:
        json.dumps(config)
    except (TypeError, ValueError) as exc:
        fail(s.label, "config", f"to_config() is not plain data ({exc}); checkpoints store it with weights_only loading.")
    torch.manual_seed(_OTHER_SEED)
    try:
        rebuilt = instantiate(config)
        s.bind(rebuilt)
    except Exception as exc:
        fail(s.label, "config", f"instantiate(to_config()) fails ({type(exc).__name__}: {exc}); config: {config}.")
    differences = _argument_differences(original, rebuilt)
    if differences:
        fail(s.label, "config", f"the rebuilt module differs: {'; '.join(differences)}; to_config() loses that argument.")
    try:
        rebuilt.load_state_dict(original.state_dict())
    except Exception as exc:
        fail(s.label, "config", f"the module rebuilt from to_config() cannot load the state_dict ({type(exc).__name__}: {exc}); "
              f"to_config() probably loses a constructor argument: {config}.")
    a, b = s.outputs(original, x), s.outputs(rebuilt, x)
    if not torch.equal(a, b):
        fail(s.label, "config", f"the module rebuilt from to_config() gives different outputs ({_max_diff(a, b)}); "
              f"to_config() probably loses a constructor argument: {config}.")
    if rebuilt.to_config() != config:
        fail(s.label, "config", f"to_config() is not stable: {config} becomes {rebuilt.to_config()} after a round trip.")


_MODEL_CHECKS = {
    "zero_memory": _check_zero_memory,
    "gradients": _check_gradients,
    "determinism": _check_determinism,
    "state_dict": _check_state_dict,
    "pickle": _check_pickle,
    "config": _check_config,
}


def _run_checks(subject: _Subject, contract: Callable[[bool], None], skip: Iterable[str]) -> None:
    """``contract(zero)`` runs the interface's own checks (on random data, or on an all-zero memory)."""
    skip = set(skip)
    unknown = skip - set(CHECKS)
    if unknown:
        raise ValueError(f"skip: unknown check names {sorted(unknown)}; the checks are {', '.join(CHECKS)}.")
    steps = [("contract", lambda: contract(False)), ("zero_memory", lambda: contract(True))]
    steps += [(name, lambda check=check: check(subject)) for name, check in _MODEL_CHECKS.items()]
    for name, step in steps:
        if name in skip:
            continue
        try:
            step()
        except AssertionError:
            raise
        except Exception as exc:  # a crash inside the component is a failed check too, with its cause
            fail(subject.label, name, f"it raised {type(exc).__name__}: {exc}")
