"""Metrics of question answering: accuracy, error per task, and the bAbI papers' summaries.

Shape letters: B batch, A answer classes, T task numbers counted (20 for bAbI).

The papers (Weston et al. 2015; Sukhbaatar et al. 2015; Xiong et al. 2016) report per task the
error (the fraction of test questions answered wrongly), then the **mean error** over tasks (each
task counts once, whatever its number of questions) and the number of **failed tasks**, those
with an error above 5%. Errors here are fractions in [0, 1]; tables show them as percentages.
Task numbers are 1-based; a task with no question seen has error NaN and is left out of both
summaries. An answer class of -1 (an answer never seen in training) is never predicted, so it
always counts as an error.

>>> import torch
>>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])   # predicts 0, 1, 0
>>> counts = task_counts(logits, torch.tensor([0, 0, 0]), torch.tensor([1, 1, 2]), num_tasks=3)
>>> task_errors(counts).tolist()       # task 1: one of two wrong; task 2: right; task 3: unseen
[0.5, 0.0, nan]
>>> mean_task_error(task_errors(counts)).item(), failed_tasks(task_errors(counts)).item()
(0.25, 1)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from mannkit.core.errors import ShapeError
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape

__all__ = [
    "FAILURE_THRESHOLD",
    "answer_correct",
    "task_counts",
    "correct_counts",
    "question_correct",
    "task_errors",
    "mean_task_error",
    "failed_tasks",
    "QAAccuracy",
    "PerTaskError",
    "JudgedTaskError",
    "MeanTaskError",
    "FailedTasks",
]

#: A task fails when its error is above this (5%, as in the bAbI papers).
FAILURE_THRESHOLD = 0.05


def answer_correct(logits: Tensor, answer: Tensor) -> Tensor:
    """Whether the highest-scoring class is the answer.

    Args:
        logits: ``[B, A]`` scores over answer classes.
        answer: ``[B]`` answer classes (-1: an answer outside the classes, always wrong).

    Returns:
        ``[B]`` bool.
    """
    check_shape(logits, ("B", "A"), "answer_correct: logits")
    check_shape(answer, (logits.shape[0],), "answer_correct: answer", fix="answer must be [B], one class per row of logits")
    return logits.argmax(dim=-1) == answer


def task_counts(logits: Tensor, answer: Tensor, task: Tensor, num_tasks: int = 20) -> Tensor:
    """Correct answers and questions per task.

    Args:
        logits: ``[B, A]``.
        answer: ``[B]`` answer classes.
        task: ``[B]`` task numbers, 1 to ``num_tasks``.
        num_tasks: T, the highest task number.

    Returns:
        ``[T, 2]`` int64: row ``t - 1`` holds (correct, questions) of task t.
    """
    correct = answer_correct(logits, answer)  # [B]
    check_shape(task, (logits.shape[0],), "task_counts: task", fix="task must be [B], one task number per question")
    return correct_counts(correct, task, num_tasks)


def correct_counts(correct: Tensor, task: Tensor, num_tasks: int = 20) -> Tensor:
    """Correct answers and questions per task, from whether each question was answered right.

    Args:
        correct: ``[E]`` bool, one entry per question.
        task: ``[E]`` task numbers, 1 to ``num_tasks``.
        num_tasks: T, the highest task number.

    Returns:
        ``[T, 2]`` int64: row ``t - 1`` holds (correct, questions) of task t.
    """
    check_shape(task, (correct.shape[0],), "correct_counts: task", fix="task must hold one task number per question")
    if task.numel() and (int(task.min()) < 1 or int(task.max()) > num_tasks):
        raise ShapeError(
            f"task_counts: task numbers must lie in 1..{num_tasks}, got {int(task.min())}..{int(task.max())}; "
            "raise num_tasks or check the batch's task field."
        )
    counts = torch.zeros(num_tasks, 2, dtype=torch.long, device=correct.device)
    index = task.long() - 1  # task t -> row t - 1
    counts[:, 0].index_add_(0, index, correct.long())
    counts[:, 1].index_add_(0, index, torch.ones_like(index))
    return counts


def question_correct(logits: Tensor, target: Tensor, question: Tensor) -> tuple[Tensor, Tensor]:
    """Whether each question of a batch of sequences was answered right: every one of its answer steps is.

    A sequence model answers at scored steps (one per answer word, :class:`~mannkit.tasks.BabiSequenceTask`);
    the steps of one question share its number in ``question``.

    Args:
        logits: ``[B, T, C]``.
        target: ``[B, T]`` class ids (-1: a word outside the classes, always wrong).
        question: ``[B, T]`` int, the question's number (1, 2, ...) within its row at answer steps, 0 elsewhere.

    Returns:
        ``correct [E]`` bool and ``row [E]`` (the batch row of each question), E the questions of the batch,
        ordered by row, then number.

    >>> logits = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])   # predicts 0, 0, 1, 1
    >>> question = torch.tensor([[0, 1, 2, 2]])       # question 1 at step 1, question 2 (two words) at steps 2, 3
    >>> question_correct(logits, torch.tensor([[5, 0, 1, 0]]), question)
    (tensor([ True, False]), tensor([0, 0]))
    """
    check_shape(logits, ("B", "T", "C"), "question_correct: logits")
    B, T, _ = logits.shape
    check_shape(target, (B, T), "question_correct: target", fix="target must be [B, T], one class id per step")
    check_shape(question, (B, T), "question_correct: question", fix="question must be [B, T], a question number per step")
    Q = int(question.max()) + 1 if question.numel() else 1  # numbers 0..Q-1 per row
    group = (torch.arange(B, device=logits.device).unsqueeze(1) * Q + question.long()).flatten()  # [B*T], row-major
    answered = (question > 0).flatten()
    wrong = (logits.argmax(-1) != target).flatten() & answered
    wrong_steps = torch.zeros(B * Q, dtype=torch.long, device=logits.device).index_add_(0, group, wrong.long())
    steps = torch.zeros(B * Q, dtype=torch.long, device=logits.device).index_add_(0, group, answered.long())
    asked = steps > 0  # [B*Q]: the (row, number) pairs that are questions
    return (wrong_steps == 0)[asked], torch.div(torch.arange(B * Q, device=logits.device), Q, rounding_mode="floor")[asked]


def task_errors(counts: Tensor) -> Tensor:
    """``counts [T, 2]`` (correct, questions) -> error per task ``[T]`` = ``1 - correct / questions``; NaN where 0 questions."""
    correct, total = counts[:, 0].double(), counts[:, 1].double()
    errors = 1.0 - correct / total.clamp_min(1)
    return torch.where(total > 0, errors, torch.full_like(errors, float("nan"))).float()


def mean_task_error(errors: Tensor) -> Tensor:
    """The mean of ``errors [T]`` over the tasks that have questions (NaN entries left out; NaN if none)."""
    return torch.nanmean(errors)


def failed_tasks(errors: Tensor, threshold: float = FAILURE_THRESHOLD) -> Tensor:
    """How many tasks of ``errors [T]`` have an error above ``threshold`` (int64; NaN entries do not count)."""
    return (errors > threshold).sum()  # NaN > x is False


@register(kind="metric")
class QAAccuracy(Metric):
    """The fraction of questions answered correctly, over every question seen (higher is better)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    correct: Tensor
    total: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, answer: Tensor) -> None:
        """Add a batch: ``logits [B, A]``, ``answer [B]``."""
        correct = answer_correct(logits, answer)
        self.correct += correct.sum()
        self.total += correct.numel()

    def compute(self) -> Tensor:
        return self.correct.float() / self.total.clamp_min(1)


