"""What both systems do to build their optimizer and learning-rate scheduler from plain config dicts.

A system keeps ``{"class_path": ..., "init_args": {...}}`` for its optimizer (and optionally its
scheduler) as plain data in its hyperparameters, so checkpoints load with ``weights_only``; these
helpers resolve and build them, with one-sentence errors that name the field.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import torch

from mannkit.core.errors import ConfigError, suggest

__all__ = ["DEFAULT_OPTIMIZER", "torch_class", "check_optimizer", "build_optimization"]

DEFAULT_OPTIMIZER = {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-3}}


def torch_class(path: str, module: ModuleType, where: str) -> type:
    """A full dotted class path, or a short name from ``module`` (``torch.optim`` or its ``lr_scheduler``).

    Optimizers and schedulers are not mannkit components, so the registry does not know them.
    """
    if "." in path:
        module_name, _, name = path.rpartition(".")
        try:
            found = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError, ValueError):  # ValueError: an empty module name (".Adam")
            found = None
    else:
        name, found = path, getattr(module, path, None)
    if isinstance(found, type):
        return found
    names = [n for n, v in vars(module).items() if isinstance(v, type) and not n.startswith("_")]
    hint = suggest(name, names)  # "; did you mean 'X'?" or ""
    fix = f"give a class of {module.__name__} by its name or a full dotted class path."
    fix = f" {fix[0].upper()}{fix[1:]}" if hint else f"; {fix}"
    raise ConfigError(f"{where}: unknown class {path!r}{hint}{fix}")


_OPTION_HINTS = {"lr": "a learning rate is a positive number such as 0.001"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_optimizer(config: Mapping[str, Any], where: str = "model.optimizer", scheduler: bool = False) -> dict[str, Any]:
    """Check an optimizer (or, with ``scheduler``, a scheduler) config before anything runs; return a clean copy.

    Keys beside ``class_path`` and ``init_args`` move into ``init_args``: a dotted command-line override such
    as ``--model.init_args.optimizer.init_args.lr 100`` reaches a plain ``dict`` argument as ``{"lr": "100"}``
    beside ``init_args`` (jsonargparse drops the ``init_args.`` of a dict's key), and its string value is read
    as YAML. An optimizer is then built on a one-element parameter, so a value torch refuses (a negative or
    a text learning rate) fails here with one sentence naming the field and the value.

    >>> check_optimizer({"class_path": "AdamW", "init_args": {"lr": 0.01}, "weight_decay": "0.5"})["init_args"]
    {'lr': 0.01, 'weight_decay': 0.5}
    >>> check_optimizer({"class_path": "Adam", "init_args": {"lr": "fast"}})
    Traceback (most recent call last):
    ...
    mannkit.core.errors.ConfigError: model.optimizer.init_args.lr: expected a number, got 'fast'; a learning rate is a positive number such as 0.001.
    """
    if not isinstance(config, Mapping) or "class_path" not in config:
        raise ConfigError(
            f"{where}: expected a mapping with class_path (and init_args), got {config!r}; "
            "write e.g. {class_path: Adam, init_args: {lr: 0.001}}."
        )
    init_args = config.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        raise ConfigError(f"{where}.init_args must be a mapping of option names to values, got {init_args!r}.")
    init_args = dict(init_args)
    for key, value in config.items():
        if key not in ("class_path", "init_args", "__path__"):
            init_args[str(key)] = _command_line_value(value)
    module = torch.optim.lr_scheduler if scheduler else torch.optim
    cls = torch_class(str(config["class_path"]), module, f"{where}.class_path")
    params = inspect.signature(cls.__init__).parameters
    for key, value in init_args.items():
        param = params.get(key)
        if param is None and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            accepted = [n for n in params if n not in ("self", "params", "optimizer")]
            raise ConfigError(
                f"{where}.init_args.{key}: {cls.__name__} has no option '{key}'{suggest(key, accepted)} "
                f"(its options: {', '.join(accepted)})."
            )
        if param is not None and _is_number(param.default) and isinstance(value, str):  # lists (min_lr per group) pass
            hint = _OPTION_HINTS.get(key, f"write a number like its default {param.default}")
            raise ConfigError(f"{where}.init_args.{key}: expected a number, got {value!r}; {hint}.")
    if not scheduler:
        _try_build(cls, init_args, where)
    path = str(config["class_path"])  # a short name spelt out, so that jsonargparse can import it
    return {"class_path": path if "." in path else f"{module.__name__}.{path}", "init_args": init_args}


def _command_line_value(value: Any) -> Any:
    """A command-line string read as YAML (``'100'`` -> 100, ``'1e-3'`` -> 0.001); anything else as it is."""
    if not isinstance(value, str):
        return value
    import yaml

    try:
        loaded = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    if isinstance(loaded, str):
        try:
            return float(loaded)  # YAML 1.1 reads 1e-3 (no dot) as text
        except ValueError:
            return loaded
    return loaded


def _try_build(cls: type, init_args: Mapping[str, Any], where: str) -> None:
    """Build ``cls`` on one parameter; a refused value names the option that alone is refused (else all of them)."""

    def refusal(kwargs: Mapping[str, Any]) -> Exception | None:
        try:
            cls([torch.nn.Parameter(torch.zeros(1))], **kwargs)
        except (ValueError, TypeError, RuntimeError) as exc:
            return exc
        return None

    exc = refusal(init_args)
    if exc is None:
        return
    for key, value in init_args.items():
        alone = refusal({key: value})
        if alone is not None:
            hint = _OPTION_HINTS.get(key, "give a value it accepts")
            raise ConfigError(f"{where}.init_args.{key}: {cls.__name__} refuses {value!r} ({alone}); {hint}.")
    raise ConfigError(f"{where}.init_args: {cls.__name__} refuses {dict(init_args)!r} together ({exc}); change one of them.")


def build_optimization(
    parameters: Iterable[torch.nn.Parameter],
    optimizer_config: Mapping[str, Any],
    scheduler_config: Mapping[str, Any] | None,
    monitor: str = "val/loss",
) -> Any:
    """The optimizer (and scheduler) for ``LightningModule.configure_optimizers``.

    Args:
        parameters: what to optimise.
        optimizer_config: ``{"class_path": ..., "init_args": {...}}`` of a ``torch.optim`` optimizer.
        scheduler_config: the same for a ``torch.optim.lr_scheduler`` class, or None.
        monitor: the logged metric a ``ReduceLROnPlateau`` scheduler watches.

    Returns:
        The optimizer, or ``{"optimizer": ..., "lr_scheduler": {"scheduler": ..., ("monitor": ...)}}``.
    """
    cls = torch_class(optimizer_config["class_path"], torch.optim, "model.optimizer.class_path")
    try:
        optimizer = cls(parameters, **(optimizer_config.get("init_args") or {}))
    except TypeError as exc:
        raise ConfigError(f"model.optimizer.init_args do not fit {cls.__name__} ({exc}); check the option names.") from None
    except ValueError:  # a value torch refuses, e.g. a negative learning rate: one sentence naming it
        check_optimizer(optimizer_config)
        raise
    if scheduler_config is None:
        return optimizer
    scheduler_cls = torch_class(scheduler_config["class_path"], torch.optim.lr_scheduler, "model.lr_scheduler.class_path")
    try:
        scheduler = scheduler_cls(optimizer, **(scheduler_config.get("init_args") or {}))
    except TypeError as exc:
        raise ConfigError(
            f"model.lr_scheduler.init_args do not fit {scheduler_cls.__name__} ({exc}); check the option names."
        ) from None
    config: dict[str, Any] = {"scheduler": scheduler}
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        config["monitor"] = monitor
    return {"optimizer": optimizer, "lr_scheduler": config}
