"""The value of a monitored validation metric, for the callbacks that act on one (Curriculum, LinearStart, LowerLROnTarget)."""

from __future__ import annotations

from typing import Any

from mannkit.core.errors import ConfigError

__all__ = ["monitored"]


def monitored(trainer: Any, monitor: str, owner: str) -> float:
    """``trainer.callback_metrics[monitor]`` as a float; a metric that was not logged is one sentence naming the logged ones."""
    value = trainer.callback_metrics.get(monitor)
    if value is None:
        logged = sorted(k for k in trainer.callback_metrics if k.startswith("val"))
        raise ConfigError(
            f"{owner}: the monitored metric '{monitor}' was not logged; set monitor to one of {logged or 'the val/ metrics'}."
        )
    return float(value)
