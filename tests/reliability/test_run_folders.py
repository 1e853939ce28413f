"""Issue 10, items 11 and 12: each run gets its own version folder, and a run that fails before training leaves none."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from mannkit.callbacks.reliability import claim_run_folders, remove_unused_run_folders
from mannkit.cli import main

ROOT = Path(__file__).parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_copy.yaml"


def test_two_runs_started_together_get_their_own_folders(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", "from mannkit.cli import main; main()", "fit", "--config", str(FIXTURE),
            "--trainer.default_root_dir", str(tmp_path), "--trainer.max_steps", "2"]
    runs = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=180)
        assert run.returncode == 0, err
    folders = sorted(p.name for p in (tmp_path / "lightning_logs").iterdir())
    assert folders == ["version_0", "version_1"]
    for folder in (tmp_path / "lightning_logs").iterdir():
        assert (folder / "config.yaml").is_file() and (folder / "checkpoints" / "last.ckpt").is_file()
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1, list(folder.iterdir())


def test_a_run_that_loses_the_race_takes_the_next_number(tmp_path, monkeypatch):
    tensorboard, csv = TensorBoardLogger(tmp_path), CSVLogger(tmp_path)  # both under tmp_path/lightning_logs
    (tmp_path / "lightning_logs" / "version_0").mkdir(parents=True)  # made by another run after it looked
    monkeypatch.setattr(TensorBoardLogger, "_get_next_version", lambda self: 0)
    assert claim_run_folders([tensorboard, csv]) == [tmp_path / "lightning_logs" / "version_1"]
    assert tensorboard.version == csv.version == 1
    fixed = TensorBoardLogger(tmp_path, version=7)
    assert claim_run_folders([fixed]) == [] and not (tmp_path / "lightning_logs" / "version_7").exists()


def test_a_run_failing_before_its_first_step_leaves_no_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):  # the model's explicit sizes do not fit the task: found in setup
        main(["fit", "--config", str(FIXTURE), "--trainer.default_root_dir", str(tmp_path),
              "--model.init_args.input_size", "9", "--model.init_args.output_size", "3"])
    assert "the model was built for 9 inputs" in capsys.readouterr().err
    assert list(tmp_path.rglob("*")) == []


def test_only_folders_without_training_or_checkpoints_are_removed(tmp_path):
    kept, empty = tmp_path / "version_0", tmp_path / "version_1"
    (kept / "checkpoints").mkdir(parents=True)
    (kept / "checkpoints" / "last.ckpt").write_bytes(b"x")
    empty.mkdir()
    (empty / "config.yaml").write_text("seed_everything: 1\n")
    assert remove_unused_run_folders([kept, empty], SimpleNamespace(global_step=0)) == [empty]
    assert kept.is_dir() and not empty.exists()
    empty.mkdir()
    assert remove_unused_run_folders([empty], SimpleNamespace(global_step=3)) == [] and empty.is_dir()
    # a resumed run that failed before training past its checkpoint's step
    assert remove_unused_run_folders([empty], SimpleNamespace(global_step=4), start_step=4) == [empty]
