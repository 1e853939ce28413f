"""LowerLROnTarget: once a validation metric reaches its target, multiply the learning rate by ``factor``.

Why (benchmarks/RESULTS.md, "Converged models stay converged"): a converged copy model's loss keeps
falling (bits per sequence 0.3 -> 0.01) and Adam keeps taking steps of about lr whatever the size of the
gradient: the weights random-walk, the outputs grow ever more confident, and some thousand steps later
some inputs are answered confidently wrong (a batch loss of 2 against 0.0003) and validation is back near
chance. A smaller learning rate once the target is met (the usual fine-tuning schedule) keeps the solution.

The rule, after each validation (not the sanity check), on every parameter group of every optimizer::

    if not yet lowered and monitor < threshold (mode "min"; > for "max"):
        lr *= factor                       # once: a second drop is a second callback (another threshold)

With a curriculum the target must be met at the last level, not at the first (a copy model is below 1
bit at lengths 1-5 long before it can copy 20): ``level: "max_length>=20"`` counts only validations that
ran while the task's ``max_length`` was at least 20 (read when validation starts, since ``Curriculum``
raises the level in the same hook as this one checks the target).

The lowered rate lives in the optimizer, so it is saved in checkpoints and comes back on resume; the
callback's own flag is saved too. Lightning's ``LearningRateMonitor`` (on by default in ``mannkit fit``)
logs the rate, and one line is printed when it drops.

>>> LowerLROnTarget(monitor="val/bits_per_seq", threshold=1.0, factor=0.1).factor
0.1
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from mannkit.callbacks.monitor import monitored
from mannkit.core.errors import ConfigError
from mannkit.core.registry import register

__all__ = ["LowerLROnTarget"]


def _parse_level(level: str | None) -> tuple[str | None, float | None]:
    """``"max_length>=20"`` -> ``("max_length", 20.0)``; None -> ``(None, None)``."""
    if level is None:
        return None, None
    attribute, sep, value = level.partition(">=") if isinstance(level, str) else ("", "", "")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or not attribute.strip().isidentifier() or not math.isfinite(number):
        raise ConfigError(
            f"LowerLROnTarget: level must read ATTRIBUTE>=NUMBER, got {level!r}; use e.g. \"max_length>=20\" or leave it out."
        )
    return attribute.strip(), number


@register
class LowerLROnTarget(Callback):
    """Multiply every learning rate by ``factor`` the first time ``monitor`` passes ``threshold`` at validation.

    Args:
        monitor: a logged validation metric, e.g. ``val/bits_per_seq``.
        threshold: the target; with ``mode: min`` it is met below it, with ``mode: max`` above it.
        factor: the multiplier, in (0, 1).
        mode: ``min`` or ``max``.
        level: optional ``"ATTR>=VALUE"``: count only validations run while the task's (data module's)
            attribute ``ATTR`` was at least ``VALUE``, e.g. ``"max_length>=20"`` under a ``Curriculum``.
    """

    def __init__(
        self, monitor: str = "val/bits_per_seq", threshold: float = 1.0, factor: float = 0.1, mode: str = "min",
        level: str | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("min", "max"):
            raise ConfigError(f"LowerLROnTarget: mode must be min or max, got {mode!r}; use min for a cost, max for an accuracy.")
        if not (isinstance(factor, (int, float)) and not isinstance(factor, bool) and 0 < factor < 1):
            raise ConfigError(f"LowerLROnTarget: factor must be a number between 0 and 1, got {factor!r}; use e.g. 0.1.")
        if not (isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and math.isfinite(threshold)):
            raise ConfigError(f"LowerLROnTarget: threshold must be a finite number, got {threshold!r}; use e.g. 1.0.")
        self.monitor, self.threshold, self.factor, self.mode = monitor, float(threshold), float(factor), mode
        self.level = level
        self.level_attribute, self.level_value = _parse_level(level)
        self.level_seen: float | None = None  # the attribute's value when the current validation started
        self.lowered_at: int | None = None

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the target."""
        return value < self.threshold if self.mode == "min" else value > self.threshold

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.level_attribute is None:
            return
        data = getattr(trainer, "datamodule", None)
        value = getattr(data, self.level_attribute, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            choices = list(getattr(data, "difficulty_attributes", ()))
            raise ConfigError(
                f"LowerLROnTarget: level {self.level!r} names '{self.level_attribute}', which is not a number on the task "
                f"{type(data).__name__}; name one of its difficulty attributes {choices} or leave level out."
            )

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.level_attribute is not None:
            self.level_seen = float(getattr(trainer.datamodule, self.level_attribute))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.lowered_at is not None:
            return
        if self.level_attribute is not None and (self.level_seen is None or self.level_seen < self.level_value):
            return  # below the last level: the target there says nothing about the task the run is for
        value = monitored(trainer, self.monitor, "LowerLROnTarget")
        if not self.met(value):
            return
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] *= self.factor
        self.lowered_at = trainer.global_step
        rank_zero_info(
            f"LowerLROnTarget: {self.monitor} = {value:.4g} met the target {self.threshold:g} at step "
            f"{trainer.global_step}; learning rate x {self.factor:g} from now on."
        )

    @property
    def state_key(self) -> str:
        """Unique per setting, so that two drops (e.g. x 0.1 below 1 bit, again below 0.1 bit) each keep their flag."""
        extra = {} if self.level is None else {"level": self.level}  # keys of checkpoints saved before `level` stay valid
        return self._generate_state_key(monitor=self.monitor, threshold=self.threshold, factor=self.factor, mode=self.mode, **extra)

    def state_dict(self) -> dict[str, Any]:
        return {"lowered_at": self.lowered_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.lowered_at = state_dict.get("lowered_at")
