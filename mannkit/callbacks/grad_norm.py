"""GradNormMonitor: logs the total gradient norm at the optimizer steps the logger writes, with Lightning's own ``grad_norm``.

``mannkit fit`` adds one by default (``--grad_norm``, off with ``--grad_norm null``), next to Lightning's
``LearningRateMonitor`` (``--lr_monitor``, off with ``--lr_monitor null``); in plain Python add it to the
trainer's callbacks. The norm is taken in ``on_before_optimizer_step``, that is after the backward pass
(and after unscaling in mixed precision) but *before* ``trainer.gradient_clip_val`` clips the gradients,
so it shows how large the gradients really were.

>>> import torch
>>> from lightning.pytorch.utilities import grad_norm
>>> layer = torch.nn.Linear(2, 1, bias=False)
>>> layer.weight.grad = torch.tensor([[3.0, 4.0]])
>>> float(grad_norm(layer, 2)["grad_2.0_norm_total"])  # what the callback logs: sqrt(3^2 + 4^2)
5.0
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import grad_norm

from mannkit.callbacks.monitor import logs_now
from mannkit.core.errors import ConfigError
from mannkit.core.registry import register

__all__ = ["GradNormMonitor"]


@register
class GradNormMonitor(Callback):
    """Log the p-norm of all gradients together (the parameters viewed as one vector) at each optimizer step.

    Logged as ``name`` (``train/grad_norm`` by default) with ``on_step=True``, and computed only on
    the steps the logger writes (every ``trainer.log_every_n_steps``, see
    :func:`~mannkit.callbacks.monitor.logs_now`): nothing is computed on the others, nor when the
    trainer has no logger.

    Args:
        norm_type: p of the norm: a positive number, or ``inf`` for the largest absolute gradient.
        name: the logged scalar's name.
        per_parameter: also log each parameter's norm (``{name}/<parameter name>``); off by default
            because a model has many parameters.
    """

    def __init__(self, norm_type: float | str = 2.0, name: str = "train/grad_norm", per_parameter: bool = False) -> None:
        super().__init__()
        try:
            p = float(norm_type)
        except (TypeError, ValueError):
            p = math.nan
        if not p > 0:
            raise ConfigError(f"GradNormMonitor: norm_type must be a positive number or 'inf', got {norm_type!r}; use 2.0.")
        if not name:
            raise ConfigError("GradNormMonitor: name must be a non-empty string, got ''; use train/grad_norm.")
        self.norm_type, self.name, self.per_parameter = p, name, bool(per_parameter)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if not trainer.loggers or not logs_now(trainer):
            return
        norms = grad_norm(pl_module, self.norm_type)  # {"grad_2.0_norm/<param>": ..., "grad_2.0_norm_total": ...}
        total = norms.pop(f"grad_{self.norm_type}_norm_total", None)
        if total is None:  # no parameter has a gradient (e.g. a frozen model)
            return
        pl_module.log(self.name, total, on_step=True, on_epoch=False)
        if self.per_parameter:
            prefix = f"grad_{self.norm_type}_norm/"
            for key, value in norms.items():
                pl_module.log(f"{self.name}/{key.removeprefix(prefix)}", value, on_step=True, on_epoch=False)
