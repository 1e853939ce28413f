"""benchmarks/run_dmn_babi.py: the kept weights and the patience follow the validation figure ``--select`` names."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "babi"


@pytest.fixture
def script(benchmark_script):
    return benchmark_script("run_dmn_babi")


@pytest.mark.parametrize("select", ["loss", "error"])
def test_the_kept_epoch_is_the_best_of_the_selected_figure_and_patience_counts_it(script, select):
    args = script.parse_args(["--data-dir", str(FIXTURES), "--task", "1", "--max-epochs", "6", "--patience", "2",
                              "--dim", "8", "--batch-size", "4", "--select", select])
    result = script.run(args)
    key = "val_loss" if select == "loss" else "val_error"
    figures = [row[key] for row in result["history"]]
    best = figures.index(min(figures))  # the first epoch with the lowest figure
    assert result["best_epoch"] == best + 1
    assert result["val_error_percent"] == result["history"][best]["val_error"]
    # it stopped at the cap, or after exactly `patience` epochs without a better figure
    assert result["epochs"] == 6 or result["epochs"] == best + 1 + 2


def test_select_takes_only_loss_or_error(script):
    with pytest.raises(SystemExit):
        script.parse_args(["--data-dir", str(FIXTURES), "--select", "accuracy"])
