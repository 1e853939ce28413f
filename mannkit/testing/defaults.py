"""How the conformance kit builds components it is given by name or class, and the partners it puts them with.

Shape letters: B batch, T time, I input width, O output width, N memory slots, W word size,
H controller output size, h heads of one bank, P parameters per head.

The kit uses one set of distinct sizes (:data:`SIZES`) so that a transposed axis breaks a
check instead of passing because two sizes coincide. A class is built with its defaults,
except that:

- constructor arguments named ``slots``, ``word_size`` and ``hidden_size`` (with an int
  default) get the kit's N, W and H, so that every check runs on small, distinct sizes;
- required arguments typed with an interface get a default *partner*: a ``Controller`` an
  ``LSTMController``, a ``Memory`` a ``MatrixMemory``, an ``Addressing`` a
  ``ContentAddressing``, a ``Head`` a ``ReadHead``, a ``list[Head]`` a ``WriteHead`` and a
  bank of two ``ReadHead``\\ s, a ``SequenceModel`` a ``MemoryCell`` built the same way.

A class that cannot be built so (a required number, a head made for another memory) gets
an example with :func:`register_example`, or its test passes a factory to the check.

>>> build_default("MatrixMemory").to_config()["init_args"]["slots"] == SIZES.N
True
"""

from __future__ import annotations

import copy
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Addressing, Controller, Head, Memory, SequenceModel
from mannkit.core.registry import registry

__all__ = [
    "SIZES",
    "Sizes",
    "Example",
    "register_example",
    "example_for",
    "default_factory",
    "build_default",
    "registered_components",
    "unchecked_reason",
    "parametrize_registry",
    "default_harness",
    "default_memory",
    "KIT_KINDS",
]

#: The registry kinds the kit knows how to check, in the order of the interfaces.
KIT_KINDS = ("controller", "memory", "addressing", "head", "model")


@dataclass(frozen=True)
class Sizes:
    """The kit's sizes, distinct per axis (a transposed axis cannot pass by coincidence)."""

    B: int = 3  # batch
    T: int = 4  # time steps
    I: int = 5  # data input width  # noqa: E741
    O: int = 17  # output width
    N: int = 7  # memory slots
    W: int = 11  # word size
    H: int = 13  # controller output size
    h: int = 2  # heads in a read bank


SIZES = Sizes()

#: Constructor arguments the kit sets to its own sizes when their default is an int.
SIZE_ARGUMENTS = {"slots": SIZES.N, "word_size": SIZES.W, "hidden_size": SIZES.H}

Factory = Callable[[], nn.Module]
Harness = Callable[[nn.Module], SequenceModel]


@dataclass(frozen=True)
class Example:
    """How to build one class for the kit.

    Attributes:
        factory: builds a fresh, unbound instance (``None``: the default construction).
        harness: wraps an instance into an unbound sequence model whose outputs depend on it
            (``None``: the kit's :func:`default_harness` for the kind).
        memory: builds the memory a head or an addressing is checked against directly
            (``None``: ``MatrixMemory(N, W)``).
    """

    factory: Factory | None = None
    harness: Harness | None = None
    memory: Callable[[], Memory] | None = None


_EXAMPLES: dict[type, Example] = {}


def register_example(
    cls: type,
    factory: Factory | None = None,
    *,
    harness: Harness | None = None,
    memory: Callable[[], Memory] | None = None,
) -> None:
    """Tell the kit how to build ``cls`` (and what to put it with) when it is checked by name or class.

    Call it in the plugin's package, where the class is defined or in the module the entry point
    imports, so that it runs whenever the plugin is loaded: mannkit's own registry-driven tests
    then check the class too (an example registered only in the plugin's test module is unknown
    to them). A subclass inherits ``harness`` and ``memory`` but not ``factory``: it is rebuilt
    with the arguments the base class's factory used, or with its own defaults.

    Args:
        cls: the component class.
        factory: ``() -> instance`` (unbound), e.g. ``lambda: StackHead(depth=7)``.
        harness: ``instance -> SequenceModel`` (unbound) whose outputs depend on the instance,
            e.g. ``lambda head: MemoryCell(MLPController(13), StackMemory(11), [head])``.
        memory: ``() -> Memory`` a head or an addressing is run against directly.
    """
    _EXAMPLES[cls] = Example(factory, harness, memory)


