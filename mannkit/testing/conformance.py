"""The conformance checks: one call per component, an ``AssertionError`` with a sentence on failure.

Shape letters: B batch, T time, I input width, O output width, N memory slots, W word size,
H controller output size, h heads of one bank, P parameters per head. Sizes are the kit's
distinct :data:`~mannkit.testing.defaults.SIZES` (B=3, T=4, I=5, O=17, N=7, W=11, H=13, h=2).

Each check builds the component afresh from a *factory* (``() -> unbound instance``): a
lambda, a class (built with its defaults and partners) or a registered name. Checks, by name
(pass names in ``skip=`` to leave some out):

``contract``
    the interface's shapes and dtypes, run on the component directly (a head or an
    addressing against a ``MatrixMemory`` state), in float32 and float64; initial states finite.
``zero_memory``
    all-zero inputs and an all-zero memory give finite outputs and finite gradients.
``gradients``
    after a forward over T steps and a backward of a weighted sum, every parameter has a
    finite, non-zero gradient; a stateful component's last output depends on the first input.
``determinism``
    two builds under one seed give identical outputs, and so does running one module twice.
``state_dict``
    a fresh build (another seed) loaded with the state_dict (saved and loaded with
    ``weights_only``) gives identical outputs.
``pickle``
    ``pickle.loads(pickle.dumps(module))`` gives identical outputs.
``config``
    ``to_config()`` is plain data; ``instantiate`` of it, bound and loaded with the
    state_dict, has the same constructor arguments and gives identical outputs.

The model-level checks (all but ``contract``) run on the component itself for controllers
and sequence models, and on a small ``MemoryCell`` around it (its *harness*) for memories,
addressings and heads.

>>> from mannkit.nn import GRUController
>>> check_controller(lambda: GRUController(hidden_size=13))
>>> check_component("ContentAddressing")
"""

from __future__ import annotations

import copy
import io
import json
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mannkit.core.config import Configurable, instantiate
from mannkit.core.interfaces import Addressing, Controller, Head, Memory, QAModel, RecurrentCell, SequenceModel
from mannkit.testing.contracts import (
    CPU,
    SEED,
    Where,
    addressing_contract,
    controller_contract,
    fail,
    fixed_input,
    head_contract,
    leaves,
    memory_contract,
    model_contract,
    shape_of,
    zeros_like,
)
from mannkit.testing.defaults import SIZES, Harness, default_factory, default_harness, default_memory, example_for

__all__ = [
    "CHECKS",
    "check_component",
    "check_controller",
    "check_memory",
    "check_addressing",
    "check_head",
    "check_sequence_model",
    "check_qa_model",
    "QA_SIZES",
]

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


# -- public checks ------------------------------------------------------------------------------
def _factory_of(target: Any) -> tuple[Callable[[], nn.Module], str]:
    if isinstance(target, nn.Module):
        raise TypeError(
            f"the conformance kit needs a factory to build fresh copies, not a built {type(target).__name__}; "
            f"pass lambda: {type(target).__name__}(...) or the class."
        )
    if isinstance(target, (str, type)):
        factory = default_factory(target)
    elif callable(target):
        factory = target
    else:
        raise TypeError(f"expected a registered name, a class or a factory, got {target!r}.")
    sample = factory()
    return factory, type(sample).__name__


def _example_option(factory: Callable[[], nn.Module], name: str) -> Any:
    return getattr(example_for(type(factory())), name)


def _where(label: str, zero: bool) -> Where:
    return Where(label, "zero_memory" if zero else "contract")


def check_controller(target: Any, *, skip: Iterable[str] = ()) -> None:
    """Check a :class:`~mannkit.core.interfaces.Controller`: ``x [B, I]`` -> ``h [B, H]`` over T steps.

    Args:
        target: a factory (``lambda: LSTMController(hidden_size=13)``), a class or a registered name.
        skip: names of checks (see :data:`CHECKS`) to leave out.
    """
    factory, name = _factory_of(target)
    label = f"controller {name}"

    def bind(controller: nn.Module) -> None:
        controller.bind(SIZES.I)

    def contract(zero: bool) -> None:
        if not zero:  # the all-zero run of a controller is the model-level zero_memory check
            controller_contract(factory, _where(label, zero))

    probe = factory()
    bind(probe)
    stateful = bool(leaves(probe.initial_state(SIZES.B, CPU, torch.float32)))  # an MLP has no state to carry
    subject = _Subject(label, factory, lambda c: c, bind, _run_controller, stateful)
    _run_checks(subject, contract, skip)


