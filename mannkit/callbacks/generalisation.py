"""How the cost grows beyond the training lengths: a table, a CSV file, a curve and a TensorBoard series.

``mannkit test`` evaluates one fixed test set per difficulty (``test/len20/bits_per_seq``,
``test/len40/...``). :class:`LengthGeneralisation` gathers those numbers at the end of
testing and lays them out against the difficulty (length, items, inputs...). A task with two
difficulty axes that both vary across its test sets (repeat copy: length and repeats; traversal:
nodes and path length; see ``SequenceTask.test_axes``) gets a picture over both axes
(:func:`draw_grid`) instead of a line that jumps between them.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from mannkit.core.errors import ConfigError
from mannkit.core.registry import register
from mannkit.metrics.keys import test_metric_key

__all__ = [
    "LengthGeneralisation",
    "GeneralisationRow",
    "difficulty_axis",
    "training_limit",
    "collect_rows",
    "format_table",
    "draw_grid",
]

#: The columns of the table and the CSV file of a bit task, with their headings.
COLUMNS = {"bits_per_seq": "bits/seq", "bit_errors_per_seq": "bit errors/seq", "seq_accuracy": "seq accuracy"}
#: Headings of the other losses' metrics (see :mod:`mannkit.systems.losses`).
HEADINGS = {**COLUMNS, "step_accuracy": "step accuracy", "fine_accuracy": "fine accuracy", "mse": "MSE",
            "ponder_mean": "mean ponder", "ponder_max": "max ponder"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _axis_label(key: str) -> str:
    """``min_length`` -> ``length``; ``num_inputs`` -> ``num_inputs``."""
    return re.sub(r"^(min|max)_", "", key)


def difficulty_axis(difficulties: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[str, str | None, list[float]]:
    """The number that tells the test sets apart: ``(axis label, difficulty key or None, one value per set)``.

    The first int-valued keyword that varies across the sets wins (with a single set, the
    first int-valued one); without one, the first number in each set's name; failing that,
    the set's position.

    >>> difficulty_axis([("len3", {"min_length": 3, "max_length": 3}), ("len5", {"min_length": 5, "max_length": 5})])
    ('length', 'min_length', [3, 5])
    >>> difficulty_axis([("a7", {}), ("b9", {})])
    ('difficulty', None, [7.0, 9.0])
    """
    if not difficulties:
        return "difficulty", None, []
    kwargs = [dict(d) for _, d in difficulties]
    shared = [k for k in kwargs[0] if all(k in d and _is_int(d[k]) for d in kwargs)]
    varying = [k for k in shared if len({d[k] for d in kwargs}) > 1]
    key = (varying or (shared if len(kwargs) == 1 else []) or [None])[0]
    if key is not None:
        return _axis_label(key), key, [d[key] for d in kwargs]
    numbers = [re.search(r"\d+(?:\.\d+)?", name) for name, _ in difficulties]
    if all(numbers):
        return "difficulty", None, [float(m.group()) for m in numbers]
    return "test set", None, [float(i) for i in range(len(difficulties))]


def training_limit(key: str | None, train_difficulty: Mapping[str, Any]) -> float | None:
    """The hardest training setting on the difficulty axis: ``max_<axis>``, else ``<key>``, else None.

    >>> training_limit("min_length", {"min_length": 1, "max_length": 20})
    20
    >>> training_limit("length", {"length": 200}), training_limit(None, {"length": 200})
    (200, None)
    """
    if key is None:
        return None
    for candidate in (f"max_{_axis_label(key)}", key):
        value = train_difficulty.get(candidate)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None


@dataclass
class GeneralisationRow:
    """One test set: its name, its difficulty (and on a second axis, if any) and its logged metrics (NaN where not logged)."""

    name: str
    difficulty: float
    values: dict[str, float]
    second: float | None = None


def collect_rows(
    metrics: Mapping[str, Any],
    difficulties: Sequence[tuple[str, Mapping[str, Any]]],
    metric: str,
    columns: Sequence[str] = tuple(COLUMNS),
) -> tuple[str, str | None, list[GeneralisationRow]]:
    """Read ``test/<set>/<metric>`` (:func:`~mannkit.metrics.keys.test_metric_key`; and the table's ``columns``) from ``metrics`` for every test set.

    Raises:
        ConfigError: ``metric`` was logged for none of the test sets (the message lists what was).
    """
    label, key, values = difficulty_axis(difficulties)
    wanted = [*columns, *([metric] if metric not in columns else [])]
    rows = []
    for (name, _), difficulty in zip(difficulties, values):
        keys = {m: test_metric_key(name, m) for m in wanted}
        found = {m: float(metrics[k]) for m, k in keys.items() if k in metrics}
        rows.append(GeneralisationRow(name, difficulty, {m: found.get(m, math.nan) for m in wanted}))
    if rows and all(math.isnan(r.values[metric]) for r in rows):
        logged = sorted({k.rsplit("/", 1)[-1] for k in metrics if k.startswith("test/")})
        raise ConfigError(
            f"LengthGeneralisation: no test set logged '{metric}'; the test metrics are {logged or 'none'}, "
            "so set metric to one of them."
        )
    return label, key, rows


def format_table(label: str | Sequence[str], rows: Sequence[GeneralisationRow], metric: str) -> str:
    """A plain-text table, one line per test set (one difficulty column per label; two when rows have ``second``).

    >>> print(format_table("length", [GeneralisationRow("len3", 3, {"bits_per_seq": 0.5})], "bits_per_seq"))
    test set  length  bits/seq
    len3           3    0.5000
    """
    names = [*rows[0].values] if rows else [*COLUMNS]
    columns = [c for c in [*names, metric] if c == metric or any(c in r.values for r in rows)]
    columns = list(dict.fromkeys(columns))  # metric may be one of the columns
    labels = [label] if isinstance(label, str) else list(label)
    heads = ["test set", *labels, *[HEADINGS.get(c, c) for c in columns]]
    cells = [
        [r.name, f"{r.difficulty:g}", *([f"{r.second:g}"] if len(labels) > 1 else []),
         *[f"{r.values.get(c, math.nan):.4f}" for c in columns]]
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in cells)) for i, h in enumerate(heads)]

    def line(items: list[str]) -> str:
        return "  ".join(s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(items, widths)))

    return "\n".join([line(heads), *[line(c) for c in cells]])


def draw_grid(
    rows: Sequence[GeneralisationRow], labels: tuple[str, str], metric: str, limits: tuple[float | None, float | None]
) -> Any:
    """The metric over two difficulty axes: one coloured square per test set at (first axis, second axis).

    Each square is annotated with its value; dashed lines mark the hardest training setting on
    each axis. Unlike a curve over the first axis, test sets that differ only on the second axis
    (repeat copy's ``len10_rep10`` and ``len10_rep20``) stay apart.

    Returns:
        a matplotlib ``Figure`` (see :mod:`mannkit.viz`).
    """
    from mannkit import viz

    fig, (ax,) = viz.new_figure(1)
    fig.set_size_inches(5.8, 4.2)
    x = [r.difficulty for r in rows]
    y = [r.second if r.second is not None else math.nan for r in rows]
    z = [r.values[metric] for r in rows]
    shown = [v for v in z if not math.isnan(v)]
    points = ax.scatter(x, y, c=z, s=900, marker="s", cmap="viridis", zorder=2,
                        vmin=min(shown, default=0.0), vmax=max(shown, default=1.0), edgecolors="black")
    for xi, yi, zi in zip(x, y, z):
        ax.annotate(f"{zi:.3g}", (xi, yi), ha="center", va="center", fontsize=7, zorder=3,
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.85, "linewidth": 0})
    for limit, line, name in ((limits[0], ax.axvline, labels[0]), (limits[1], ax.axhline, labels[1])):
        if limit is not None:
            line(limit, color="gray", linestyle="--", zorder=0, label=f"training maximum {name} ({limit:g})")
    heading = HEADINGS.get(metric, metric)
    fig.colorbar(points, ax=ax, label=heading)
    pad_x = max(1.0, 0.12 * (max(x) - min(x))) if x else 1.0
    pad_y = max(1.0, 0.12 * (max(y) - min(y))) if y else 1.0
    ax.set_xlim(min(x, default=0) - pad_x, max(x, default=1) + pad_x)
    ax.set_ylim(min(y, default=0) - pad_y, max(y, default=1) + pad_y)
    ax.set(xlabel=labels[0], ylabel=labels[1], title=f"{heading} by {labels[0]} and {labels[1]}")
    if any(limit is not None for limit in limits):
        ax.legend(loc="best", fontsize=7)
    ax.grid(alpha=0.3)
    return fig


@register
class LengthGeneralisation(Callback):
    """At the end of ``mannkit test``, report the cost per test set against its difficulty.

    Writes, in the run's log directory: ``generalisation.csv`` (one row per test set, in
    the order of ``test_set_names``) and ``generalisation_<metric>.png`` (the metric against
    the difficulty, a dashed line at the hardest training setting); logs the TensorBoard
    scalar series ``generalisation/<metric>`` with the difficulty as its step; prints the
    table. The model's own statistics logged at test (``SequenceOutput.stats``, e.g. ACT's
    ``ponder_mean`` and ``ponder_max``) get a column each, and a picture and a series of their
    own: ponder time against difficulty. The difficulty is the first int-valued setting of the
    task's ``test_difficulties()`` that differs between test sets (``min_length`` for the copy
    task, ``min_items`` for associative recall), else the number in each set's name. Only global
    rank zero reports.

    A task whose test sets differ on two declared axes (``test_axes()`` of a
    :class:`~mannkit.tasks.SequenceTask`: repeat copy's length and repeats, traversal's nodes and
    path length) gets both: a CSV column per axis, the picture of :func:`draw_grid`, and one
    TensorBoard series per value of the second axis, ``generalisation/<metric>/<axis><value>``,
    with the first axis as its step.

    Args:
        metric: the metric drawn and logged (``bits_per_seq``, ``bit_errors_per_seq``, ``seq_accuracy``,
            ``step_accuracy``, ``mse``...); null takes the first metric of the system's loss
            (``bits_per_seq`` for bits, ``seq_accuracy`` for classes, ``mse`` for regression).
        png: write the PNG picture.
    """

    def __init__(self, metric: str | None = None, png: bool = True) -> None:
        super().__init__()
        if metric is not None and (not isinstance(metric, str) or not metric or "/" in metric):
            raise ConfigError(
                f"LengthGeneralisation: metric must be a metric name such as 'bits_per_seq' (no '/'), got {metric!r}."
            )
        self.metric, self.png = metric, png
        self.rows: list[GeneralisationRow] = []
        self.files: list[Path] = []

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        data = getattr(trainer, "datamodule", None)
        if callable(getattr(data, "test_difficulties", None)):
            difficulties = list(data.test_difficulties())
        else:
            difficulties = [(name, {}) for name in getattr(pl_module, "test_set_names", ["test"])]
        train = data.train_difficulty() if callable(getattr(data, "train_difficulty", None)) else {}
        names = getattr(getattr(pl_module, "objective", None), "metric_names", None) or list(COLUMNS)
        metric = self.metric or names[0]
        stats = [n for n in getattr(pl_module, "test_stat_names", []) if n not in names and n != metric]
        metrics = {**trainer.logged_metrics, **trainer.callback_metrics}
        label, key, rows = collect_rows(metrics, difficulties, metric, [*names, *stats])
        limit = training_limit(key, train)
        axes = list(data.test_axes()) if callable(getattr(data, "test_axes", None)) else []
        two = len(axes) >= 2 and len(axes[0][1]) == len(rows)
        limits: tuple[float | None, float | None] = (limit, None)
        if two:
            (first, first_values), (second, second_values) = axes[0], axes[1]
            for row, a, b in zip(rows, first_values, second_values):
                row.difficulty, row.second = a, b
            labels: str | list[str] = [first, second]
            limits = (training_limit(first, train), training_limit(second, train))  # max_<axis>, else <axis>
            shown = ", ".join(f"{n} {v:g}" for n, v in zip(labels, limits) if v is not None)
            title = f"{first} and {second}"
        else:
            labels, title, shown = label, label, (f"{limit:g}" if limit is not None else "")
        self.rows = rows
        print(f"mannkit: generalisation by {title}" + (f" (training up to {shown})" if shown else ""))
        print(format_table(labels, rows, metric))

        folder = Path(trainer.log_dir or trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.files = [self._write_csv(folder / "generalisation.csv", labels, rows)]
        ordered = sorted(rows, key=lambda r: (r.second or 0, r.difficulty))
        drawn = [metric, *stats]  # the metric, then the model's own stats (ACT's ponder time)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                for name in drawn:
                    for row in ordered:
                        tag = f"generalisation/{name}" + (f"/{axes[1][0]}{row.second:g}" if two else "")
                        logger.experiment.add_scalar(tag, row.values[name], int(row.difficulty))
                logger.experiment.flush()
        if self.png:
            from matplotlib.image import imsave

            from mannkit import viz

            for name in drawn:
                if two:
                    fig = draw_grid(rows, (axes[0][0], axes[1][0]), name, limits)
                else:
                    fig = viz.draw_curve([r.difficulty for r in ordered], [r.values[name] for r in ordered],
                                         label, HEADINGS.get(name, name), limit)
                path = folder / f"generalisation_{viz.safe_name(name)}.png"
                imsave(path, viz.to_rgb(fig))
                self.files.append(path)

    @staticmethod
    def _write_csv(path: Path, label: str | Sequence[str], rows: Sequence[GeneralisationRow]) -> Path:
        columns = list(rows[0].values) if rows else list(COLUMNS)
        labels = [label] if isinstance(label, str) else list(label)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["test_set", *labels, *columns])
            for row in rows:
                axes = [f"{row.difficulty:g}", *([f"{row.second:g}"] if len(labels) > 1 else [])]
                writer.writerow([row.name, *axes, *[repr(row.values[c]) for c in columns]])
        return path
