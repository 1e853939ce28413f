"""benchmarks/memn2n_seeds.py: the paper's best-of-N protocol through ``mannkit fit`` and ``mannkit test``, on the tiny fixture."""

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "babi"


def _result(seed, train, val, test):
    return {"seed": seed, "epochs": 90, "linear_epochs": 30, "seconds_per_epoch": 1.0, "mean_train_error_percent": train,
            "mean_val_error_percent": val, "mean_test_error_percent": test, "failed_tasks": 0,
            "test_error_percent": {1: test, 2: test}}


def test_seeds_and_the_selection_rule(benchmark_script):
    script = benchmark_script("memn2n_seeds")
    assert script.parse_seeds("0-9") == list(range(10)) and script.parse_seeds("1,4-5") == [1, 4, 5]
    args, extra = script.parse_args(["--data-dir", "x", "--", "--trainer.max_epochs", "2"])
    assert args.seeds == list(range(10)) and args.select == "train" and extra == ["--trainer.max_epochs", "2"]
    results = [_result(0, 10.0, 20.0, 18.0), _result(1, 12.0, 15.0, 16.0)]
    table, summary = script.summarise(results, "train")
    assert summary["selected_seed"] == 0, "the paper picks the lowest training error"
    assert script.summarise(results, "val")[1]["selected_seed"] == 1
    assert "2 seeds: mean test error 17.0%" in table


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
def test_one_seed_through_the_cli_on_tiny_tasks(tmp_path, capsys, benchmark_script):
    config = yaml.safe_load((ROOT / "configs" / "memn2n" / "babi_1k_joint.yaml").read_text())
    config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"] if c["class_path"] != "AttentionPictures"]
    config["model"]["init_args"]["model"]["init_args"]["embedding_dim"] = 8
    config["data"]["init_args"].update(tasks=[1, 8], batch_size=3)
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump(config))
    script = benchmark_script("memn2n_seeds")
    script.main(["--data-dir", str(FIXTURES), "--config", str(preset), "--seeds", "4", "--out", str(tmp_path / "out"),
                 "--", "--trainer.max_epochs", "2"])
    result = json.loads((tmp_path / "out" / "seed4" / "result.json").read_text())
    assert result["epochs"] == 2 and result["linear_epochs"] == 2 and not result["linear_start_ended"]
    assert set(result["test_error_percent"]) == {"1", "8"} and set(result["train_error_percent"]) == {"1", "8"}
    # mannkit test's table and the benchmark's evaluate agree on the same weights
    again = script.split_errors(Path(result["checkpoint"]), preset, str(FIXTURES), ("test",))["test"]
    assert {str(t): round(e, 2) for t, e in again.items()} == result["test_error_percent"]
    out = capsys.readouterr().out
    assert "Selected by the lowest training error" in out and "seed 4" in out
    # a finished seed is read back, not run again
    script.main(["--data-dir", str(FIXTURES), "--config", str(preset), "--seeds", "4", "--out", str(tmp_path / "out")])
