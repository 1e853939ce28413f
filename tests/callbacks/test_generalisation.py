"""LengthGeneralisation: CSV, table, TensorBoard series and curve after ``mannkit test``; the difficulty axis; two axes; presets."""

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.image import imread
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mannkit import viz
from mannkit.callbacks import LengthGeneralisation
from mannkit.callbacks.generalisation import (
    GeneralisationRow,
    collect_rows,
    difficulty_axis,
    draw_grid,
    format_table,
    training_limit,
)
from mannkit.cli import main
from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import SequenceModel, SequenceOutput
from mannkit.core.registry import registry
from mannkit.systems import SequenceSystem
from mannkit.tasks import AssociativeRecallTask, CopyTask, DynamicNGramsTask, PrioritySortTask, RepeatCopyTask, SequenceTask

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


# -- two difficulty axes ------------------------------------------------------------------------
class Linear(SequenceModel):
    """A per-step linear map, enough to be fitted and tested quickly."""

    def bind(self, input_size: int, output_size: int) -> None:
        self.linear = torch.nn.Linear(input_size, output_size)

    def forward(self, x, record=False):
        return SequenceOutput(self.linear(x), None)


@pytest.fixture(scope="module")
def two_axes(tmp_path_factory):
    """A repeat-copy run tested on sets that differ in length and in repeats; its log folder and callback."""
    root = tmp_path_factory.mktemp("two_axes")
    task = RepeatCopyTask(bits=3, max_length=3, max_repeats=2, test_lengths=[2, 4, 2], test_repeats=[2, 2, 3],
                          batch_size=4, train_batches=2, val_batches=1, test_batches=1)
    callback = LengthGeneralisation()
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=TensorBoardLogger(root), callbacks=[callback],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    torch.manual_seed(0)
    model = SequenceSystem(Linear())
    trainer.fit(model, datamodule=task)
    trainer.test(model, datamodule=task)
    return Path(trainer.log_dir), callback


