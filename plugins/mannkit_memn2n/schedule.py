"""Linear start as a phase of its own, before the full learning-rate schedule (Sukhbaatar et al. 2015, sec. 4.2).

The paper trains without the hops' softmax until the validation loss stops falling, then re-inserts it
and training "recommences": the epochs and the annealing of the learning rate count from there. The
original code (``MemN2N-babi-matlab``, ``train_linear_start.m``) runs a fixed number of linear epochs
(30 joint, 20 per task) at the starting rate, then the full schedule; ``monitor: null`` does that here,
and a monitor ends linear start earlier when it stops falling (at most ``max_linear_epochs`` epochs).
``benchmarks/run_memn2n_babi.py`` trains the same way (``--ls-patience``).

:class:`LinearStartSchedule` does this inside ``mannkit fit``; plain :class:`~mannkit.callbacks.LinearStart`
counts the linear epochs in ``trainer.max_epochs`` and lets the scheduler anneal during them.
"""

from __future__ import annotations

from typing import Any

from mannkit.callbacks.linear_start import LinearStart, _switchable
from mannkit.core.errors import ConfigError
from mannkit.core.registry import register

__all__ = ["LinearStartSchedule", "restart_schedules"]


def restart_schedules(trainer: Any) -> None:
    """Put every epoch-stepped scheduler of ``trainer`` back at its start: epoch 0 and its optimizer's initial rates.

    Works for schedulers whose rate depends on the epoch count and the current rate (StepLR, MultiStepLR,
    ExponentialLR, ...); a ReduceLROnPlateau only gets its rates back.
    """
    for config in getattr(trainer, "lr_scheduler_configs", []) or []:
        if getattr(config, "interval", "epoch") != "epoch":
            continue
        scheduler = config.scheduler
        optimizer = scheduler.optimizer
        initial = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
        for group, lr in zip(optimizer.param_groups, initial):
            group["lr"] = lr
        if hasattr(scheduler, "last_epoch"):
            scheduler.last_epoch = 0
        scheduler._last_lr = list(initial)  # what get_last_lr() and Lightning's LearningRateMonitor read


@register
class LinearStartSchedule(LinearStart):
    """Linear start, then the full schedule: as the paper and ``benchmarks/run_memn2n_babi.py`` train MemN2N.

    While linear start lasts, every epoch starts at the optimizer's initial learning rate (the epoch
    scheduler does not anneal). It ends after ``max_linear_epochs`` epochs, or earlier as
    :class:`~mannkit.callbacks.LinearStart` ends it (``patience`` + 1 validations in a row without a lower
    ``monitor``) when a monitor is given; then the softmax returns, the scheduler restarts from epoch 0 and
    training runs ``main_epochs`` more epochs (``trainer.max_epochs`` is lowered to that, never raised: set
    it to at least ``max_linear_epochs + main_epochs``). Validate once per epoch (the default).

    Args:
        monitor: the logged validation metric to watch (lower is better), or null for exactly
            ``max_linear_epochs`` linear epochs, as the original code (the joint preset).
        patience: extra validations in a row without progress before the softmax is inserted.
        min_delta: how much lower than the best a value must be to count as progress.
        max_linear_epochs: at most this many epochs without the softmax (the benchmark: 30 joint, 20 per task).
        main_epochs: epochs with the softmax after linear start (the paper: 60 joint, 100 per task); null
            to stop at ``trainer.max_epochs`` only.
    """

    def __init__(self, monitor: str | None = "val/loss", patience: int = 0, min_delta: float = 0.0,
                 max_linear_epochs: int | None = None, main_epochs: int | None = None) -> None:
        super().__init__(monitor=monitor, patience=patience, min_delta=min_delta)
        for name, value in (("max_linear_epochs", max_linear_epochs), ("main_epochs", main_epochs)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"LinearStartSchedule: {name} must be a positive integer or null, got {value!r}.")
        if monitor is None and max_linear_epochs is None:
            raise ConfigError(
                "LinearStartSchedule: monitor is null and max_linear_epochs is null, so linear start would never end; "
                "set max_linear_epochs (e.g. 30, as the paper's joint training) or a monitor such as val/loss."
            )
        self.max_linear_epochs, self.main_epochs = max_linear_epochs, main_epochs
        self.main_from_epoch: int | None = None  # the first epoch with the softmax

    def _shorten(self, trainer: Any) -> None:
        if self.main_from_epoch is None or self.main_epochs is None:
            return
        end = self.main_from_epoch + self.main_epochs
        current = trainer.fit_loop.max_epochs
        if current is None or current < 0 or end < current:
            trainer.fit_loop.max_epochs = end

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:  # a resumed run after the switch
        self._shorten(trainer)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.active or trainer.current_epoch == self.main_from_epoch:
            restart_schedules(trainer)  # linear epochs at the initial rate; the first softmax epoch from the start

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or not self.active:
            return
        if self.monitor is not None:
            super().on_validation_end(trainer, pl_module)
        if self.active and self.max_linear_epochs is not None and trainer.current_epoch + 1 >= self.max_linear_epochs:
            self.active, self.ended_at_step = False, trainer.global_step
            _switchable(pl_module).set_linear_start(False)
            if trainer.is_global_zero:
                print(f"mannkit: linear start ended after {self.max_linear_epochs} epochs (max_linear_epochs); the softmax is back in")
            for logger in trainer.loggers:
                logger.log_metrics({"linear_start/active": 0.0}, step=trainer.global_step)
        if self.active and self.monitor is None:
            for logger in trainer.loggers:
                logger.log_metrics({"linear_start/active": 1.0}, step=trainer.global_step)
        if not self.active:
            self.main_from_epoch = trainer.current_epoch + 1
            self._shorten(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "main_from_epoch": self.main_from_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.main_from_epoch = state_dict.get("main_from_epoch")
