"""Coarse and fine accuracy of the transduction tasks, by hand."""

import pytest
import torch
from torch.nn.functional import one_hot

from mannkit.metrics import FineAccuracy, coarse_accuracy, fine_accuracy


def _logits(ids):  # noqa: ANN001,ANN202
    return one_hot(torch.tensor(ids), 5).float()


def test_fine_accuracy_counts_the_right_steps_before_the_first_error():
    logits = _logits([[1, 2, 3, 4, 0], [1, 2, 3, 4, 0], [1, 2, 3, 4, 0]])
    target = torch.tensor([[1, 2, 0, 4, 0], [0, 2, 3, 4, 0], [9, 2, 3, 4, 0]])
    mask = torch.tensor([[1.0, 1, 1, 1, 0], [0, 1, 1, 1, 1], [0, 0, 0, 0, 0]])  # an error at an unscored step counts not
    assert fine_accuracy(logits, target, mask).tolist() == [0.5, 1.0, 1.0]
    assert coarse_accuracy(logits, target, mask).tolist() == [False, True, True]


def test_the_metric_averages_over_sequences_across_batches():
    metric = FineAccuracy()
    metric.update(_logits([[1, 1]]), torch.tensor([[1, 0]]), torch.ones(1, 2))  # 0.5
    metric.update(_logits([[1, 1], [2, 2]]), torch.tensor([[0, 1], [2, 2]]), torch.ones(2, 2))  # 0, 1
    assert torch.isclose(metric.compute(), torch.tensor(0.5))


def test_fine_accuracy_scores_digit_targets_digit_by_digit():
    # one step of 3 digits over 2 classes: predicts 1, 0, 1 against 1, 1, 1 -> 1 right before the first error of 3
    logits = torch.tensor([[[0.0, 1.0, 1.0, 0.0, 0.0, 1.0]]])  # [B=1, T=1, D*C=6]
    target, mask = torch.tensor([[[1, 1, 1]]]), torch.ones(1, 1)
    assert fine_accuracy(logits, target, mask).tolist() == pytest.approx([1 / 3])


def test_every_ce_task_logs_fine_accuracy():
    from mannkit.systems.losses import objective

    assert "fine_accuracy" in objective("ce").metrics()
