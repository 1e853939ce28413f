"""QASystem: trains any :class:`~mannkit.core.interfaces.QAModel` on story/question/answer batches (bAbI).

Shape letters: B batch, N sentences per story, L words per sentence, Q words per question,
V words in the vocabulary, A answer classes.

Batches are dicts of int64 tensors: ``story [B, N, L]``, ``question [B, Q]``, ``answer [B]``
(the answer class; -1 for an answer outside the classes, never right) and ``task [B]`` (bAbI task
number 1..20), as :class:`~mannkit.tasks.BabiDataModule` makes them. The loss is the
cross-entropy of the answer class. Logged (errors are fractions; see :mod:`mannkit.metrics.qa`):

- ``train/loss``, ``train/accuracy``;
- ``val/loss``, ``val/accuracy``, ``val/mean_error``, ``val/failed_tasks``, ``val/error/task{N}``;
- ``test/loss``, ``test/accuracy``, ``test/mean_error``, ``test/failed_tasks``, ``test/error/task{N}``.

At the end of a test run the per-task table is written to ``<log_dir>/qa_results.md`` and
``qa_results.csv``; a predict run writes every answer as text to ``<log_dir>/answers.csv`` and
returns them per batch (for :class:`~mannkit.callbacks.PredictionWriter`).
"""

from __future__ import annotations

import csv
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mannkit.callbacks.checkpoint_io import CheckedLoading
from mannkit.callbacks.guard import stop_if_not_finite
from mannkit.core.config import instantiate, to_config
from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import NOT_AN_ANSWER, QAModel, QAOutput
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.metrics.qa import FAILURE_THRESHOLD, PerTaskError, QAAccuracy, failed_tasks, mean_task_error
from mannkit.systems.optim import DEFAULT_OPTIMIZER, build_optimization, torch_class

__all__ = ["QASystem", "BagOfWordsQA", "SIZE_NAMES", "answer_loss", "write_task_table"]

#: The sizes a QA model is bound with, in the order of :meth:`QAModel.bind`.
SIZE_NAMES = ("vocab_size", "answer_size", "max_sentences", "sentence_length", "question_length")
NUM_TASKS = 20
UNKNOWN_ANSWER = "<unknown>"


def answer_loss(logits: Tensor, answer: Tensor) -> Tensor:
    """Mean cross-entropy of the answer classes; rows with ``answer == -1`` (no class) are left out.

    Args:
        logits: ``[B, A]``.
        answer: ``[B]`` classes.

    >>> round(answer_loss(torch.zeros(2, 4), torch.tensor([3, -1])).item(), 4)   # ln 4: the -1 row is left out
    1.3863
    """
    if bool((answer >= 0).any()):
        return F.cross_entropy(logits, answer, ignore_index=-1)
    return logits.sum() * 0.0  # no scorable row: a zero that keeps the graph


@register
class BagOfWordsQA(QAModel):
    """A memory-free baseline: the answer from the summed word embeddings of the story and of the question.

    ``logits = W [sum_i sum_j E s_ij ; sum_j E' q_j]``: no attention, no word order, so it can only
    learn which answers go with which words. Useful as the floor a memory model must beat, and as
    a fast model for tests.

    Args:
        embedding_dim: D, the width of the word embeddings.
    """

    def __init__(self, embedding_dim: int = 32) -> None:
        super().__init__()
        if not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ConfigError(f"BagOfWordsQA: embedding_dim must be a positive integer, got {embedding_dim!r}; e.g. 32.")
        self.embedding_dim = embedding_dim

    def bind(self, vocab_size: int, answer_size: int, max_sentences: int, sentence_length: int, question_length: int) -> None:
        if not self._bind_once(vocab_size=vocab_size, answer_size=answer_size):
            return
        D = self.embedding_dim
        self.story_words = nn.Embedding(vocab_size, D, padding_idx=0)
        self.question_words = nn.Embedding(vocab_size, D, padding_idx=0)
        self.answer = nn.Linear(2 * D, answer_size)

    def forward(self, story: Tensor, question: Tensor, record: bool = False) -> QAOutput:
        from mannkit.nn.text import encode_sentences  # here, so that importing mannkit.systems imports no component

        s = encode_sentences(self.story_words(story), story, position=False).sum(1)  # [B, N, L, D] -> [B, N, D] -> [B, D]
        q = encode_sentences(self.question_words(question), question, position=False)  # [B, Q, D] -> [B, D]
        return QAOutput(self.answer(torch.cat([s, q], dim=-1)), {} if record else None)  # [B, 2D] -> [B, A]


def _metrics() -> nn.ModuleDict:
    return nn.ModuleDict({"accuracy": QAAccuracy(), "task_error": PerTaskError(NUM_TASKS)})


