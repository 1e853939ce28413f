"""The component registry and entry-point plugin loading.

Every component class (controller, memory, addressing, head, model, system, task,
callback) is registered under its short name, once. Built-in plugins register
exactly as third-party ones do: a distribution declares an entry point in the
group ``mannkit.plugins`` whose value is a module; importing the module registers
its classes with :func:`register`.

Each entry is credited to where its class is *defined*, never to whichever plugin happened
to import it first: the plugin is the entry point whose module contains the class's module
(``"mannkit"`` for the core), and the distribution is found from the class's top-level
package with :func:`importlib.metadata.packages_distributions` (the entry point's own
distribution when the package is not in that map).

>>> from mannkit.core.registry import registry
>>> "LSTMController" in registry.names("controller")  # doctest: +SKIP
True
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points, packages_distributions
from typing import Any, TypeVar

from mannkit.core.errors import ConfigError, PluginError, suggest

__all__ = [
    "API_VERSION",
    "ENTRY_POINT_GROUP",
    "DISABLE_ENV",
    "Entry",
    "PluginInfo",
    "PluginWarning",
    "DisabledPluginError",
    "Registry",
    "registry",
    "register",
    "load_plugins",
]

#: The interface version plugins declare as ``MANNKIT_API`` in their entry-point module.
API_VERSION = 1
ENTRY_POINT_GROUP = "mannkit.plugins"
#: Comma-separated plugin (entry-point) names that are not loaded.
DISABLE_ENV = "MANNKIT_DISABLE_PLUGINS"
KINDS = ("controller", "memory", "addressing", "head", "model", "system", "task", "callback", "metric")

C = TypeVar("C", bound=type)


class PluginWarning(UserWarning):
    """A plugin failed to load; runs that do not use it go on."""


class DisabledPluginError(ConfigError):
    """A config names a class of a plugin that ``MANNKIT_DISABLE_PLUGINS`` switches off."""


@dataclass
class Entry:
    """One registered class and where it came from."""

    name: str
    kind: str
    cls: type
    plugin: str
    distribution: str

    @property
    def source(self) -> str:
        """``module.Class`` from ``plugin`` (distribution)."""
        return f"{self.cls.__module__}.{self.cls.__qualname__} (plugin '{self.plugin}', distribution '{self.distribution}')"


@dataclass
class PluginInfo:
    """What loading one entry point gave: its distribution, what it registered, or why it failed."""

    name: str
    module: str
    distribution: str = "?"
    version: str = "?"
    registered: list[str] = field(default_factory=list)
    error: str | None = None
    disabled: bool = False


def _kind_of(cls: type) -> str:
    for klass in cls.__mro__:
        kind = klass.__dict__.get("registry_kind")
        if isinstance(kind, str):
            return kind
    names = {k.__module__ + "." + k.__qualname__ for k in cls.__mro__}
    for suffix, kind in (
        ("LightningDataModule", "task"),
        ("LightningModule", "system"),
        ("callbacks.callback.Callback", "callback"),
        ("torchmetrics.metric.Metric", "metric"),
    ):
        if any(n.endswith(suffix) for n in names):
            return kind
    raise PluginError(
        f"cannot tell what kind of component {cls.__qualname__} is; subclass one of mannkit's interfaces "
        f"or pass kind= to register (one of {', '.join(KINDS)})."
    )


_DISTRIBUTIONS: dict[str, list[str]] | None = None  # top-level package -> distributions, read once per plugin load


def distribution_of(module: str) -> str:
    """The distribution that installs ``module``'s top-level package, or ``'?'`` (a script, a test module)."""
    global _DISTRIBUTIONS
    if _DISTRIBUTIONS is None:
        _DISTRIBUTIONS = packages_distributions()
    found = _DISTRIBUTIONS.get(module.split(".")[0])
    return found[0] if found else "?"


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


