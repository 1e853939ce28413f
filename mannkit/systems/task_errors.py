"""The bAbI papers' per-task error, mean error and failed tasks for a sequence model, by the QA system's own code.

Shape letters: B batch, T time, C classes, E questions of a batch.

A sequence task whose batches carry ``question [B, T]`` (the question's number at its answer steps, 0
elsewhere) and ``task [B]`` (each sequence's task number), such as :class:`~mannkit.tasks.BabiSequenceTask`,
gets from :class:`~mannkit.systems.SequenceSystem` what :class:`~mannkit.systems.QASystem` logs for a QA
model: ``<stage>/mean_error``, ``<stage>/failed_tasks``, ``<stage>/error/task{N}``, and after a test run the
table ``qa_results.md`` / ``qa_results.csv`` (:func:`~mannkit.systems.qa.write_task_table`). A question is
right when every one of its answer steps is (:func:`~mannkit.metrics.qa.question_correct`), and it is
counted by :class:`~mannkit.metrics.qa.PerTaskError` (as :class:`~mannkit.metrics.qa.JudgedTaskError`), so a DNC and a MemN2N are compared by the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mannkit.core.shapes import check_shape
from mannkit.metrics.qa import FAILURE_THRESHOLD, JudgedTaskError, PerTaskError, failed_tasks, mean_task_error, question_correct

__all__ = ["NUM_TASKS", "carries_questions", "update_task_errors", "log_task_errors", "write_task_results"]

#: Task numbers counted (the 20 bAbI tasks).
NUM_TASKS = 20


def carries_questions(batch: Mapping[str, Any]) -> bool:
    """Whether a batch says which question and task each answer step belongs to (``question`` and ``task``)."""
    return "question" in batch and "task" in batch


def update_task_errors(metric: JudgedTaskError, logits: Tensor, batch: Mapping[str, Tensor]) -> None:
    """Add a batch's questions to ``metric``: ``logits [B, T, C]``, ``target``/``question [B, T]``, ``task [B]``."""
    B, T = batch["target"].shape[:2]
    check_shape(batch["question"], (B, T), "batch question", "question is [B, T], a question number per step")
    check_shape(batch["task"], (B,), "batch task", "task is [B], one task number per sequence")
    correct, row = question_correct(logits, batch["target"], batch["question"])  # [E], [E]
    metric.update(correct, batch["task"][row])


def log_task_errors(module: Any, stage: str, metric: PerTaskError,
                    threshold: float = FAILURE_THRESHOLD) -> dict[int, tuple[int, int]]:
    """Log the mean error, failed tasks and each task's error as QASystem does; reset; return task -> (correct, questions)."""
    if not metric.update_called:  # no batch carried questions (any other sequence task)
        return {}
    correct, total = metric.counts()
    errors = metric.compute()  # [T], NaN for tasks without questions
    metric.reset()
    if not bool((total > 0).any()):
        return {}
    module.log(f"{stage}/mean_error", mean_task_error(errors), prog_bar=stage == "val")
    module.log(f"{stage}/failed_tasks", failed_tasks(errors, threshold).float())
    seen = {}
    for index in torch.nonzero(total > 0).flatten().tolist():
        module.log(f"{stage}/error/task{index + 1}", errors[index])
        seen[index + 1] = (int(correct[index]), int(total[index]))
    return seen


def write_task_results(module: Any, seen: Mapping[int, tuple[int, int]],
                       threshold: float = FAILURE_THRESHOLD) -> tuple[Path, Path] | None:
    """Write ``qa_results.md``/``.csv`` into the run's folder (global rank zero only); the paths, or None."""
    from mannkit.systems.qa import write_task_table

    trainer = module.trainer
    if not seen or not trainer.is_global_zero:
        return None
    names = getattr(getattr(trainer, "datamodule", None), "task_names", None) or {}
    return write_task_table(Path(trainer.log_dir or trainer.default_root_dir), seen, names, threshold)
