"""Drawing helpers: memory-access pictures and generalisation curves, rendered off-screen.

Shape letters: T time, C channels (input or output bits), h heads of one bank, N memory
slots, W word size, K any other size.

Everything here takes arrays for **one example** (the batch axis already removed) and
returns :class:`matplotlib.figure.Figure` objects drawn on an Agg canvas: no display, no
``pyplot`` and its global figure list. :func:`to_rgb` turns a figure into a ``[H, W, 3]``
uint8 array for TensorBoard or a PNG file.

How a trace entry ``[T, ...]`` is drawn depends only on its name and rank, so whatever a
plugin records (``Memory.describe``, ``HeadOutput.trace``) is drawn without changes here:

================================  =====================================================
entry                             picture
================================  =====================================================
``*_weights`` ``[T, h, N]``       one panel per head: time step x memory slot
``*_modes`` ``[T, h, M]``         one panel per head: each mode's share over time (lines)
``link`` ``[T, N, N]``            the last step: slot written after x slot written before
other ``[T, N, W]`` (``memory``)  the matrix at the last step: memory slot x word element
``[T, K]`` (``usage``, ...)       time step x index heatmap
``[T]`` (``ponder``, ...)         a line over time steps
anything else                     skipped (see :func:`view_of`)
================================  =====================================================

A name may carry a prefix: ``<memory>/<entry>`` for a named memory of a cell with several,
``layer<k>/<entry>`` for a layer of :class:`~mannkit.nn.StackedCells`; the suffix decides the picture.
Entries of a memory whose state grows (a stack, a tape: ``[T, h, t]`` weights over t rows) come
zero-padded to the largest size of the sequence (:func:`mannkit.core.interfaces.stack_steps`), so
slots not yet written at a step are drawn as 0.

>>> import numpy as np
>>> figures = draw_trace({"read_weights": np.full((5, 2, 7), 1 / 7), "ponder": np.arange(5.0)})
>>> sorted(figures), to_rgb(figures["read_weights"]).dtype.name
(['ponder', 'read_weights'], 'uint8')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "new_figure",
    "to_rgb",
    "safe_name",
    "view_of",
    "draw_example",
    "draw_head_weights",
    "draw_final_matrix",
    "draw_over_time",
    "draw_modes",
    "draw_trace",
    "draw_curve",
]

DPI = 100
PANEL = (3.6, 2.8)  # inches per panel (width, height)
MAX_COLUMNS = 4  # panels per row before wrapping
LABEL_WIDTH = 0.11  # inches per time step when each step is labelled (a word of a bAbI stream)


def new_figure(panels: int = 1, columns: int | None = None, labelled_steps: int = 0) -> tuple[Figure, list]:
    """A figure on its own Agg canvas with ``panels`` axes in rows of at most ``MAX_COLUMNS``.

    ``labelled_steps``: T > 0 when every time step gets a text label (a word): the panels are stacked
    one per row, each wide enough for T vertical labels.
    """
    if labelled_steps:
        columns = 1
        width, height = max(PANEL[0], LABEL_WIDTH * labelled_steps), PANEL[1] + 0.7  # room for the labels
    else:
        columns = max(1, min(panels, columns or MAX_COLUMNS))
        width, height = PANEL[0], PANEL[1]
    rows = -(-panels // columns)  # ceil
    fig = Figure(figsize=(width * columns + 0.8, height * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, columns, i + 1) for i in range(panels)]
    return fig, axes


def to_rgb(fig: Figure) -> np.ndarray:
    """Render ``fig`` and return its pixels as uint8 ``[H, W, 3]``."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()  # RGBA -> RGB


