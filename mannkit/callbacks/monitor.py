"""The value of a monitored validation metric, for the callbacks that act on one (Curriculum, LinearStart, LowerLROnTarget);
whether a training step's logged values will reach the logger (:func:`logs_now`)."""

from __future__ import annotations

from typing import Any

from mannkit.core.errors import ConfigError

__all__ = ["monitored", "logs_now"]


def monitored(trainer: Any, monitor: str, owner: str) -> float:
    """``trainer.callback_metrics[monitor]`` as a float; a metric that was not logged is one sentence naming the logged ones."""
    value = trainer.callback_metrics.get(monitor)
    if value is None:
        logged = sorted(k for k in trainer.callback_metrics if k.startswith("val"))
        raise ConfigError(
            f"{owner}: the monitored metric '{monitor}' was not logged; set monitor to one of {logged or 'the val/ metrics'}."
        )
    return float(value)


def logs_now(trainer: Any) -> bool:
    """True when the values a training step logs now will be written by the loggers (every ``log_every_n_steps``).

    Lightning writes training-step values only every ``trainer.log_every_n_steps`` steps, but each
    ``self.log`` call costs about 1 ms of Python on a loaded 2-CPU machine whatever happens to it
    (benchmarks/RESULTS.md, "What a training step costs"). Values that only the logger reads are
    logged on these steps alone (so ``trainer.callback_metrics`` holds them as of the last such
    step); the progress bar's are logged at every step. Without a trainer, or with no logger (then
    ``callback_metrics`` is all that reads them), or when Lightning does not say, the answer is True.

    >>> logs_now(None)
    True
    """
    connector = getattr(trainer, "_logger_connector", None)
    if trainer is None or connector is None or not getattr(trainer, "loggers", None) or getattr(trainer, "fast_dev_run", False):
        return True
    try:
        return bool(connector.should_update_logs)
    except Exception:  # noqa: BLE001  (a loop Lightning does not know: log as usual)
        return True
