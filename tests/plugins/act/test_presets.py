"""Every ACT preset in configs/act/ (each task with and without ACT, and ACT around a DNC) checks and trains one step."""

from pathlib import Path

import pytest
import torch

import mannkit.callbacks  # noqa: F401  (check_config resolves short names; main() imports these itself)
import mannkit.systems  # noqa: F401
from mannkit.cli import check_config, main

ROOT = Path(__file__).parents[3]
PRESETS = sorted((ROOT / "configs" / "act").glob("*.yaml"))


def test_every_task_has_a_preset_with_and_without_act():
    names = {p.stem for p in PRESETS}
    assert {f"{task}{variant}" for task in ("parity", "logic", "addition") for variant in ("", "_no_act")} <= names
    assert "dnc_logic" in names


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_checks_and_trains_one_step(path, tmp_path):
    text = path.read_text()
    assert text.startswith("#") and f"mannkit fit --config configs/act/{path.name}" in text
    check_config(path)
    main([
        "fit", "--config", str(path),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.max_steps", "1",
        "--trainer.limit_val_batches", "1",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.val_check_interval", "1",
        "--trainer.enable_progress_bar", "false",
        "--data.init_args.batch_size", "2",
        "--data.init_args.val_batches", "1",
        "--data.init_args.test_batches", "1",
    ])
    checkpoint = torch.load(next(tmp_path.rglob("*.ckpt")), weights_only=True)
    assert checkpoint["global_step"] == 1
