"""Stopping training that went wrong: a NaN/inf loss, a diverging loss, non-finite weights.

Every stop raises :class:`~mannkit.core.errors.TrainingError` with one sentence: what happened, at
which step, the newest checkpoint whose weights were *checked* to be finite (or that there is none),
and the fix. Under DDP the ranks agree first (``reduce_boolean_decision``), so one rank's bad value
stops all of them together instead of leaving the others waiting in the gradient sync.

- :func:`stop_if_not_finite` is the NaN stop that both systems call in ``training_step`` (before
  the backward pass, so the weights in memory stay finite);
- :class:`TrainingGuard` (a callback the ``mannkit`` command adds unless the config lists one) stops a
  loss that stays finite but diverges (above ``max_loss``, or ``growth`` times the smallest loss of the
  last ``window`` steps) and weights that an optimizer step made NaN or inf.
"""

from __future__ import annotations

import math
import os
from collections import deque
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from mannkit.callbacks.checkpoint_io import CheckpointError, non_finite_tensors, read_checkpoint
from mannkit.core.errors import ConfigError, TrainingError
from mannkit.core.registry import register

__all__ = ["TrainingGuard", "agree", "newest_finite_checkpoint", "stop_if_not_finite", "stop_message", "weights_finite"]

_FIX = "lower the learning rate or set trainer.gradient_clip_val"


def agree(trainer: pl.Trainer | None, ok: bool) -> bool:
    """``ok`` on every rank (DDP: all ranks must agree; one process: ``ok`` itself)."""
    if trainer is not None and trainer.world_size > 1:
        return bool(trainer.strategy.reduce_boolean_decision(ok, all=True))
    return ok


