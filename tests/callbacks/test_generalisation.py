"""LengthGeneralisation: CSV, table, TensorBoard series and curve after ``mannkit test``; the difficulty axis."""

import csv
import math
from pathlib import Path

import pytest
from matplotlib.image import imread
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mannkit import viz
from mannkit.callbacks import LengthGeneralisation
from mannkit.callbacks.generalisation import collect_rows, difficulty_axis, training_limit
from mannkit.cli import main
from mannkit.core.errors import ConfigError
from mannkit.tasks import AssociativeRecallTask, CopyTask, DynamicNGramsTask, PrioritySortTask, RepeatCopyTask

# restoring a checkpoint into another run folder is what the test run does on purpose
pytestmark = pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_copy.yaml"
METRICS = ("bits_per_seq", "bit_errors_per_seq", "seq_accuracy")


@pytest.fixture(scope="module")
def tested(tmp_path_factory):
    """Fit the tiny copy config, then ``mannkit test`` its checkpoint with the callback; the test run's folder and stdout."""
    root = tmp_path_factory.mktemp("generalisation")
    main(["fit", "--config", str(FIXTURE), "--trainer.default_root_dir", str(root / "fit")])
    ckpt = next((root / "fit").rglob("last.ckpt"))
    main(["test", "--config", str(FIXTURE), "--ckpt_path", str(ckpt), "--trainer.default_root_dir", str(root / "test"),
          "--trainer.callbacks+=LengthGeneralisation"])
    return next((root / "test").rglob("events.out.tfevents.*")).parent


def _scalars(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return events


def test_csv_rows_follow_the_test_sets_and_hold_the_logged_metrics(tested):
    with (tested / "generalisation.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["test_set", "length", *METRICS]
    assert [r[0] for r in rows[1:]] == CopyTask(test_lengths=[3, 5]).test_set_names == ["len3", "len5"]
    assert [r[1] for r in rows[1:]] == ["3", "5"]
    events = _scalars(tested)
    for row in rows[1:]:
        for metric, value in zip(METRICS, row[2:]):
            (logged,) = events.Scalars(f"test/{row[0]}/{metric}")
            assert float(value) == pytest.approx(logged.value, rel=1e-6), (row[0], metric)


def test_tensorboard_series_has_the_difficulty_as_step(tested):
    events = _scalars(tested)
    series = events.Scalars("generalisation/bits_per_seq")
    assert [s.step for s in series] == [3, 5]
    for point in series:
        (logged,) = events.Scalars(f"test/len{point.step}/bits_per_seq")
        assert point.value == pytest.approx(logged.value, rel=1e-6)


def test_curve_png_is_drawn(tested):
    pixels = imread(tested / "generalisation_bits_per_seq.png")
    assert pixels.ndim == 3 and pixels.shape[1] > 300 and pixels[..., :3].std() > 0


def test_table_is_printed(tmp_path, capsys):
    main(["fit", "--config", str(FIXTURE), "--trainer.default_root_dir", str(tmp_path), "--trainer.max_steps", "1"])
    ckpt = next(tmp_path.rglob("last.ckpt"))
    main(["test", "--config", str(FIXTURE), "--ckpt_path", str(ckpt), "--trainer.default_root_dir", str(tmp_path),
          "--trainer.callbacks+=LengthGeneralisation", "--trainer.callbacks.metric", "seq_accuracy",
          "--trainer.callbacks.png", "false"])
    out = capsys.readouterr().out
    assert "mannkit: generalisation by length (training up to 3)" in out
    assert "test set  length  bits/seq  bit errors/seq  seq accuracy" in out
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("len")] == [["len3", "3"], ["len5", "5"]]
    run = next(tmp_path.rglob("generalisation.csv")).parent
    assert not list(run.glob("*.png"))
    assert [s.step for s in _scalars(run).Scalars("generalisation/seq_accuracy")] == [3, 5]


# -- the difficulty axis of every task ---------------------------------------------------------
@pytest.mark.parametrize(
    "task, label, values, limit",
    [
        (CopyTask(max_length=7, test_lengths=[11, 13]), "length", [11, 13], 7),
        (RepeatCopyTask(max_length=5, max_repeats=6, test_lengths=[5, 5], test_repeats=[3, 17]), "repeats", [3, 17], 6),
        (AssociativeRecallTask(max_items=4, test_items=[6, 12]), "items", [6, 12], 4),
        (DynamicNGramsTask(length=30, test_lengths=[30, 70]), "length", [30, 70], 30),
        (PrioritySortTask(num_inputs=9, num_outputs=5, test_inputs=[9, 19]), "num_inputs", [9, 19], 9),
    ],
    ids=["copy", "repeat_copy", "associative_recall", "ngrams", "priority_sort"],
)
def test_difficulty_axis_of_each_task(task, label, values, limit):
    got_label, key, got_values = difficulty_axis(task.test_difficulties())
    assert (got_label, got_values) == (label, values)
    assert training_limit(key, task.train_difficulty()) == limit


def test_difficulty_from_names_or_positions():
    assert difficulty_axis([("len3", {"mode": "a"}), ("len8", {"mode": "b"})]) == ("difficulty", None, [3.0, 8.0])
    assert difficulty_axis([("easy", {}), ("hard", {})]) == ("test set", None, [0.0, 1.0])
    assert difficulty_axis([("len9", {"min_length": 9, "max_length": 9})]) == ("length", "min_length", [9])


def test_unknown_metric_names_the_logged_ones():
    metrics = {"test/len3/bits_per_seq": 1.0, "test/len3/seq_accuracy": 0.5}
    with pytest.raises(ConfigError, match=r"no test set logged 'bitz'; the test metrics are \['bits_per_seq', 'seq_accuracy'\]"):
        collect_rows(metrics, [("len3", {"min_length": 3})], "bitz")
    _, _, (row,) = collect_rows(metrics, [("len3", {"min_length": 3})], "bits_per_seq")
    assert row.values["bits_per_seq"] == 1.0 and math.isnan(row.values["bit_errors_per_seq"])


def test_curve_marks_the_training_maximum():
    fig = viz.draw_curve([3, 5, 9], [1.0, 2.0, 8.0], "length", "bits/seq", train_max=4)
    ax = fig.axes[0]
    assert [list(line.get_xdata()) for line in ax.lines] == [[3, 5, 9], [4, 4]]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("length", "bits/seq")


@pytest.mark.parametrize("metric", ["", "test/len3/bits_per_seq"])
def test_bad_metric_argument(metric):
    with pytest.raises(ConfigError, match=r"metric must be a metric name such as 'bits_per_seq'"):
        LengthGeneralisation(metric=metric)
