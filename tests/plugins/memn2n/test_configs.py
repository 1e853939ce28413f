"""The MemN2N presets (configs/memn2n/*.yaml) pass the config check, and the joint preset trains and tests end to end
on the tiny bAbI files in tests/fixtures/babi (tasks 1 and 8), with linear start, through the CLI."""

from pathlib import Path

import pytest
import torch

from mannkit.cli import check_config, main

ROOT = Path(__file__).parents[3]
PRESETS = sorted((ROOT / "configs" / "memn2n").glob("*.yaml"))
FIXTURES = ROOT / "tests" / "fixtures" / "babi"


def test_the_presets_exist_and_open_with_a_comment():
    assert {p.name for p in PRESETS} >= {"babi_1k_joint.yaml", "babi_10k_task.yaml"}
    for path in PRESETS:
        assert path.read_text().startswith("#"), f"{path.name} should open with a comment saying what it runs"


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_passes_the_config_check(path):
    check_config(path)


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
def test_joint_preset_trains_and_tests_on_tiny_tasks(tmp_path):
    shrink = [
        "--data.init_args.data_dir", str(FIXTURES),
        "--data.init_args.tasks", "[1, 8]",
        "--data.init_args.batch_size", "4",
        "--model.init_args.model.init_args.embedding_dim", "8",
        "--trainer.default_root_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false",
        "--trainer.logger", "false",
    ]
    config = str(ROOT / "configs" / "memn2n" / "babi_1k_joint.yaml")
    main(["fit", "--config", config, *shrink, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
          "--trainer.num_sanity_val_steps", "0"])
    checkpoint = next((tmp_path / "runs").rglob("last.ckpt"))
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["global_step"] >= 2, "one step or more in each of the two epochs"
    state = saved["state_dict"]
    assert "model.answer_ids" in state, "the system passed the answers' words, so W^T = C^K for one-word answers"
    assert "model.head.linear" in state, "the linear-start switch is saved"
    main(["test", "--config", config, *shrink, "--ckpt_path", str(checkpoint)])
    table = next((tmp_path / "runs").rglob("qa_results.csv")).read_text()
    assert table.splitlines()[0].startswith("task,name,questions")