@register(kind="metric")
class PerTaskError(Metric):
    """The error of each task, ``[num_tasks]`` (NaN for a task with no question seen; lower is better).

    Args:
        num_tasks: T, the highest task number (20 for bAbI).

    >>> metric = PerTaskError(num_tasks=2)
    >>> metric.update(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1]), torch.tensor([2, 2]))
    >>> metric.compute().tolist(), metric.counts()[1].tolist()
    ([nan, 0.5], [0, 2])
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    correct: Tensor
    total: Tensor

    def __init__(self, num_tasks: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_tasks = num_tasks
        self.add_state("correct", default=torch.zeros(num_tasks, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros(num_tasks, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, answer: Tensor, task: Tensor) -> None:
        """Add a batch: ``logits [B, A]``, ``answer [B]``, ``task [B]`` (1-based task numbers)."""
        counts = task_counts(logits, answer, task, self.num_tasks)  # [T, 2]
        self.correct += counts[:, 0]
        self.total += counts[:, 1]

    def counts(self) -> tuple[Tensor, Tensor]:
        """(correct ``[T]``, questions ``[T]``), summed across processes."""
        with self.sync_context(should_sync=self._to_sync, should_unsync=True):
            return self.correct.clone(), self.total.clone()

    def compute(self) -> Tensor:
        return task_errors(torch.stack([self.correct, self.total], dim=1))


@register(kind="metric")
class JudgedTaskError(PerTaskError):
    """:class:`PerTaskError` of questions already judged right or wrong (a sequence model's, see :func:`question_correct`).

    Args:
        num_tasks: T, the highest task number (20 for bAbI).

    >>> metric = JudgedTaskError(num_tasks=2)
    >>> metric.update(torch.tensor([True, False, True]), torch.tensor([2, 2, 1]))
    >>> metric.compute().tolist()
    [0.0, 0.5]
    """

    def update(self, correct: Tensor, task: Tensor) -> None:  # type: ignore[override]
        """Add questions: ``correct [E]`` bool, ``task [E]`` (1-based task numbers)."""
        counts = correct_counts(correct, task, self.num_tasks)  # [T, 2]
        self.correct += counts[:, 0]
        self.total += counts[:, 1]


@register(kind="metric")
class MeanTaskError(PerTaskError):
    """:func:`mean_task_error` of :class:`PerTaskError`: each task with questions counts once (lower is better)."""

    def compute(self) -> Tensor:
        return mean_task_error(super().compute())


@register(kind="metric")
class FailedTasks(PerTaskError):
    """:func:`failed_tasks` of :class:`PerTaskError`: tasks with an error above ``threshold`` (lower is better).

    Args:
        num_tasks: T, the highest task number.
        threshold: the error above which a task fails (0.05, as in the papers).
    """

    def __init__(self, num_tasks: int = 20, threshold: float = FAILURE_THRESHOLD, **kwargs: Any) -> None:
        super().__init__(num_tasks, **kwargs)
        self.threshold = threshold

    def compute(self) -> Tensor:
        return failed_tasks(super().compute(), self.threshold)