def test_two_axes_keep_both_in_the_csv(two_axes):
    folder, callback = two_axes
    with (folder / "generalisation.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["test_set", "length", "repeats", *METRICS]
    assert [r[:3] for r in rows[1:]] == [["len2_rep2", "2", "2"], ["len4_rep2", "4", "2"], ["len2_rep3", "2", "3"]]
    assert [(r.difficulty, r.second) for r in callback.rows] == [(2, 2), (4, 2), (2, 3)]


def test_two_axes_give_one_series_per_value_of_the_second(two_axes):
    folder, _ = two_axes
    events = _scalars(folder)
    assert [s.step for s in events.Scalars("generalisation/bits_per_seq/repeats2")] == [2, 4]
    assert [s.step for s in events.Scalars("generalisation/bits_per_seq/repeats3")] == [2]
    (point,) = events.Scalars("generalisation/bits_per_seq/repeats3")
    (logged,) = events.Scalars("test/len2_rep3/bits_per_seq")
    assert point.value == pytest.approx(logged.value, rel=1e-6)
    assert "generalisation/bits_per_seq" not in events.Tags()["scalars"]  # no line that jumps between the axes


def test_two_axes_picture_is_drawn(two_axes):
    folder, _ = two_axes
    pixels = imread(folder / "generalisation_bits_per_seq.png")
    assert pixels.ndim == 3 and pixels[..., :3].std() > 0


def test_grid_places_each_test_set_at_both_of_its_values():
    rows = [GeneralisationRow("a", 10, {"m": 1.0}, 10), GeneralisationRow("b", 20, {"m": 2.0}, 10),
            GeneralisationRow("c", 10, {"m": 4.0}, 20)]
    fig = draw_grid(rows, ("length", "repeats"), "m", (10, 10))
    ax = fig.axes[0]
    (points,) = ax.collections
    assert points.get_offsets().tolist() == [[10, 10], [20, 10], [10, 20]]
    assert points.get_array().tolist() == [1.0, 2.0, 4.0]
    assert [t.get_text() for t in ax.texts] == ["1", "2", "4"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("length", "repeats")
    assert [list(line.get_xdata()) for line in ax.lines] == [[10, 10], [0, 1]]  # training maxima: x = 10, y = 10


def test_two_axes_table():
    rows = [GeneralisationRow("len2_rep3", 2, {"bits_per_seq": 0.5}, 3)]
    assert format_table(["length", "repeats"], rows, "bits_per_seq").splitlines() == [
        "test set   length  repeats  bits/seq",
        "len2_rep3       2        3    0.5000",
    ]


def test_the_default_metric_follows_the_loss():
    class Categorical:
        objective = SimpleNamespace(metric_names=["seq_accuracy", "step_accuracy"])

    assert LengthGeneralisation().metric is None  # resolved at the end of testing
    _, _, (row,) = collect_rows({"test/len3/seq_accuracy": 0.25, "test/len3/step_accuracy": 0.5},
                                [("len3", {"min_length": 3})], "seq_accuracy", Categorical.objective.metric_names)
    assert row.values == {"seq_accuracy": 0.25, "step_accuracy": 0.5}


# -- presets ------------------------------------------------------------------------------------
def test_every_preset_whose_test_sets_differ_reports_generalisation():
    missing = []
    for path in sorted((Path(__file__).parents[2] / "configs").rglob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        data = config.get("data") or {}
        name = str(data.get("class_path", "")).rsplit(".", 1)[-1]
        if name not in registry.names("task") or not issubclass(registry.get(name, "task"), SequenceTask):
            continue  # bAbI: test sets by task, not by difficulty
        if "data_dir" in (data.get("init_args") or {}):
            continue  # read from a folder the user names (Omniglot, bAbI streams): not generated, no difficulty axes to test
        task = registry.get(name, "task")(**(data.get("init_args") or {}))
        callbacks = [c["class_path"] if isinstance(c, dict) else c for c in config["trainer"].get("callbacks") or []]
        if len(task.test_difficulties()) > 1 and "LengthGeneralisation" not in callbacks:
            missing.append(path.name)
    assert not missing


# -- the model's own statistics (ACT's ponder time) ------------------------------------------------
class Pondering(Linear):
    """A linear map whose stats are known by hand: ``ponder_mean`` = the input's length, ``ponder_max`` = a call count."""

    def bind(self, input_size: int, output_size: int) -> None:
        super().bind(input_size, output_size)
        self.calls = 0

    def forward(self, x, record=False):
        self.calls += 0 if self.training else 1
        stats = {"ponder_mean": torch.tensor(float(x.shape[1])), "ponder_max": torch.tensor(float(self.calls))}
        return SequenceOutput(self.linear(x), None, None, stats)


def test_the_models_stats_are_logged_per_test_set_tabulated_and_drawn(tmp_path, capsys):
    task = CopyTask(bits=3, max_length=3, test_lengths=[2, 5], batch_size=4, train_batches=2, val_batches=1,
                    test_batches=2)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=TensorBoardLogger(tmp_path), callbacks=[LengthGeneralisation()],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    torch.manual_seed(0)
    model = SequenceSystem(Pondering())
    trainer.fit(model, datamodule=task)
    results = trainer.test(model, datamodule=task)
    steps = [next(iter(loader))["input"].shape[1] for loader in task.test_dataloader()]  # T of each test set
    logged = {k: v for r in results for k, v in r.items()}
    # the mean stat is averaged over a set's batches; the *_max one keeps the largest (the set's last call: 2, then 4)
    assert [logged[f"test/len{n}/ponder_mean"] for n in (2, 5)] == steps
    assert [logged[f"test/len{n}/ponder_max"] for n in (2, 5)] == [2.0, 4.0]
    folder = Path(trainer.log_dir)
    with (folder / "generalisation.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["test_set", "length", *METRICS, "ponder_mean", "ponder_max"]
    assert [float(r[-2]) for r in rows[1:]] == steps and [float(r[-1]) for r in rows[1:]] == [2.0, 4.0]
    assert "mean ponder" in capsys.readouterr().out
    assert [s.value for s in _scalars(folder).Scalars("generalisation/ponder_mean")] == steps
    assert imread(folder / "generalisation_ponder_mean.png")[..., :3].std() > 0
