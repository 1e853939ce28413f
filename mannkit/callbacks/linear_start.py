"""MemN2N's linear start: train without the attention softmax until the validation loss stops falling.

Sukhbaatar et al. (2015, sec. 4.2) remove the softmax of every hop at the start of training, so
the weights are the raw scores, and re-insert it once the validation loss stops decreasing; some
tasks that otherwise get stuck in a poor local minimum then train. The model owns the switch: a
model that supports it has ``set_linear_start(flag: bool)`` (e.g. ``MemN2N``); this callback decides when.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import Callback

from mannkit.callbacks.monitor import monitored
from mannkit.core.errors import ConfigError
from mannkit.core.registry import register

__all__ = ["LinearStart"]


def _switchable(pl_module: Any) -> Any:
    """The module whose ``set_linear_start`` to call: the system's ``model`` (a QAModel), or the system itself."""
    for candidate in (getattr(pl_module, "model", None), pl_module):
        if callable(getattr(candidate, "set_linear_start", None)):
            return candidate
    return None


@register
class LinearStart(Callback):
    """Start training with ``model.set_linear_start(True)``; call ``set_linear_start(False)`` when ``monitor`` stops falling.

    After each validation (the sanity check excepted) the monitored value is compared with the best so
    far: lower by more than ``min_delta`` is progress; after ``patience + 1`` validations in a row without
    progress, the softmax is inserted for good (one printed line; ``linear_start/active`` is logged after
    each validation while active: 1, and 0 at the switch). The state (active or not, best value, count) is saved in checkpoints, so a
    resumed run stays where it was: a run resumed after the switch keeps the softmax.

    Args:
        monitor: the logged validation metric to watch (lower is better).
        patience: extra validations in a row without progress before the softmax is inserted (0: the
            first validation that does not improve ends linear start).
        min_delta: how much lower than the best a value must be to count as progress.
    """

    def __init__(self, monitor: str = "val/loss", patience: int = 0, min_delta: float = 0.0) -> None:
        super().__init__()
        if not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"LinearStart: patience must be 0 or more, got {patience!r}.")
        if not min_delta >= 0.0:
            raise ConfigError(f"LinearStart: min_delta must be 0 or more, got {min_delta!r}.")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.active = True  # the model runs without its softmax
        self.best: float | None = None
        self.stalled = 0  # validations in a row without progress
        self.ended_at_step: int | None = None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit" and _switchable(pl_module) is None:
            model = getattr(pl_module, "model", pl_module)
            raise ConfigError(
                f"LinearStart: the model {type(model).__name__} has no set_linear_start(flag); remove the callback or "
                "use a model with linear start, such as MemN2N."
            )

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:  # after any checkpoint is restored
        _switchable(pl_module).set_linear_start(self.active)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or not self.active:
            return
        value = monitored(trainer, self.monitor, "LinearStart")
        if self.best is None or value < self.best - self.min_delta:
            self.best, self.stalled = value, 0
        else:
            self.stalled += 1
        if self.stalled > self.patience:
            self.active, self.ended_at_step = False, trainer.global_step
            _switchable(pl_module).set_linear_start(False)
            if trainer.is_global_zero:
                print(
                    f"mannkit: linear start ended at step {trainer.global_step} ({self.monitor} {value:.4g}, best {self.best:.4g}); "
                    "the softmax is back in"
                )
        for logger in trainer.loggers:
            logger.log_metrics({"linear_start/active": float(self.active)}, step=trainer.global_step)

    # -- checkpointed state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"active": self.active, "best": self.best, "stalled": self.stalled, "ended_at_step": self.ended_at_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.active = bool(state_dict.get("active", True))
        self.best = state_dict.get("best")
        self.stalled = int(state_dict.get("stalled", 0))
        self.ended_at_step = state_dict.get("ended_at_step")
