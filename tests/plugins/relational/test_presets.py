"""The presets in configs/relational/ and configs/graph_memory/ pass the config check and train one step
(the bAbI one on the tiny files in tests/fixtures/babi)."""

from pathlib import Path

import pytest
import torch

import mannkit.callbacks  # noqa: F401  (check_config resolves short names; main() imports these itself)
import mannkit.systems  # noqa: F401
from mannkit.cli import check_config, main

ROOT = Path(__file__).parents[3]
SEQUENCE = sorted((ROOT / "configs" / "relational").glob("nth_farthest*.yaml")) + sorted((ROOT / "configs" / "graph_memory").glob("*.yaml"))
FIXTURES = ROOT / "tests" / "fixtures" / "babi"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--trainer.num_sanity_val_steps", "0"]


def test_the_issue_presets_exist():
    assert {p.name for p in SEQUENCE} >= {"nth_farthest_rmc.yaml", "nth_farthest_lstm.yaml", "nth_farthest_dnc.yaml",
                                           "nth_farthest_rmc_dnc.yaml", "traversal.yaml"}
    assert (ROOT / "configs" / "relational" / "babi_rn.yaml").is_file()


def _opens_with_its_command(path: Path) -> None:
    text = path.read_text()
    folder = path.parent.name
    assert text.startswith("#") and f"mannkit fit --config configs/{folder}/{path.name}" in text


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
@pytest.mark.filterwarnings("ignore:.*MemoryPictures.*:UserWarning")
@pytest.mark.parametrize("path", SEQUENCE, ids=[p.stem for p in SEQUENCE])
def test_sequence_preset_checks_and_trains_one_step(path, tmp_path):
    _opens_with_its_command(path)
    check_config(path)
    main([
        "fit", "--config", str(path), *QUIET,
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.max_steps", "1",
        "--trainer.limit_val_batches", "1",
        "--data.init_args.batch_size", "2",
        "--data.init_args.val_batches", "1",
        "--data.init_args.test_batches", "1",
    ])
    checkpoint = torch.load(next(tmp_path.rglob("*.ckpt")), weights_only=True)
    assert checkpoint["global_step"] == 1


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
def test_rn_babi_preset_trains_one_step_on_the_tiny_tasks(tmp_path):
    path = ROOT / "configs" / "relational" / "babi_rn.yaml"
    _opens_with_its_command(path)
    check_config(path)
    main([
        "fit", "--config", str(path), *QUIET,
        "--data.init_args.data_dir", str(FIXTURES),
        "--data.init_args.tasks", "[1, 8]",
        "--data.init_args.batch_size", "4",
        "--model.init_args.model.init_args.g_layers", "[16, 16]",
        "--model.init_args.model.init_args.f_layers", "[16]",
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "1",
        "--trainer.limit_val_batches", "1",
    ])
    checkpoint = torch.load(next(tmp_path.rglob("*.ckpt")), weights_only=True)
    assert checkpoint["global_step"] >= 1
    assert any(key.startswith("model.rn.") for key in checkpoint["state_dict"])
