"""benchmarks/run_memn2n_babi.py runs end to end on the tiny bAbI fixtures and writes its per-task JSON."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]


def test_defaults_follow_the_paper(benchmark_script):
    script = benchmark_script("run_memn2n_babi")
    joint = script.parse_args(["--data-dir", "x"])
    assert (joint.dim, joint.epochs, joint.anneal_every, joint.ls_epochs, joint.lr, joint.ls_patience) == (50, 60, 15, 30, 0.005, None)
    assert script.parse_args(["--data-dir", "x", "--ls-patience", "3"]).ls_patience == 3
    with pytest.raises(SystemExit):
        script.parse_args(["--data-dir", "x", "--ls-patience", "-1"])
    one = script.parse_args(["--data-dir", "x", "--tasks", "3", "--no-linear-start"])
    assert (one.tasks, one.dim, one.epochs, one.anneal_every, one.lr) == ([3], 20, 100, 25, 0.01)


def test_runs_on_tiny_tasks_and_writes_per_task_errors(tmp_path, capsys, benchmark_script):
    args = ["--data-dir", str(ROOT / "tests" / "fixtures" / "babi"), "--tasks", "1,8", "--epochs", "2", "--ls-epochs", "1",
            "--dim", "8", "--batch-size", "4", "--out", str(tmp_path)]
    benchmark_script("run_memn2n_babi").main(args)
    result = json.loads((tmp_path / "memn2n_babi_task1-8_seed0.json").read_text())
    assert set(result["test_error_percent"]) == {"1", "8"} and result["epochs"] == 3 and result["linear_epochs"] == 1
    assert [row["phase"] for row in result["history"]] == ["linear", "softmax", "softmax"]
    assert "mean test error" in capsys.readouterr().out