def weights_finite(module: torch.nn.Module) -> bool:
    """Whether every floating-point parameter and buffer of ``module`` is finite."""
    flags = [torch.isfinite(t).all() for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    if not flags:
        return True
    if len({f.device for f in flags}) == 1:
        return bool(torch.stack(flags).all())  # one device sync per call, not one per tensor
    return all(bool(f) for f in flags)


def newest_finite_checkpoint(trainer: pl.Trainer | None) -> tuple[str | None, bool]:
    """The newest checkpoint file of the trainer's checkpoint callbacks whose weights load and are finite.

    Returns ``(path or None, whether any checkpoint file exists at all)``; each candidate is read back
    (newest first) before it is named, so a message never vouches for a file holding NaN or inf.
    """
    candidates: set[str] = set()
    for callback in getattr(trainer, "checkpoint_callbacks", []) if trainer is not None else []:
        for name in ("last_model_path", "best_model_path"):
            if getattr(callback, name, None):
                candidates.add(str(getattr(callback, name)))
        candidates |= {str(p) for p in getattr(callback, "best_k_models", {}) or {}}
    existing = [p for p in candidates if os.path.isfile(p)]
    for path in sorted(existing, key=os.path.getmtime, reverse=True):
        try:
            checkpoint = read_checkpoint(path, field="checkpoint")
        except CheckpointError:
            continue
        if not non_finite_tensors(checkpoint["state_dict"]):
            return path, True
    return None, bool(existing)


def stop_message(trainer: pl.Trainer | None, what: str, step: int, fix: str = _FIX) -> str:
    """``"<what> at step <step>; <the newest finite checkpoint>; <fix>."`` (one sentence)."""
    path, any_written = newest_finite_checkpoint(trainer)
    if path is not None:
        where = f"the last good checkpoint is {path} and is left intact"
    elif any_written:
        where = "no checkpoint with finite weights was written"
    else:
        where = "no checkpoint was written yet"
    return f"{what} at step {step}; {where}; {fix}."


def stop_if_not_finite(module: pl.LightningModule, loss: Tensor) -> None:
    """The NaN stop: raise :class:`TrainingError` when ``loss`` is NaN or inf on any rank (call before backward)."""
    trainer = module._trainer
    if agree(trainer, bool(torch.isfinite(loss))):
        return
    what = f"the training loss became {loss.item()}"
    gather = getattr(getattr(trainer, "strategy", None), "all_gather", None)
    if trainer is not None and trainer.world_size > 1 and gather is not None:
        # every rank is here together (the decision above is shared), so one more collective is safe:
        # the message names the rank whose loss went bad, not this rank's finite one
        losses = gather(loss.detach().reshape(())).reshape(-1)
        bad = [f"{value.item()} on rank {rank}" for rank, value in enumerate(losses) if not torch.isfinite(value)]
        what = f"the training loss became {' and '.join(bad)}"
    raise TrainingError(stop_message(trainer, what, module.global_step))


@register
class TrainingGuard(Callback):
    """Stops a diverging loss and non-finite weights with one sentence (see the module docstring).

    Args:
        max_loss: stop when the training loss exceeds this (null: no bound). The presets' losses stay below 10.
        growth: stop when the loss exceeds ``growth`` x the smallest loss of the last ``window`` steps
            (that minimum counted as at least ``floor``); null turns this rule off.
        window: how many recent steps the minimum is taken over.
        floor: the smallest minimum the growth rule uses, so a converged loss of 1e-7 does not make 0.01 a divergence.
        check_weights: after each optimizer step, stop if a weight became NaN or inf.
        enabled: false turns the whole guard off (the systems' NaN-loss stop stays).
    """

    def __init__(
        self,
        max_loss: float | None = 1e6,
        growth: float | None = 1e6,
        window: int = 200,
        floor: float = 1e-3,
        check_weights: bool = True,
        enabled: bool = True,
    ) -> None:
        for name, value in (("max_loss", max_loss), ("growth", growth)):
            if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ConfigError(f"TrainingGuard: {name} must be a positive number or null, got {value!r}; e.g. {name}: 1.0e+6.")
        if growth is not None and growth <= 1:
            raise ConfigError(f"TrainingGuard: growth must be above 1, got {growth!r}; e.g. growth: 1.0e+6, or null to turn it off.")
        if not isinstance(window, int) or window < 1:
            raise ConfigError(f"TrainingGuard: window must be a positive integer, got {window!r}; e.g. window: 200.")
        if not floor > 0:
            raise ConfigError(f"TrainingGuard: floor must be above 0, got {floor!r}; e.g. floor: 1.0e-3.")
        self.max_loss, self.growth, self.window, self.floor = max_loss, growth, window, float(floor)
        self.check_weights, self.enabled = check_weights, enabled
        self.recent: deque[float] = deque(maxlen=window)

    def _divergence(self, value: float) -> str | None:
        if self.max_loss is not None and value > self.max_loss:
            return f"the training loss reached {value:.4g}, above max_loss {self.max_loss:.4g}"
        if self.growth is not None and self.recent:
            reference = max(min(self.recent), self.floor)
            if value > self.growth * reference:
                return (
                    f"the training loss reached {value:.4g}, more than growth {self.growth:.4g} times its recent minimum "
                    f"{min(self.recent):.4g}"
                )
        return None

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor) -> None:
        """Stop before the backward pass when the (finite) loss diverged on any rank."""
        if not self.enabled:
            return
        value = float(loss.detach())
        reason = self._divergence(value) if math.isfinite(value) else None
        if not agree(trainer, reason is None):
            what = reason or "the training loss diverged on another process"
            fix = f"{_FIX}, or loosen TrainingGuard (max_loss, growth; enabled: false turns it off)"
            raise TrainingError(stop_message(trainer, what, trainer.global_step, fix))
        if math.isfinite(value):
            self.recent.append(value)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Stop when the optimizer step made a weight NaN or inf (before any validation could save it)."""
        if self.enabled and self.check_weights and not agree(trainer, weights_finite(pl_module)):
            what = "the optimizer step made weights NaN or inf"
            raise TrainingError(stop_message(trainer, what, trainer.global_step))

    def state_dict(self) -> dict[str, Any]:
        """The recent losses, so a resumed run keeps its divergence reference."""
        return {"recent": list(self.recent)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the recent losses saved by :meth:`state_dict`."""
        self.recent = deque(state_dict.get("recent", []), maxlen=self.window)
