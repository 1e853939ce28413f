"""What both systems do to build their optimizer and learning-rate scheduler from plain config dicts.

A system keeps ``{"class_path": ..., "init_args": {...}}`` for its optimizer (and optionally its
scheduler) as plain data in its hyperparameters, so checkpoints load with ``weights_only``; these
helpers resolve and build them, with one-sentence errors that name the field.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import torch

from mannkit.core.errors import ConfigError, suggest

__all__ = ["DEFAULT_OPTIMIZER", "torch_class", "build_optimization"]

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
