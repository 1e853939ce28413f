"""The conformance checks: one call per component, an ``AssertionError`` with a sentence on failure.

Shape letters: B batch, T time, I input width, O output width, N memory slots, W word size,
H controller output size, h heads of one bank, P parameters per head. Sizes are the kit's
distinct :data:`~mannkit.testing.defaults.SIZES` (B=3, T=4, I=5, O=17, N=7, W=11, H=13, h=2).

Each check builds the component afresh from a *factory* (``() -> unbound instance``): a
lambda, a class (built with its registered example, or its defaults and partners) or a
registered name. Given a class or a name, the kit checks exactly that class: an example that
builds another class (a base class's) is refused. Checks, by name
(pass names in ``skip=`` to leave some out):

``contract``
    the interface's shapes and dtypes, run on the component directly (a head or an
    addressing against a ``MatrixMemory`` state), in float32 and float64; initial states finite;
    states keep their dtypes over a step; a head uses each of its ``param_size`` numbers.
``zero_memory``
    all-zero inputs and an all-zero memory give finite outputs and finite gradients; a head or
    an addressing run directly on an all-zero memory gives finite results for all-zero and for
    non-zero parameters.
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
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from mannkit.core.interfaces import Addressing, Controller, Head, Memory, QAModel, SequenceModel
from mannkit.testing.contracts import (
    CPU,
    Where,
    addressing_contract,
    controller_contract,
    head_contract,
    leaves,
    memory_contract,
    model_contract,
)
from mannkit.testing.defaults import SIZES, Harness, _resolve, default_factory, default_harness, default_memory, example_for
from mannkit.testing.model_checks import CHECKS, _bind_model, _run_checks, _run_controller, _run_model, _Subject

__all__ = [
    "CHECKS",
    "check_component",
    "check_controller",
    "check_memory",
    "check_addressing",
    "check_head",
    "check_sequence_model",
]


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
    expected = _resolve(target) if isinstance(target, str) else target
    if isinstance(expected, type) and type(sample) is not expected:
        raise AssertionError(
            f"the conformance kit was asked to check {expected.__qualname__} but its example factory builds "
            f"{type(sample).__qualname__}; register an example that builds the class itself "
            f"(register_example({expected.__name__}, lambda: {expected.__name__}(...)))."
        )
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
            head_contract(lambda head=head: copy.deepcopy(head), where, factory, zero, param_use=False)

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


_BY_INTERFACE: tuple[tuple[type, Callable[..., None]], ...] = (
    (Controller, check_controller),
    (Memory, check_memory),
    (Addressing, check_addressing),
    (Head, check_head),
    (SequenceModel, check_sequence_model),
)


def check_component(target: Any, **options: Any) -> None:
    """Run the checks of whichever interface ``target`` implements (options go to that check).

    Args:
        target: a registered name (``"NTMAddressing"``), a class, or a factory (``lambda: ReadHead(ContentAddressing())``).
    """
    from mannkit.testing.qa import check_qa_model  # the QA checks build on this module's

    factory, name = _factory_of(target)
    sample = factory()
    for interface, check in (*_BY_INTERFACE, (QAModel, check_qa_model)):
        if isinstance(sample, interface):
            check(factory, **options)
            return
    raise TypeError(
        f"{name} implements none of Controller, Memory, Addressing, Head, SequenceModel or QAModel; the kit checks only those."
    )