def example_for(cls: type) -> Example:
    """The :class:`Example` of ``cls``: its own, else the harness and memory of its nearest registered base class.

    A base class's *factory* is never used for a subclass as it is (it builds the base class,
    so the subclass would go unchecked); :func:`default_factory` rebuilds the subclass with the
    base example's constructor arguments instead.
    """
    if cls in _EXAMPLES:
        return _EXAMPLES[cls]
    for klass in cls.__mro__[1:]:
        if klass in _EXAMPLES:
            inherited = _EXAMPLES[klass]
            return Example(None, inherited.harness, inherited.memory)
    return Example()


def _inherited_factory(cls: type) -> Factory | None:
    """``() -> cls(**arguments of the nearest base example's build)``, when ``cls`` accepts those arguments."""
    base = next((k for k in cls.__mro__[1:] if k in _EXAMPLES and _EXAMPLES[k].factory is not None), None)
    if base is None:
        return None
    base_factory = _EXAMPLES[base].factory
    arguments = base_factory().__dict__.get("_init_config")
    if arguments is None:
        return None
    try:
        inspect.signature(cls).bind(**arguments)
    except TypeError:  # the subclass takes other arguments: build it from its own defaults
        return None
    return lambda: cls(**base_factory().__dict__["_init_config"])  # fresh partners on every build


# -- default partners ---------------------------------------------------------------------------
def default_memory() -> Memory:
    """``MatrixMemory(N, W)``: the memory heads and addressings are checked against by default."""
    from mannkit.nn import MatrixMemory

    return MatrixMemory(slots=SIZES.N, word_size=SIZES.W)


def _content() -> Addressing:
    from mannkit.nn import ContentAddressing

    return ContentAddressing()


def _head_banks() -> list[Head]:
    """A write head then a bank of ``h`` read heads, both content-addressed."""
    from mannkit.nn import ReadHead, WriteHead

    return [WriteHead(_content()), ReadHead(_content(), count=SIZES.h)]


