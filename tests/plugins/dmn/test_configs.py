"""The DMN+ presets (configs/dmn/*.yaml) pass the config check, and the bAbI preset trains and tests end to end.

The end-to-end run uses a tiny bAbI folder written by the test (task 1's format) and shrinks the model.
"""

from pathlib import Path

import pytest
import torch

from mannkit.cli import check_config, main

ROOT = Path(__file__).parents[3]
PRESETS = sorted((ROOT / "configs" / "dmn").glob("*.yaml"))

_STORIES = [
    ("mary moved to the bathroom .", "john went to the hallway .", "where is mary ?", "bathroom", "1"),
    ("daniel went back to the hallway .", "sandra moved to the garden .", "where is daniel ?", "hallway", "1"),
    ("john moved to the office .", "mary went to the garden .", "where is mary ?", "garden", "2"),
    ("sandra went to the office .", "daniel moved to the bathroom .", "where is sandra ?", "office", "1"),
]


def _write_task(folder: Path, name: str, repeat: int) -> None:
    lines = []
    for _ in range(repeat):
        for first, second, question, answer, support in _STORIES:
            lines += [f"1 {first}", f"2 {second}", f"3 {question}\t{answer}\t{support}"]
    (folder / name).write_text("\n".join(lines) + "\n")


def test_the_presets_exist_and_open_with_a_comment():
    assert {p.name for p in PRESETS} >= {"babi_10k_task.yaml"}
    for path in PRESETS:
        assert path.read_text().startswith("#"), f"{path.name} should open with a comment saying what it runs"


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_passes_the_config_check(path):
    check_config(path)


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
def test_babi_preset_trains_and_tests_on_a_tiny_task(tmp_path):
    data = tmp_path / "babi"
    data.mkdir()
    _write_task(data, "qa1_single-supporting-fact_train.txt", repeat=5)
    _write_task(data, "qa1_single-supporting-fact_test.txt", repeat=1)
    shrink = [
        "--data.init_args.data_dir", str(data),
        "--data.init_args.batch_size", "4",
        "--model.init_args.model.init_args.memory.init_args.word_size", "8",
        "--trainer.default_root_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false",
        "--trainer.logger", "false",
    ]
    config = str(ROOT / "configs" / "dmn" / "babi_10k_task.yaml")
    main(["fit", "--config", config, *shrink, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
          "--trainer.num_sanity_val_steps", "0"])
    checkpoint = next((tmp_path / "runs").rglob("last.ckpt"))
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 2
    main(["test", "--config", config, *shrink, "--ckpt_path", str(checkpoint)])
    table = next((tmp_path / "runs").rglob("qa_results.csv")).read_text()
    assert table.splitlines()[0].startswith("task,name,questions")