def check_memory(target: Any, *, harness: Harness | None = None, skip: Iterable[str] = ()) -> None:
    """Check a :class:`~mannkit.core.interfaces.Memory`: its state, its harness's heads on it, then the harness.

    Args:
        target: a factory, a class or a registered name.
        harness: ``memory -> SequenceModel`` with heads that fit this memory (default: a content
            write head and two content read heads, for a memory with ``read`` and ``write``).
        skip: names of checks to leave out.
    """
    factory, name = _factory_of(target)
    label = f"memory {name}"
    wrap = harness or _example_option(factory, "harness") or default_harness("memory")
    subject = _Subject(label, factory, wrap, _bind_model, _run_model, True)

    def contract(zero: bool) -> None:
        where = _where(label, zero)
        if not zero:
            memory_contract(factory, where)
            model_contract(factory, where, wrap)
        # the harness's heads, run directly on this memory (on an all-zero one too: a write comes before any read)
        for head in getattr(wrap(factory()), "heads", ()):
            head_contract(lambda head=head: copy.deepcopy(head), where, factory, zero)

    _run_checks(subject, contract, skip)


def check_addressing(
    target: Any, *, memory: Callable[[], Memory] | None = None, harness: Harness | None = None, skip: Iterable[str] = ()
) -> None:
    """Check an :class:`~mannkit.core.interfaces.Addressing`: weightings ``[B, h, N]`` directly, then in a ``MemoryCell``.

    Args:
        target: a factory (``lambda: NTMAddressing(shift_range=1)``), a class or a registered name.
        memory: ``() -> Memory`` it is run against (default ``MatrixMemory(N=7, W=11)``).
        harness: ``addressing -> SequenceModel`` (default: a write head with it and two read heads with a copy).
        skip: names of checks to leave out.
    """
    factory, name = _factory_of(target)
    label = f"addressing {name}"
    make_memory = memory or _example_option(factory, "memory") or default_memory
    wrap = harness or _example_option(factory, "harness") or default_harness("addressing", make_memory)
    subject = _Subject(label, factory, wrap, _bind_model, _run_model, True)

    def contract(zero: bool) -> None:
        addressing_contract(factory, _where(label, zero), make_memory, zero)
        if not zero:
            model_contract(factory, _where(label, zero), wrap)

    _run_checks(subject, contract, skip)


def check_head(
    target: Any, *, memory: Callable[[], Memory] | None = None, harness: Harness | None = None, skip: Iterable[str] = ()
) -> None:
    """Check a :class:`~mannkit.core.interfaces.Head`: :class:`HeadOutput` shapes directly, then in a ``MemoryCell``.

    Args:
        target: a factory (``lambda: ReadHead(NTMAddressing(), count=2)``), a class or a registered name.
        memory: ``() -> Memory`` the head acts on (default ``MatrixMemory(N=7, W=11)``).
        harness: ``head -> SequenceModel`` (default: with a content write head before it if it reads,
            else with two content read heads after it).
        skip: names of checks to leave out.
    """
    factory, name = _factory_of(target)
    label = f"head {name}"
    make_memory = memory or _example_option(factory, "memory") or default_memory
    wrap = harness or _example_option(factory, "harness") or default_harness("head", make_memory)
    subject = _Subject(label, factory, wrap, _bind_model, _run_model, True)

    def contract(zero: bool) -> None:
        head_contract(factory, _where(label, zero), make_memory, zero)
        if not zero:
            model_contract(factory, _where(label, zero), wrap)

    _run_checks(subject, contract, skip)


def check_sequence_model(target: Any, *, skip: Iterable[str] = ()) -> None:
    """Check a :class:`~mannkit.core.interfaces.SequenceModel` (e.g. ``MemoryCell``): ``x [B, T, I]`` -> logits ``[B, T, O]``.

    Args:
        target: a factory, a class (``MemoryCell`` is built with default partners) or a registered name.
        skip: names of checks to leave out.
    """
    factory, name = _factory_of(target)
    label = f"model {name}"

    def contract(zero: bool) -> None:
        if not zero:
            model_contract(factory, _where(label, zero))

    subject = _Subject(label, factory, lambda m: m, _bind_model, _run_model, True)
    _run_checks(subject, contract, skip)


