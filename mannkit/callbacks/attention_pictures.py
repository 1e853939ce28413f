"""Pictures of where a question-answering model looks: its attention over the story's sentences, per hop or pass.

Shape letters: B batch, N sentence slots of a story, K hops (MemN2N) or passes (DMN+).

A :class:`~mannkit.core.interfaces.QAModel` asked to record returns a trace such as
``{"attention": [B, K, N]}``. Each entry of that shape is drawn for one example as a sentence x
hop heatmap, the story's sentences (oldest at the top) as row labels, the question, the answer
and the model's prediction in the title, and the supporting sentences (when the data knows
them) marked with ``*`` in red.

>>> import numpy as np
>>> fig = draw_story_attention("attention", np.array([[0.9, 0.1], [0.2, 0.8]]), ["mary went home .", "john left ."],
...                            "where is mary ?", answer="home", prediction="home", supporting=[0])
>>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
['* mary went home .', 'john left .']
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from mannkit.callbacks.memory_pictures import publish_figures
from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import NOT_AN_ANSWER
from mannkit.core.registry import register

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["AttentionPictures", "draw_story_attention", "attention_figures"]

MAX_LABEL = 48  # characters of a sentence shown as a row label


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 3] + "..."


def draw_story_attention(
    name: str,
    weights: np.ndarray,
    sentences: list[str],
    question: str,
    answer: str | None = None,
    prediction: str | None = None,
    supporting: list[int] | None = None,
) -> Figure:
    """``weights [K, n]`` (hop x sentence) as a sentence x hop heatmap with the sentences as row labels.

    Args:
        name: the trace entry (``attention``), shown in the title.
        weights: one example's weights; ``n`` must equal ``len(sentences)``.
        sentences: the story's sentences, oldest first.
        question: the question's text.
        answer: the right answer, shown in the title when given.
        prediction: the model's answer, shown in the title when given.
        supporting: indices of the supporting sentences, marked ``*``.

    Weights in [0, 1] share one colour scale from 0 to 1; others (raw scores under linear start)
    are scaled to their own range.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim != 2 or weights.shape[1] != len(sentences):
        raise ValueError(
            f"draw_story_attention: {name} has shape {list(weights.shape)} but [K, {len(sentences)}] was expected "
            "(one weight per sentence and hop)."
        )
    K, n = weights.shape
    marked = set(supporting or [])
    labels = [("* " if i in marked else "") + _short(s) for i, s in enumerate(sentences)]
    fig = Figure(figsize=(3.4 + 0.55 * K + 0.06 * max((len(x) for x in labels), default=0), 1.6 + 0.27 * max(n, 1)),
                 dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    in_unit = weights.size > 0 and float(weights.min()) >= 0.0 and float(weights.max()) <= 1.0
    scale = {"vmin": 0.0, "vmax": 1.0} if in_unit else {}
    image = ax.imshow(weights.T, aspect="auto", cmap="viridis", interpolation="nearest", **scale)  # [n, K]: sentences down, hops across
    ax.set_yticks(range(n), labels, fontsize=8)
    for i, tick in enumerate(ax.get_yticklabels()):
        if i in marked:
            tick.set_color("tab:red")  # the supporting sentences
    ax.set_xticks(range(K), [str(k + 1) for k in range(K)])
    ax.set_xlabel("hop / pass")
    title = f"Q: {question}"
    if answer is not None:
        title += f"\nanswer: {answer}"
    if prediction is not None:
        title += f"   predicted: {prediction}"
    ax.set_title(title, fontsize=9, loc="left")
    fig.colorbar(image, ax=ax, label=name.replace("_", " ") + ("" if in_unit else " (raw scores)"))
    return fig


def _texts(pl_module: Any, data: Any, batch: dict[str, torch.Tensor], index: int) -> dict[str, Any]:
    """Sentences, question, answer and supporting sentences of example ``index``: from the data when it can tell, else decoded."""
    if callable(getattr(data, "example", None)):
        return dict(data.example(index))
    vocab = getattr(pl_module, "vocab", None) or getattr(data, "vocab", None)

    def decode(ids: torch.Tensor) -> str:
        return " ".join((vocab[int(i)] if vocab else str(int(i))) for i in ids if int(i) != 0)

    story = batch["story"][index]  # [N, L]
    answers = getattr(pl_module, "answers", None) or getattr(data, "answers", None)
    answer = int(batch["answer"][index]) if "answer" in batch else -1
    return {
        "sentences": [decode(s) for s in story if bool((s != 0).any())],
        "question": decode(batch["question"][index]),
        "answer": answers[answer] if answers and 0 <= answer < len(answers) else None,
        "supporting": [],
    }


def attention_figures(pl_module: Any, batch: dict[str, torch.Tensor], example_index: int = 0, data: Any = None) -> dict[str, Figure]:
    """Run ``pl_module(story, question, record=True)`` in eval mode without gradients and draw example ``example_index``.

    Returns:
        trace entry -> figure, for every entry of shape ``[B, K, N]`` (N the story's sentence slots). The
        sentence rows are the story's real sentences (the padded slots after them are cut). An entry
        ``[B, K, M]`` with M < N (a model keeping a smaller memory) covers the M most recent sentences.
    """
    story, question = batch["story"], batch["question"]  # [B, N, L], [B, Q]
    if not 0 <= example_index < story.shape[0]:
        raise ConfigError(
            f"AttentionPictures: example_index {example_index} is outside the example batch of {story.shape[0]}; "
            f"use 0 to {story.shape[0] - 1}."
        )
    was_training = pl_module.training
    pl_module.eval()
    try:
        with torch.no_grad():
            out = pl_module(story, question, record=True)
    finally:
        pl_module.train(was_training)
    N = story.shape[1]
    entries = {k: v for k, v in (out.trace or {}).items() if v.dim() == 3 and 1 <= v.shape[-1] <= N}
    if not entries:
        model = getattr(pl_module, "model", pl_module)
        raise ConfigError(
            f"AttentionPictures: {type(model).__name__} records no attention over the story (a trace entry [B, K, {N}]); "
            "remove the callback or use a model that attends over sentences, such as MemN2N or DMNPlus."
        )
    text = _texts(pl_module, data, batch, example_index)
    n = int((story[example_index] != 0).any(-1).sum())  # real sentences come first
    answers = getattr(pl_module, "answers", None) or getattr(data, "answers", None)
    predicted = int(out.scores()[example_index].argmax())  # index A when the model's `rest` wins
    if predicted == out.logits.shape[-1]:
        prediction = NOT_AN_ANSWER
    else:
        prediction = answers[predicted] if answers and predicted < len(answers) else str(predicted)
    sentences = list(text["sentences"])[:n]
    figures = {}
    for name, value in entries.items():
        M = value.shape[-1]  # M < N: a memory of the M most recent sentences
        start = max(0, n - M)
        kept = min(n, M)
        weights = value[example_index, :, :kept].detach().float().cpu().numpy()  # [K, kept]
        supporting = [i - start for i in text.get("supporting") or [] if i >= start]
        figures[name] = draw_story_attention(
            name, weights, sentences[start : start + kept], text["question"], text.get("answer"), prediction, supporting
        )
    return figures


@register
class AttentionPictures(Callback):
    """After validation, draw a QA model's attention over the story of one fixed validation question.

    The question is ``trainer.datamodule.example_batch()``'s ``example_index``-th (the same each time), so
    successive pictures show the attention being learnt. Each trace entry ``[B, K, N]`` (``attention``
    of MemN2N's hops or DMN+'s passes) goes to TensorBoard as ``story/<entry>`` (the ``Images`` tab) and
    to ``<log_dir>/pictures/step{step:06d}_<entry>.png`` (the training step; in ``validate``/``test`` that of the checkpoint). Only global rank zero draws; the
    sanity-check validation is skipped.

    Args:
        every_n_validations: draw after every n-th validation (1: each one).
        example_index: which question of the example batch to draw.
        png: write PNG files.
        tensorboard: log images to every TensorBoard logger of the trainer.
    """

    def __init__(self, every_n_validations: int = 1, example_index: int = 0, png: bool = True, tensorboard: bool = True) -> None:
        super().__init__()
        if not isinstance(every_n_validations, int) or every_n_validations < 1:
            raise ConfigError(f"AttentionPictures: every_n_validations must be 1 or more, got {every_n_validations!r}.")
        if not isinstance(example_index, int) or example_index < 0:
            raise ConfigError(f"AttentionPictures: example_index must be 0 or more, got {example_index!r}.")
        if not (png or tensorboard):
            raise ConfigError("AttentionPictures: png and tensorboard are both false, so nothing would be drawn; enable one.")
        self.every_n_validations, self.example_index = every_n_validations, example_index
        self.png, self.tensorboard = png, tensorboard
        self.validations = 0
        self.last_files: list[Path] = []

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        data = getattr(trainer, "datamodule", None)
        if stage in ("fit", "validate") and not (callable(getattr(data, "example_batch", None)) and hasattr(data, "vocab")):
            raise ConfigError(
                f"AttentionPictures needs question-answering data with example_batch() and a vocab (such as BabiDataModule), "
                f"but the datamodule is {type(data).__name__}; use such data or remove the callback."
            )

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        self.validations += 1
        if self.validations % self.every_n_validations or not trainer.is_global_zero:
            return
        batch = trainer.datamodule.example_batch(self.example_index + 1)
        batch = {k: v.to(pl_module.device) for k, v in batch.items()}
        figures = attention_figures(pl_module, batch, self.example_index, trainer.datamodule)
        self.last_files = publish_figures(trainer, figures, "story", self.tensorboard, self.png)

    # -- checkpointed state -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validations = int(state_dict.get("validations", 0))
