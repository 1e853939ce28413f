"""Components that can turn themselves back into ``{class_path, init_args}``.

Every mannkit component records the arguments of its constructor. ``to_config()``
returns them as plain data (nested components become nested ``class_path`` dicts),
which is what checkpoints store, so a model built in Python, from YAML or from a
checkpoint saves and reloads the same way, with ``weights_only`` loading.

>>> from mannkit.nn import LSTMController
>>> LSTMController(hidden_size=7).to_config()["init_args"]["hidden_size"]
7
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from mannkit.core.errors import ConfigError

__all__ = ["Configurable", "to_config", "instantiate", "resolve_class"]

_PRIMITIVES = (str, int, float, bool, type(None))


def to_config(value: Any, where: str = "value") -> Any:
    """Turn a component, or a list/dict/primitive holding components, into plain data."""
    if isinstance(value, Configurable):
        return value.to_config()
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, (list, tuple)):
        return [to_config(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): to_config(v, f"{where}.{k}") for k, v in value.items()}
    raise ConfigError(
        f"{where}: a {type(value).__name__} cannot be saved in a config; pass numbers, strings, lists or mannkit components."
    )


class Configurable:
    """Mixin recording the outermost constructor call's arguments (``_init_config``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_mannkit_records", False):
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kw: Any) -> None:
            if "_init_config" not in self.__dict__:
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop(next(iter(signature.parameters)))  # self
                self.__dict__["_init_config"] = arguments
            init(self, *args, **kw)

        __init__._mannkit_records = True  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[misc]

    def to_config(self) -> dict[str, Any]:
        """``{"class_path": "pkg.module.Class", "init_args": {...}}`` with nested components expanded."""
        cls = type(self)
        args = self.__dict__.get("_init_config", {})
        return {
            "class_path": f"{cls.__module__}.{cls.__qualname__}",
            "init_args": {k: to_config(v, f"{cls.__name__}.{k}") for k, v in args.items()},
        }


def resolve_class(path: str, where: str = "class_path") -> type:
    """A dotted import path or a registered short name -> class."""
    if "." in path:
        module_name, _, name = path.rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):
            pass
    from mannkit.core.registry import registry

    registry.load_plugins()
    try:
        return registry.get(path.rpartition(".")[2])
    except ConfigError as exc:
        raise type(exc)(f"{where}: {exc}") from None  # the kind kept (a class of a disabled plugin)


def instantiate(config: Any, where: str = "config") -> Any:
    """Build components from plain data: every dict with a ``class_path`` becomes an object, recursively."""
    if isinstance(config, Mapping) and "class_path" in config:
        unknown = set(config) - {"class_path", "init_args"}
        if unknown:
            raise ConfigError(f"{where}: unexpected keys {sorted(unknown)} beside class_path; put options under init_args.")
        cls = resolve_class(str(config["class_path"]), f"{where}.class_path")
        init_args = config.get("init_args") or {}
        kwargs = {k: instantiate(v, f"{where}.init_args.{k}") for k, v in init_args.items()}
        try:
            inspect.signature(cls).bind(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{where}: {cls.__name__} does not accept these options ({exc}).") from None
        return cls(**kwargs)
    if isinstance(config, list):
        return [instantiate(v, f"{where}[{i}]") for i, v in enumerate(config)]
    if isinstance(config, Mapping):
        return {k: instantiate(v, f"{where}.{k}") for k, v in config.items()}
    return config