def _partner(annotation: Any) -> Callable[[], Any] | None:
    """A builder for a required argument typed ``annotation``, or None if the kit has no partner for it."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _partner(options[0]) if len(options) == 1 else None
    if origin in (list, Sequence, tuple) or (origin is not None and inspect.isclass(origin) and issubclass(origin, Sequence)):
        args = typing.get_args(annotation)
        if args and inspect.isclass(args[0]) and issubclass(args[0], Head):
            return _head_banks
        return None
    if not inspect.isclass(annotation):
        return None
    if issubclass(annotation, Controller):
        return lambda: build_default("LSTMController")
    if issubclass(annotation, Memory):
        return default_memory
    if issubclass(annotation, Addressing):
        return _content
    if issubclass(annotation, Head):
        return lambda: build_default("ReadHead")
    if issubclass(annotation, SequenceModel):
        return lambda: build_default("MemoryCell")
    return None


def _resolve(target: str | type) -> type:
    if isinstance(target, str):
        _load_everything()
        return registry.get(target)
    return target


def default_factory(target: str | type) -> Factory:
    """``() -> instance`` for a registered name or a class: its registered example, else its defaults and partners.

    Raises:
        AssertionError: the class has a required argument the kit cannot fill; the message says
            how to give an example.
    """
    cls = _resolve(target)
    example = example_for(cls)
    if example.factory is not None:
        return example.factory
    inherited = _inherited_factory(cls)
    if inherited is not None:
        return inherited
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: fall back to defaults only
        hints = {}
    builders: dict[str, Callable[[], Any]] = {}
    for name, parameter in inspect.signature(cls).parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        default = parameter.default
        if name in SIZE_ARGUMENTS and isinstance(default, int) and not isinstance(default, bool):
            builders[name] = lambda value=SIZE_ARGUMENTS[name]: value
        elif default is inspect.Parameter.empty:
            partner = _partner(hints.get(name))
            if partner is None:
                raise AssertionError(
                    f"the conformance kit cannot build {cls.__qualname__}: its argument '{name}' is required and is not "
                    "a component the kit has a partner for; pass a factory (check_component(lambda: "
                    f"{cls.__name__}({name}=...))) or call mannkit.testing.register_example({cls.__name__}, lambda: ...)."
                )
            builders[name] = partner
    return lambda: cls(**{name: build() for name, build in builders.items()})


def build_default(target: str | type) -> nn.Module:
    """A fresh, unbound instance built by :func:`default_factory`."""
    return default_factory(target)()


# -- harnesses: a small sequence model around one component --------------------------------------
def _probe_controller() -> Controller:
    """A feed-forward controller, so that a later output can depend on an earlier input only through memory."""
    from mannkit.nn import MLPController

    return MLPController(hidden_size=SIZES.H, activation="tanh")


def default_harness(kind: str, memory: Callable[[], Memory] | None = None) -> Harness:
    """``component -> MemoryCell`` (unbound) for a memory, an addressing or a head.

    The controller is a tanh MLP (no state of its own), so the last output depends on the first
    input only through what was written to and read from memory.

    - memory: a content-addressed write head and a bank of ``h`` read heads over it;
    - addressing: a write head with it and a bank of ``h`` read heads with a copy of it, over
      ``memory()`` (default ``MatrixMemory(N, W)``);
    - head: over ``memory()``, after a content write head if it reads, else before a bank of
      ``h`` content read heads.
    """
    from mannkit.cell import MemoryCell
    from mannkit.nn import ReadHead, WriteHead

    make_memory = memory or default_memory
    if kind == "memory":
        return lambda component: MemoryCell(_probe_controller(), component, _head_banks())
    if kind == "addressing":
        return lambda component: MemoryCell(
            _probe_controller(), make_memory(),
            [WriteHead(component), ReadHead(copy.deepcopy(component), count=SIZES.h)],
        )
    if kind == "head":

        def wrap(component: nn.Module) -> SequenceModel:
            mem = make_memory()
            if component.read_size(mem) > 0:
                return MemoryCell(_probe_controller(), mem, [WriteHead(_content()), component])
            return MemoryCell(_probe_controller(), mem, [component, ReadHead(_content(), count=SIZES.h)])

        return wrap
    raise ValueError(f"default_harness: kind must be memory, addressing or head, got {kind!r}.")


# -- the registry, for parameterised tests -------------------------------------------------------
def _load_everything() -> None:
    registry.load_plugins()
    import mannkit.cell  # noqa: F401  (registers MemoryCell, the built-in model)


def registered_components(kind: str) -> list[str]:
    """Sorted short names of every registered component of ``kind`` (plugins loaded first).

    Meant for ``@pytest.mark.parametrize("name", registered_components("addressing"))`` so
    that a newly registered component is checked without new test code.
    """
    if kind not in KIT_KINDS:
        raise ValueError(f"registered_components: kind must be one of {', '.join(KIT_KINDS)}, got {kind!r}.")
    _load_everything()
    return registry.names(kind)


def unchecked_reason(name: str, kind: str) -> str:
    """Why mannkit's own registry-driven tests leave a registered component to its plugin's tests ('' to check it).

    Only a component from another distribution is ever left out: one that the kit cannot build
    and put in a harness with its default partners, and whose plugin registered no example
    (:func:`register_example`) when it was imported. mannkit's own components are always checked.
    """
    _load_everything()
    entry = next((e for e in registry.entries(kind) if e.name == name), None)
    if entry is None:
        raise ValueError(f"unchecked_reason: no {kind} is registered as {name!r}; see registered_components({kind!r}).")
    if entry.plugin == "mannkit" or entry.distribution == "mannkit" or example_for(entry.cls) != Example():
        return ""
    try:
        component = default_factory(entry.cls)()
        if kind in ("memory", "addressing", "head"):
            default_harness(kind)(component).bind(SIZES.I, SIZES.O)
    except (AssertionError, ConfigError) as exc:
        return (f"{kind} {name} from plugin '{entry.plugin}' (distribution '{entry.distribution}') does not fit the kit's "
                f"default partners ({str(exc).rstrip('.')}) and its plugin registered no example when it was imported; "
                f"call mannkit.testing.register_example({name}, ...) in the plugin package, not only in its tests.")
    return ""


def parametrize_registry(kind: str, argname: str = "name") -> Any:
    """``pytest.mark.parametrize(argname, registered_components(kind))`` (pytest is imported only here)."""
    import pytest

    return pytest.mark.parametrize(argname, registered_components(kind))
