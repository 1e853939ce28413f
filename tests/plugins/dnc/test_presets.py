"""Every DNC preset in configs/dnc/ (dense and sparse, each task) passes the config check and trains one step."""

from pathlib import Path

import pytest
import torch

import mannkit.callbacks  # noqa: F401  (check_config resolves short names; main() imports these itself)
import mannkit.systems  # noqa: F401
from mannkit.cli import check_config, main

ROOT = Path(__file__).parents[3]
# the bAbI presets read the bAbI files: tests/systems/test_babi_sequence.py fits them on tests/fixtures/babi
PRESETS = sorted(p for p in (ROOT / "configs" / "dnc").glob("*.yaml") if not p.name.startswith("babi_"))
ISSUE_PRESETS = {
    f"{task}{variant}.yaml"
    for task in ("copy", "repeat_copy", "associative_recall", "traversal", "shortest_path", "sorting")
    for variant in ("", "_sparse")
}


def test_every_task_has_a_dense_and_a_sparse_preset():
    assert ISSUE_PRESETS <= {p.name for p in PRESETS}


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_checks_and_trains_one_step(path, tmp_path):
    text = path.read_text()
    assert text.startswith("#") and f"mannkit fit --config configs/dnc/{path.name}" in text
    check_config(path)
    sparse = "SparseDNCMemory" in text
    main([
        "fit", "--config", str(path),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.max_steps", "1",
        "--trainer.limit_val_batches", "1",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false",
        "--data.init_args.batch_size", "2",
        "--data.init_args.val_batches", "1",
        "--data.init_args.test_batches", "1",
        *(["--model.init_args.core.init_args.memory.init_args.slots", "64"] if sparse else []),
    ])
    checkpoint = torch.load(next(tmp_path.rglob("*.ckpt")), weights_only=True)
    assert checkpoint["global_step"] == 1