#: The sizes a QA model is bound to by the kit (distinct from each other and from the batch of 3).
QA_SIZES = {"vocab_size": 17, "answer_size": 5, "max_sentences": 7, "sentence_length": 4, "question_length": 6}


def _qa_batch(zero: bool, generator_seed: int = 0) -> tuple[Tensor, Tensor]:
    """A fixed story ``[B, N, L]`` (the last sentences unused, the last words padding) and question ``[B, Q]``.

    With ``zero`` the story holds no sentence at all (an empty memory)."""
    generator = torch.Generator().manual_seed(generator_seed)
    B, N, L, Q, V = SIZES.B, QA_SIZES["max_sentences"], QA_SIZES["sentence_length"], QA_SIZES["question_length"], QA_SIZES["vocab_size"]
    story = torch.randint(1, V, (B, N, L), generator=generator)
    story[:, :, -1] = 0  # right padding inside sentences
    story[:, N - 2 :] = 0  # unused sentence slots after the real ones
    question = torch.randint(1, V, (B, Q), generator=generator)
    question[:, -1] = 0
    return (torch.zeros_like(story) if zero else story), question


def _run_qa(model: nn.Module, x: Tensor, zero: bool) -> Tensor:
    """Logits ``[B, A]`` on the kit's fixed story (``x`` only carries the dtype; QA inputs are word ids)."""
    story, question = _qa_batch(zero)
    return model(story, question).logits


def _bind_qa(model: nn.Module) -> None:
    model.bind(**QA_SIZES)


def qa_model_contract(factory: Callable[[], nn.Module], where: Where) -> None:
    """Shapes and dtypes of a QA model on a story and on an empty story, in float32 and float64."""
    B, A, N = SIZES.B, QA_SIZES["answer_size"], QA_SIZES["max_sentences"]
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(SEED)
        model = factory()
        _bind_qa(model)
        model.to(dtype)
        for zero in (False, True):
            story, question = _qa_batch(zero)
            out = model(story, question, record=True)
            what = "an empty story" if zero else f"a story of {N - 2} sentences"
            if tuple(out.logits.shape) != (B, A):
                fail(where.label, where.check, f"forward on {what} gives logits of shape {shape_of(out.logits)} but "
                     f"[B, A] = [{B}, {A}] was expected.")
            if out.logits.dtype != dtype:
                fail(where.label, where.check, f"forward gives {out.logits.dtype} logits for {dtype} parameters.")
            if not torch.isfinite(out.logits).all():
                fail(where.label, where.check, f"the logits hold NaN or inf on {what}.")
            for key, value in (out.trace or {}).items():
                if not (isinstance(value, Tensor) and value.shape[0] == B):
                    fail(where.label, where.check, f"trace['{key}'] has shape {shape_of(value)}; recorded tensors are [B, ...].")


def check_qa_model(target: Any, *, skip: Iterable[str] = ()) -> None:
    """Check a :class:`~mannkit.core.interfaces.QAModel`: ``story [B, N, L]``, ``question [B, Q]`` -> logits ``[B, A]``.

    The model is bound to :data:`QA_SIZES`; ``zero_memory`` is a story with no sentence at all.

    Args:
        target: a factory, a class or a registered name.
        skip: names of checks to leave out.
    """
    factory, name = _factory_of(target)
    label = f"QA model {name}"
    subject = _Subject(label, factory, lambda m: m, _bind_qa, _run_qa, False)
    _run_checks(subject, lambda zero: None if zero else qa_model_contract(factory, _where(label, zero)), skip)


_BY_INTERFACE: tuple[tuple[type, Callable[..., None]], ...] = (
    (Controller, check_controller),
    (Memory, check_memory),
    (Addressing, check_addressing),
    (Head, check_head),
    (SequenceModel, check_sequence_model),
    (QAModel, check_qa_model),
)


def check_component(target: Any, **options: Any) -> None:
    """Run the checks of whichever interface ``target`` implements (options go to that check).

    Args:
        target: a registered name (``"NTMAddressing"``), a class, or a factory (``lambda: ReadHead(ContentAddressing())``).
    """
    factory, name = _factory_of(target)
    sample = factory()
    for interface, check in _BY_INTERFACE:
        if isinstance(sample, interface):
            check(factory, **options)
            return
    raise TypeError(
        f"{name} implements none of Controller, Memory, Addressing, Head, SequenceModel or QAModel; the kit checks only those."
    )
