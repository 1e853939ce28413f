"""Every ``mannkit fit`` logs the learning rate and the gradient norm by default; each can be switched off."""

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mannkit.cli import main

TINY = Path(__file__).parents[1] / "fixtures" / "tiny_copy.yaml"
LR, NORM = "lr-Adam", "train/grad_norm"


def _scalars(root: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(next(root.rglob("events.out.tfevents.*")).parent), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _fit(root: Path, *args: str) -> None:
    main(["fit", "--config", str(TINY), "--trainer.max_steps", "3", "--trainer.default_root_dir", str(root), *args])


def test_lr_and_grad_norm_are_logged_by_default(tmp_path):
    _fit(tmp_path)
    scalars = _scalars(tmp_path)
    assert scalars[LR] == pytest.approx([1e-3] * 3)  # the system's default Adam, logged every step
    assert len(scalars[NORM]) == 3 and all(v > 0 for v in scalars[NORM])
    saved = next(tmp_path.rglob("config.yaml")).read_text()
    assert "lightning.pytorch.callbacks.LearningRateMonitor" in saved and "GradNormMonitor" in saved


def test_monitors_switch_off(tmp_path):
    _fit(tmp_path, "--lr_monitor", "null", "--grad_norm", "null")
    scalars = _scalars(tmp_path)
    assert LR not in scalars and NORM not in scalars and "train/loss" in scalars


def test_no_logger_runs_without_the_lr_monitor(tmp_path):
    """LearningRateMonitor refuses a trainer without a logger; mannkit leaves it out there instead."""
    _fit(tmp_path, "--trainer.logger", "false")
    assert not list(tmp_path.rglob("events.out.tfevents.*"))