@register
class QASystem(CheckedLoading, pl.LightningModule):
    """A LightningModule around any question-answering model; the model's sizes come from the data.

    Args:
        model: the QA model (e.g. MemN2N, DMNPlus, BagOfWordsQA).
        optimizer: ``{class_path, init_args}`` of a ``torch.optim`` optimizer (Adam, lr 1e-3 by default);
            ``class_path`` is a class name of ``torch.optim`` (``SGD``) or a full dotted path.
        lr_scheduler: optional ``{class_path, init_args}`` of a ``torch.optim.lr_scheduler``, stepped per epoch
            (``ReduceLROnPlateau`` watches ``val/loss``).
        failure_threshold: a task whose error is above this fails (0.05, the papers' 5%).
        loss_reduction: ``mean`` (the cross-entropy averaged over the batch) or ``sum`` (summed over the batch's
            questions, as MemN2N's SGD: the learning rate and gradient clip then act on the summed cost, and a
            short last batch takes a proportionally shorter step). ``train/loss`` is logged as the mean either way.
        vocab_size: V; left null, taken from the data (``data.vocab_size``) at setup, like the four sizes below.
        answer_size: A, the number of answer classes.
        max_sentences: N, sentences per story.
        sentence_length: L, words per sentence.
        question_length: Q, words per question.
        vocab: the words, index = word id; left null, taken from the data and saved, so a checkpoint
            can write its answers as text and refuses data with another vocabulary.
        answers: the answer strings, index = class; as ``vocab``.
    """

    def __init__(
        self,
        model: QAModel,
        optimizer: dict | None = None,
        lr_scheduler: dict | None = None,
        failure_threshold: float = FAILURE_THRESHOLD,
        loss_reduction: str = "mean",
        vocab_size: int | None = None,
        answer_size: int | None = None,
        max_sentences: int | None = None,
        sentence_length: int | None = None,
        question_length: int | None = None,
        vocab: list[str] | None = None,
        answers: list[str] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(model, Mapping):  # rebuilt from a checkpoint's hyper-parameters
            model = instantiate(model, "model.model")
        if not isinstance(model, QAModel):
            raise ConfigError(
                f"model.model must be a question-answering model such as MemN2N, got {type(model).__name__}; "
                "give its class_path under model.init_args.model."
            )
        if not 0.0 <= failure_threshold < 1.0:
            raise ConfigError(f"model.failure_threshold must be at least 0 and below 1, got {failure_threshold!r}; the papers use 0.05.")
        if loss_reduction not in ("mean", "sum"):
            raise ConfigError(f"model.loss_reduction must be mean or sum, got {loss_reduction!r}; mean averages the cost over a batch.")
        optimizer = dict(optimizer or DEFAULT_OPTIMIZER)
        torch_class(str(optimizer.get("class_path", "")), torch.optim, "model.optimizer.class_path")
        if lr_scheduler is not None:
            torch_class(str(lr_scheduler.get("class_path", "")), torch.optim.lr_scheduler, "model.lr_scheduler.class_path")
        self.model = model
        self.optimizer_config, self.scheduler_config = optimizer, lr_scheduler
        self.failure_threshold = float(failure_threshold)
        self.loss_reduction = loss_reduction
        sizes = dict(zip(SIZE_NAMES, (vocab_size, answer_size, max_sentences, sentence_length, question_length)))
        self.sizes: dict[str, int] | None = None
        self.vocab, self.answers = (list(vocab) if vocab is not None else None), (list(answers) if answers is not None else None)
        # plain data only, so checkpoints load with weights_only and rebuild the model anywhere
        self.save_hyperparameters(
            {
                "_class_path": f"{type(self).__module__}.{type(self).__qualname__}",
                "model": to_config(model),
                "optimizer": optimizer,
                "lr_scheduler": lr_scheduler,
                "failure_threshold": failure_threshold,
                "loss_reduction": loss_reduction,
                **sizes,
                "vocab": self.vocab,
                "answers": self.answers,
            }
        )
        if any(v is not None for v in sizes.values()):
            self._bind(sizes)
        self.val_metrics = _metrics()
        self.test_metrics = _metrics()
        self._answers_written: list[dict[str, Any]] = []

    # -- sizes -----------------------------------------------------------------------------------
    def _bind(self, sizes: dict[str, Any], vocab: list[str] | None = None, answers: list[str] | None = None) -> None:
        for name, value in sizes.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"model.{name} is {value!r} but must be a positive integer; leave all five sizes null to take them "
                    "from the data, or give all five."
                )
        if vocab is not None:
            self.vocab, self.answers = list(vocab), list(answers or [])
        extra = {}
        if "answer_words" in inspect.signature(self.model.bind).parameters and self.vocab and self.answers:
            from mannkit.tasks.babi import answer_word_ids

            extra["answer_words"] = answer_word_ids(self.vocab, self.answers)  # [A, La], for models that tie W to words
        self.model.bind(*(sizes[name] for name in SIZE_NAMES), **extra)
        self.sizes = dict(sizes)
        self.hparams.update({**self.sizes, "vocab": self.vocab, "answers": self.answers})

    def _bind_from_data(self) -> None:
        """Take the sizes from the datamodule the first time a trainer runs (before optimizers and DDP exist)."""
        data = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if data is not None and not hasattr(data, "vocab_size"):
            raise ConfigError(
                f"data.class_path: QASystem trains on question-answering data (story, question, answer) such as "
                f"BabiDataModule, but {type(data).__name__} has no vocab_size; use SequenceSystem as the model for "
                "sequence tasks, or BabiDataModule as the data."
            )
        if data is None:
            if self.sizes is None:
                raise ConfigError(
                    "model.vocab_size is not set and there is no data to take it from; pass a datamodule such as "
                    "BabiDataModule, or set the five sizes."
                )
            return
        sizes = {name: int(getattr(data, name)) for name in SIZE_NAMES}
        if self.sizes is None:
            self._bind(sizes, list(getattr(data, "vocab", [])) or None, list(getattr(data, "answers", [])) or None)
            return
        fix = "use the data_dir, tasks and memory_size the model was trained with"
        if sizes != self.sizes:
            changed = ", ".join(f"{k} {self.sizes[k]} -> {sizes[k]}" for k in SIZE_NAMES if sizes[k] != self.sizes[k])
            raise ConfigError(f"the model was built for other data sizes than {type(data).__name__} gives ({changed}); {fix}.")
        for name in ("vocab", "answers"):
            mine, theirs = getattr(self, name), getattr(data, name, None)
            if mine and theirs is not None and list(theirs) != mine:
                raise ConfigError(f"the model was trained with another {name} than {type(data).__name__} gives (same size, other words); {fix}.")

    def setup(self, stage: str) -> None:
        self._bind_from_data()

    # -- model -----------------------------------------------------------------------------------
    def forward(self, story: Tensor, question: Tensor, record: bool = False) -> QAOutput:
        """``story [B, N, L]``, ``question [B, Q]`` -> :class:`~mannkit.core.interfaces.QAOutput` (logits ``[B, A]``)."""
        return self.model(story, question, record)

    def _check_batch(self, batch: Mapping[str, Tensor]) -> None:
        assert self.sizes is not None
        s = self.sizes
        fix = "use the data settings the model was trained with"
        story = batch["story"]
        check_shape(story, ("B", s["max_sentences"], s["sentence_length"]), "batch story", fix)
        B = story.shape[0]
        check_shape(batch["question"], (B, s["question_length"]), "batch question", fix)
        check_shape(batch["answer"], (B,), "batch answer")
        check_shape(batch["task"], (B,), "batch task")

    def _logits(self, batch: Mapping[str, Tensor]) -> Tensor:
        self._check_batch(batch)
        return self(batch["story"], batch["question"]).scores()  # [B, A] (or [B, A + 1] with a model's `rest`)

    # -- steps -----------------------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        logits = self._logits(batch)
        loss = answer_loss(logits, batch["answer"])
        stop_if_not_finite(self, loss)  # the NaN stop, all ranks together (mannkit.callbacks.guard)
        B = logits.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=B)
        accuracy = (logits.detach().argmax(-1) == batch["answer"]).float().mean()
        self.log("train/accuracy", accuracy, prog_bar=True, batch_size=B)
        if self.loss_reduction == "sum":
            return loss * (batch["answer"] >= 0).sum()  # the mean times the scorable questions
        return loss

    def _evaluate(self, stage: str, metrics: nn.ModuleDict, batch: Mapping[str, Tensor]) -> Tensor:
        logits = self._logits(batch)
        B = logits.shape[0]
        self.log(f"{stage}/loss", answer_loss(logits, batch["answer"]), prog_bar=stage == "val", batch_size=B, sync_dist=True)
        metrics["accuracy"](logits, batch["answer"])
        self.log(f"{stage}/accuracy", metrics["accuracy"], prog_bar=stage == "val", batch_size=B)
        metrics["task_error"].update(logits, batch["answer"], batch["task"])
        return logits

    def _log_task_errors(self, stage: str, metric: PerTaskError) -> dict[int, tuple[int, int]]:
        """Log the mean error, failed tasks and each task's error; return task -> (correct, questions)."""
        correct, total = metric.counts()
        errors = metric.compute()  # [T], NaN for tasks without questions
        metric.reset()
        if not bool((total > 0).any()):
            return {}
        self.log(f"{stage}/mean_error", mean_task_error(errors), prog_bar=stage == "val")
        self.log(f"{stage}/failed_tasks", failed_tasks(errors, self.failure_threshold).float())
        seen = {}
        for index in torch.nonzero(total > 0).flatten().tolist():
            self.log(f"{stage}/error/task{index + 1}", errors[index])
            seen[index + 1] = (int(correct[index]), int(total[index]))
        return seen

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate("val", self.val_metrics, batch)

    def on_validation_epoch_end(self) -> None:
        self._log_task_errors("val", self.val_metrics["task_error"])

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate("test", self.test_metrics, batch)

    def on_test_epoch_end(self) -> None:
        seen = self._log_task_errors("test", self.test_metrics["task_error"])
        if seen and self.trainer.is_global_zero:
            names = getattr(getattr(self.trainer, "datamodule", None), "task_names", None) or {}
            self.results_paths = write_task_table(self._run_dir(), seen, names, self.failure_threshold)

    def predict_step(self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Returns ``prediction [B]`` (classes), ``answer`` (B strings), ``correct [B]`` and ``task [B]``."""
        logits = self._logits(batch)
        prediction = logits.argmax(-1)
        words = [self._answer_text(int(c)) for c in prediction]
        out = {"prediction": prediction, "answer": words, "correct": prediction == batch["answer"], "task": batch["task"]}
        for k in range(prediction.shape[0]):
            self._answers_written.append(
                {
                    "task": int(batch["task"][k]),
                    "question": self._text(batch["question"][k]),
                    "prediction": words[k],
                    "answer": self._answer_text(int(batch["answer"][k])),
                }
            )
        return out

    def on_predict_epoch_start(self) -> None:
        self._answers_written = []

    def on_predict_epoch_end(self) -> None:
        rank = "" if self.trainer.world_size == 1 else f"rank{self.trainer.global_rank}_"
        path = self._run_dir() / f"{rank}answers.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["index", "task", "question", "prediction", "answer", "correct"])
            writer.writeheader()
            for index, row in enumerate(self._answers_written):
                writer.writerow({"index": index, **row, "correct": int(row["prediction"] == row["answer"])})
        self.answers_path = path

    def _answer_text(self, index: int) -> str:
        if self.answers and 0 <= index < len(self.answers):
            return self.answers[index]
        if self.sizes is not None and index == self.sizes["answer_size"]:  # QAOutput.rest won: no answer class
            return NOT_AN_ANSWER
        return UNKNOWN_ANSWER if index < 0 else str(index)

    def _text(self, ids: Tensor) -> str:
        if not self.vocab:
            return " ".join(str(int(i)) for i in ids if int(i) != 0)
        return " ".join(self.vocab[int(i)] for i in ids if int(i) != 0)

    def _run_dir(self) -> Path:
        return Path(self.trainer.log_dir or self.trainer.default_root_dir)

    # -- optimisation ----------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        return build_optimization(self.parameters(), self.optimizer_config, self.scheduler_config)


def write_task_table(folder: Path, seen: Mapping[int, tuple[int, int]], names: Mapping[int, str],
                     threshold: float = FAILURE_THRESHOLD) -> tuple[Path, Path]:
    """Write ``qa_results.md`` and ``qa_results.csv``: one row per task, then the mean error and failed tasks.

    Args:
        folder: where to write.
        seen: task number -> (correct answers, questions).
        names: task number -> name (e.g. ``single-supporting-fact``); missing names are left blank.
        threshold: the error above which a task fails.

    Returns:
        The two paths. CSV columns: ``task, name, questions, correct, error_percent, failed``; its last row,
        task ``mean``, holds the totals, the mean error over tasks and the number of failed tasks.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in sorted(seen):
        correct, total = seen[task]
        error = 1.0 - correct / total
        rows.append((task, names.get(task, ""), total, correct, 100.0 * error, error > threshold))
    mean = sum(r[4] for r in rows) / len(rows)
    failed = sum(r[5] for r in rows)
    totals = (sum(r[2] for r in rows), sum(r[3] for r in rows))
    md = folder / "qa_results.md"
    lines = ["| task | name | questions | correct | error (%) | failed |", "|---:|:---|---:|---:|---:|:---:|"]
    lines += [f"| {t} | {n} | {q} | {c} | {e:.1f} | {'yes' if f else ''} |" for t, n, q, c, e, f in rows]
    lines += ["", f"Mean error: {mean:.1f}% over {len(rows)} tasks; failed tasks (error > {100 * threshold:g}%): {failed}."]
    md.write_text("\n".join(lines) + "\n")
    path = folder / "qa_results.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "name", "questions", "correct", "error_percent", "failed"])
        writer.writerows([(t, n, q, c, f"{e:.2f}", int(f)) for t, n, q, c, e, f in rows])
        writer.writerow(["mean", "", totals[0], totals[1], f"{mean:.2f}", failed])
    return md, path
