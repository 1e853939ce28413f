"""QA metrics: answer correctness, counts and errors per task, mean error over tasks, failed tasks.

Hand-computed case (A = 3 answer classes, 7 questions, tasks 2, 5 and 7 of T = 7):

    question  task  answer  argmax  right
       0       2      0       0      yes
       1       2      1       2      no
       2       5      2       2      yes
       3       5      2       2      yes
       4       5     -1       0      no   (an answer outside the classes)
       5       7      1       1      yes
       6       7      0       0      yes

errors: task 2 = 1/2, task 5 = 1/3, task 7 = 0, others NaN; mean over the 3 tasks = 5/18; the
micro error 2/7 differs; failed (> 5%): tasks 2 and 5.
"""

import doctest
import math

import pytest
import torch

import mannkit.metrics.qa as qa_module
from mannkit.core.errors import ShapeError
from mannkit.metrics import (
    FailedTasks,
    MeanTaskError,
    PerTaskError,
    QAAccuracy,
    answer_correct,
    failed_tasks,
    mean_task_error,
    task_counts,
    task_errors,
)

ARGMAX = [0, 2, 2, 2, 0, 1, 0]
LOGITS = torch.nn.functional.one_hot(torch.tensor(ARGMAX), 3).float() * 2.0 - 0.5  # [7, 3]
ANSWER = torch.tensor([0, 1, 2, 2, -1, 1, 0])
TASK = torch.tensor([2, 2, 5, 5, 5, 7, 7])
T = 7


def test_docstrings():
    assert doctest.testmod(qa_module).failed == 0


def test_answer_correct():
    assert answer_correct(LOGITS, ANSWER).tolist() == [True, False, True, True, False, True, True]


def test_counts_and_errors_per_task():
    counts = task_counts(LOGITS, ANSWER, TASK, num_tasks=T)
    assert counts.shape == (T, 2) and counts.dtype == torch.long
    assert counts.tolist() == [[0, 0], [1, 2], [0, 0], [0, 0], [2, 3], [0, 0], [2, 2]]
    errors = task_errors(counts)
    assert [round(e, 6) for e in errors[[1, 4, 6]].tolist()] == [0.5, round(1 / 3, 6), 0.0]
    assert torch.isnan(errors[[0, 2, 3, 5]]).all()


def test_mean_error_counts_each_task_once_and_failed_tasks():
    errors = task_errors(task_counts(LOGITS, ANSWER, TASK, num_tasks=T))
    assert math.isclose(mean_task_error(errors).item(), 5 / 18, rel_tol=1e-6)
    assert not math.isclose(5 / 18, 2 / 7)  # the micro error would differ
    assert failed_tasks(errors).item() == 2
    assert failed_tasks(errors, threshold=0.4).item() == 1
    assert torch.isnan(mean_task_error(torch.full((3,), float("nan"))))


def test_failure_is_strictly_above_the_threshold():
    assert failed_tasks(torch.tensor([0.05, 0.0501, 0.0, float("nan")])).item() == 1


def test_metrics_accumulate_over_batches_like_the_functional_forms():
    metrics = {"acc": QAAccuracy(), "per": PerTaskError(T), "mean": MeanTaskError(T), "failed": FailedTasks(T, threshold=0.4)}
    for part in (slice(0, 3), slice(3, 7)):  # two batches that split task 5
        metrics["acc"].update(LOGITS[part], ANSWER[part])
        for name in ("per", "mean", "failed"):
            metrics[name].update(LOGITS[part], ANSWER[part], TASK[part])
    assert math.isclose(metrics["acc"].compute().item(), 5 / 7, rel_tol=1e-6)
    expected = task_errors(task_counts(LOGITS, ANSWER, TASK, num_tasks=T))
    torch.testing.assert_close(metrics["per"].compute(), expected, equal_nan=True)
    assert math.isclose(metrics["mean"].compute().item(), 5 / 18, rel_tol=1e-6)
    assert metrics["failed"].compute().item() == 1
    correct, total = metrics["per"].counts()
    assert correct.tolist() == [0, 1, 0, 0, 2, 0, 2] and total.tolist() == [0, 2, 0, 0, 3, 0, 2]
    metrics["per"].reset()
    assert metrics["per"].counts()[1].sum() == 0


def test_metadata():
    assert QAAccuracy.higher_is_better and not PerTaskError.higher_is_better
    assert not MeanTaskError.higher_is_better and not FailedTasks.higher_is_better


def test_shape_and_task_number_errors():
    with pytest.raises(ShapeError, match=r"answer_correct: answer has shape \[6\] but \[7\] was expected"):
        answer_correct(LOGITS, ANSWER[:6])
    with pytest.raises(ShapeError, match=r"answer_correct: logits has shape \[7\] but \[B, A\] was expected"):
        answer_correct(LOGITS[:, 0], ANSWER)
    with pytest.raises(ShapeError, match=r"task numbers must lie in 1\.\.7, got 0\.\.7; raise num_tasks or check the batch's task field\."):
        task_counts(LOGITS, ANSWER, TASK - 2 * (TASK == 2).long(), num_tasks=T)
    with pytest.raises(ShapeError, match=r"task numbers must lie in 1\.\.5, got 2\.\.7"):
        task_counts(LOGITS, ANSWER, TASK, num_tasks=5)