class Registry:
    """Name -> class, per kind, strict about duplicates."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self.plugins: dict[str, PluginInfo] = {}
        #: names in ``$MANNKIT_DISABLE_PLUGINS`` that match no installed plugin (a misspelling, reported)
        self.unknown_disabled: list[str] = []
        self._loaded = False

    # -- registration -------------------------------------------------------------------
    def register(self, cls: C, *, name: str | None = None, kind: str | None = None) -> C:
        """Register ``cls`` under ``name`` (default: its class name); return ``cls`` (usable as a decorator)."""
        kind = kind or _kind_of(cls)
        if kind not in self._entries:
            raise PluginError(f"register: kind '{kind}' is not one of {', '.join(KINDS)}.")
        name = name or cls.__name__
        plugin, dist = self.source_of(cls)
        new = Entry(name, kind, cls, plugin, dist)
        old = self._entries[kind].get(name)
        if old is not None:
            if old.cls is cls:
                return cls
            if old.distribution == "mannkit" and new.distribution != "mannkit":
                instead = "" if old.plugin == "mannkit" else f", or set {DISABLE_ENV}={old.plugin} to use it in place of the built-in"
                raise PluginError(
                    f"its {kind} {new.source} takes the name '{name}' of the built-in {old.source}, "
                    f"so the built-in is kept and this plugin is not loaded; rename the class (or register it "
                    f"with name=...){instead}."
                )
            raise PluginError(
                f"the {kind} name '{name}' is registered twice: by {old.source} and by {new.source}; "
                f"rename one of them or disable one plugin with {DISABLE_ENV}."
            )
        self._entries[kind][name] = new
        if plugin in self.plugins:
            self.plugins[plugin].registered.append(f"{kind}:{name}")
        return cls

    def source_of(self, cls: type) -> tuple[str, str]:
        """``(plugin, distribution)`` that define ``cls``, from its module (``'?'`` where none is known)."""
        module = cls.__module__
        for info in self.plugins.values():
            if _within(module, info.module):
                found = distribution_of(module)
                return info.name, found if found != "?" else info.distribution
        if _within(module, "mannkit"):
            return "mannkit", distribution_of(module) if distribution_of(module) != "?" else "mannkit"
        return "?", distribution_of(module)

    # -- look-up ------------------------------------------------------------------------
    def names(self, kind: str | None = None) -> list[str]:
        """Registered short names of one kind (or of all kinds), sorted."""
        kinds = [kind] if kind else list(self._entries)
        return sorted(n for k in kinds for n in self._entries[k])

    def entries(self, kind: str | None = None) -> Iterator[Entry]:
        kinds = [kind] if kind else list(self._entries)
        for k in kinds:
            yield from (self._entries[k][n] for n in sorted(self._entries[k]))

    def get(self, name: str, kind: str | None = None) -> type:
        """Return the class registered as ``name``; raise a :class:`ConfigError` with a suggestion if unknown."""
        kinds = [kind] if kind else list(self._entries)
        for k in kinds:
            if name in self._entries[k]:
                return self._entries[k][name].cls
        owner = self.disabled_owner(name)
        if owner is not None:
            raise DisabledPluginError(
                f"'{name}' is a class of the plugin '{owner}', which {DISABLE_ENV} disables; remove '{owner}' "
                f"from {DISABLE_ENV} to use it."
            )
        what = f"{kind} " if kind else ""
        hint = suggest(name, self.names(kind))
        listing = " Run" if hint else "; run"
        raise ConfigError(f"unknown {what}class '{name}'{hint}{listing} 'mannkit plugins' to list the registered names.")

    def disabled_owner(self, name: str) -> str | None:
        """The disabled plugin whose source defines a class ``name`` (read, never imported), or None."""
        pattern = re.compile(rf"^class {re.escape(name)}\b", re.MULTILINE)
        for info in self.plugins.values():
            if info.disabled and any(pattern.search(text) for text in _sources(info.module)):
                return info.name
        return None

    def create(self, name: str, kind: str | None = None, **kwargs: Any) -> Any:
        """Instantiate the class registered as ``name`` with ``kwargs``."""
        return self.get(name, kind)(**kwargs)

    def __contains__(self, name: str) -> bool:
        return any(name in entries for entries in self._entries.values())

    # -- plugins ------------------------------------------------------------------------
    def load_plugins(self, disabled: list[str] | None = None, *, force: bool = False) -> dict[str, PluginInfo]:
        """Import every ``mannkit.plugins`` entry point once; failures are recorded and warned, never raised.

        ``disabled`` (default: the comma-separated names in ``$MANNKIT_DISABLE_PLUGINS``) are skipped.
        """
        if self._loaded and not force:
            return self.plugins
        global _DISTRIBUTIONS
        _DISTRIBUTIONS = None  # distributions may have been installed since the last load
        import mannkit.nn  # noqa: F401  (core built-ins register first)

        if disabled is None:
            disabled = [s.strip() for s in os.environ.get(DISABLE_ENV, "").split(",") if s.strip()]
        # built-in plugins first, so that a third-party class cannot take a built-in's name
        eps = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: not _is_builtin(ep))
        self.unknown_disabled = [name for name in disabled if name not in {ep.name for ep in eps}]
        for name in self.unknown_disabled:
            hint = suggest(name, [ep.name for ep in eps])
            warnings.warn(
                f"{DISABLE_ENV} names '{name}', which is no installed plugin{hint} (installed: "
                f"{', '.join(sorted(ep.name for ep in eps)) or 'none'}); correct the name in {DISABLE_ENV}.",
                PluginWarning,
                stacklevel=2,
            )
        for ep in eps:
            info = PluginInfo(name=ep.name, module=ep.value)
            if ep.dist is not None:
                info.distribution, info.version = ep.dist.name, ep.dist.version
            self.plugins[ep.name] = info
            if ep.name in disabled:
                info.disabled = True
                continue
            before = {kind: set(entries) for kind, entries in self._entries.items()}
            try:
                module = importlib.import_module(ep.value)
                api = getattr(module, "MANNKIT_API", None)
                if api != API_VERSION:
                    raise PluginError(
                        f"it declares MANNKIT_API = {api!r} but this mannkit has interface version {API_VERSION}"
                    )
                self._claim(module.__name__, info)
            except Exception as exc:  # a broken plugin must not break unrelated runs
                for kind, entries in self._entries.items():  # nothing of a plugin that failed stays registered
                    for added in set(entries) - before[kind]:
                        if entries[added].plugin == ep.name:  # core classes it imported stay
                            del entries[added]
                info.registered.clear()
                info.error = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"mannkit plugin '{ep.name}' from '{info.distribution}' failed to load ({info.error}); "
                    f"runs that do not use it are unaffected, and 'mannkit plugins' shows the details.",
                    PluginWarning,
                    stacklevel=2,
                )
        self._loaded = True
        return self.plugins

    def _claim(self, module: str, info: PluginInfo) -> None:
        """Attribute to ``info`` every entry defined under ``module``, also those registered before this load
        (the module was imported directly, or this is a forced reload of an already imported plugin)."""
        for entries in self._entries.values():
            for entry in entries.values():
                if _within(entry.cls.__module__, module):
                    entry.plugin, entry.distribution = self.source_of(entry.cls)
                    item = f"{entry.kind}:{entry.name}"
                    if item not in info.registered:
                        info.registered.append(item)


def _is_builtin(ep: Any) -> bool:
    """Whether an entry point comes with mannkit itself (its distribution, or its package's, is mannkit)."""
    dist = ep.dist.name if ep.dist is not None else distribution_of(ep.value)
    return dist == "mannkit"


def _sources(module: str) -> Iterator[str]:
    """The text of every .py file of ``module`` (a package or one file), found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return
    if spec is None:
        return
    from pathlib import Path

    if spec.submodule_search_locations:
        files = [f for d in spec.submodule_search_locations for f in sorted(Path(d).rglob("*.py"))]
    else:
        files = [Path(spec.origin)] if spec.origin and spec.origin.endswith(".py") else []
    for path in files:
        try:
            yield path.read_text(errors="replace")
        except OSError:
            continue


registry = Registry()


def register(cls: C | None = None, *, name: str | None = None, kind: str | None = None) -> Any:
    """Class decorator: ``@register`` or ``@register(name="X", kind="head")``."""
    if cls is None:
        return lambda c: registry.register(c, name=name, kind=kind)
    return registry.register(cls, name=name, kind=kind)


def load_plugins(disabled: list[str] | None = None) -> dict[str, PluginInfo]:
    """Load every installed plugin once (see :meth:`Registry.load_plugins`)."""
    return registry.load_plugins(disabled)