def safe_name(name: str) -> str:
    """``name`` with anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``_`` (for file names).

    >>> safe_name("stack/strengths 0")
    'stack_strengths_0'
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _integer_ticks(ax) -> None:  # noqa: ANN001
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _time_axis(ax, labels: Sequence[str] | None) -> None:  # noqa: ANN001
    """Label the time axis: every step with its text (``labels``, e.g. the words read), else integer steps."""
    if not labels:
        ax.set_xlabel("time step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return
    ax.set_xticks(np.arange(len(labels)), list(labels), rotation=90, fontsize=6)
    ax.set_xlabel("input at each time step")


def _title(name: str) -> str:
    return name.replace("_", " ")


def view_of(name: str, value: np.ndarray) -> str | None:
    """How an entry ``[T, ...]`` is drawn: ``"heads"``, ``"final"``, ``"over_time"`` or None (skipped).

    >>> import numpy as np
    >>> [view_of(n, np.zeros(s)) for n, s in [("read_weights", (3, 2, 5)), ("memory", (3, 5, 4)),
    ...                                       ("usage", (3, 5)), ("ponder", (3,)), ("odd", (3, 1, 2, 2))]]
    ['heads', 'final', 'over_time', 'over_time', None]
    >>> view_of("read_modes", np.zeros((3, 2, 3))), view_of("link", np.zeros((3, 5, 5)))
    ('modes', 'final')
    """
    if value.ndim == 3:
        if name.endswith("_modes"):
            return "modes"
        return "heads" if name.endswith("_weights") else "final"
    if value.ndim in (1, 2):
        return "over_time"
    return None


def draw_example(input: np.ndarray, target: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None = None,
                 step_labels: Sequence[str] | None = None) -> Figure:
    """Input ``[T, I]``, target ``[T, O]`` and prediction ``[T, O]`` (probabilities) as time x channel panels.

    Steps where ``mask [T]`` is 0 (not scored) are hatched over in the target and prediction;
    ``step_labels`` (T texts) label the time axis.
    """
    fig, axes = new_figure(3, columns=3, labelled_steps=len(step_labels or ()))
    hatched = " (hatched: not scored)" if mask is not None and (np.asarray(mask) == 0).any() else ""
    panels = (("input", input, None), (f"target{hatched}", target, mask), ("prediction (probability)", prediction, mask))
    for ax, (title, data, scored) in zip(axes, panels):
        image = ax.imshow(data.T, aspect="auto", origin="lower", cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
        if scored is not None:
            for t in np.flatnonzero(np.asarray(scored) == 0):
                ax.axvspan(t - 0.5, t + 0.5, facecolor="none", edgecolor="tab:blue", hatch="//", linewidth=0, alpha=0.3)
        ax.set(title=title, ylabel="channel")
        _integer_ticks(ax)
        _time_axis(ax, step_labels)
    fig.colorbar(image, ax=axes, label="value", shrink=0.8)
    return fig


def draw_head_weights(name: str, weights: np.ndarray, step_labels: Sequence[str] | None = None) -> Figure:
    """``weights [T, h, N]`` (entry ``name`` = ``<kind>_weights``) as one time x slot panel per head."""
    if weights.ndim != 3:
        raise ValueError(f"draw_head_weights: {name} has shape {list(weights.shape)} but [T, h, N] was expected.")
    kind = _title(name[: -len("_weights")] if name.endswith("_weights") else name)
    heads = weights.shape[1]
    fig, axes = new_figure(heads, labelled_steps=len(step_labels or ()))
    for k, ax in enumerate(axes):
        image = ax.imshow(weights[:, k, :].T, aspect="auto", origin="lower", cmap="viridis", vmin=0.0, vmax=1.0,
                          interpolation="nearest")  # [N, T]: slots on y, time on x
        ax.set(title=f"{kind} head {k}", ylabel="memory slot")
        _integer_ticks(ax)
        _time_axis(ax, step_labels)
    fig.colorbar(image, ax=axes, label="weight", shrink=0.8)
    return fig


def draw_final_matrix(name: str, value: np.ndarray) -> Figure:
    """The last step of ``value [T, N, W]`` as a memory slot x word element matrix."""
    if value.ndim != 3:
        raise ValueError(f"draw_final_matrix: {name} has shape {list(value.shape)} but [T, N, W] was expected.")
    fig, (ax,) = new_figure(1)
    last = value.shape[0] - 1
    if name.rpartition("/")[2] == "link":  # a temporal link matrix L[i, j] in [0, 1] (DNC), [N, N]
        image = ax.imshow(value[last], aspect="equal", origin="lower", cmap="viridis", interpolation="nearest",
                          vmin=0.0, vmax=max(float(value[last].max()), 1e-6))  # i (written after) on y, j (before) on x
        ax.set(title=f"{_title(name)} at step {last}", xlabel="slot j (written before)", ylabel="slot i (written after j)")
        _integer_ticks(ax)
        fig.colorbar(image, ax=ax, label="link L[i, j]")
        return fig
    bound = float(np.abs(value[last]).max()) or 1.0  # symmetric colour scale around 0
    image = ax.imshow(value[last], aspect="auto", origin="lower", cmap="RdBu_r", interpolation="nearest",
                      vmin=-bound, vmax=bound)  # [N, W]: slots on y, word elements on x
    ax.set(title=f"{_title(name)} at step {last}", xlabel="word element", ylabel="memory slot")
    _integer_ticks(ax)
    fig.colorbar(image, ax=ax, label="value")
    return fig


def draw_over_time(name: str, value: np.ndarray, slots: int | None = None, step_labels: Sequence[str] | None = None) -> Figure:
    """``value [T]`` as a line, or ``value [T, K]`` as a time x index heatmap (index = memory slot when K == slots)."""
    fig, (ax,) = new_figure(1, labelled_steps=len(step_labels or ()))
    if value.ndim == 1:
        ax.plot(np.arange(value.shape[0]), value, marker="o")
        ax.set(title=_title(name), ylabel=_title(name))
        _time_axis(ax, step_labels)
        return fig
    if value.ndim != 2:
        raise ValueError(f"draw_over_time: {name} has shape {list(value.shape)} but [T] or [T, K] was expected.")
    image = ax.imshow(value.T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")  # [K, T]
    ax.set(title=_title(name), ylabel="memory slot" if value.shape[1] == slots else f"{_title(name)} index")
    _integer_ticks(ax)
    _time_axis(ax, step_labels)
    fig.colorbar(image, ax=ax, label="value")
    return fig


#: Names of the modes of a ``*_modes`` entry, by entry name (the DNC's read modes, in its order); others are numbered.
MODE_NAMES = {"read_modes": ("backward", "content", "forward")}


def draw_modes(name: str, value: np.ndarray, step_labels: Sequence[str] | None = None) -> Figure:
    """``value [T, h, M]``, a mixture over M modes per head and step (e.g. DNC read modes), as M lines per head."""
    if value.ndim != 3:
        raise ValueError(f"draw_modes: {name} has shape {list(value.shape)} but [T, h, M] was expected.")
    modes = MODE_NAMES.get(name.rpartition("/")[2], ())
    labels = [modes[m] if m < len(modes) else f"mode {m}" for m in range(value.shape[2])]
    kind = _title(name[: -len("_modes")] if name.endswith("_modes") else name)
    fig, axes = new_figure(value.shape[1], labelled_steps=len(step_labels or ()))
    steps = np.arange(value.shape[0])
    for k, ax in enumerate(axes):
        for m, label in enumerate(labels):
            ax.plot(steps, value[:, k, m], marker=".", label=label)
        ax.set(title=f"{kind} modes, head {k}", ylabel="weight", ylim=(-0.02, 1.02))
        _time_axis(ax, step_labels)
        ax.legend(loc="best", fontsize="small")
    return fig


def _slots(trace: Mapping[str, np.ndarray]) -> int | None:
    """N, from the first ``*_weights`` entry (its last axis), or None."""
    for name, value in trace.items():
        if name.endswith("_weights") and value.ndim >= 2:
            return int(value.shape[-1])
    return None


def draw_trace(trace: Mapping[str, np.ndarray], step_labels: Sequence[str] | None = None) -> dict[str, Figure]:
    """One figure per drawable entry of a one-example trace (each ``[T, ...]``); see the module docstring.

    ``step_labels``: one text per time step (the words a bAbI stream reads), put on every time axis.
    """
    slots = _slots(trace)
    figures: dict[str, Figure] = {}
    for name, value in trace.items():
        value = np.asarray(value, dtype=np.float32)
        view = view_of(name, value)
        if view == "heads":
            figures[name] = draw_head_weights(name, value, step_labels)
        elif view == "final":
            figures[name] = draw_final_matrix(name, value)
        elif view == "modes":
            figures[name] = draw_modes(name, value, step_labels)
        elif view == "over_time":
            figures[name] = draw_over_time(name, value, slots, step_labels)
    return figures


def draw_curve(
    x: Sequence[float],
    y: Sequence[float],
    x_label: str,
    y_label: str,
    train_max: float | None = None,
    title: str | None = None,
) -> Figure:
    """``y`` against ``x`` with markers; a dashed vertical line at ``train_max`` (the hardest training setting)."""
    fig, (ax,) = new_figure(1)
    fig.set_size_inches(5.5, 3.8)
    ax.plot(list(x), list(y), marker="o", label=y_label)
    if train_max is not None:
        ax.axvline(train_max, color="gray", linestyle="--", label=f"training maximum ({train_max:g})")
    if all(float(v).is_integer() for v in x):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel=x_label, ylabel=y_label, title=title or f"{y_label} by {x_label}")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return fig
