"""Categorical (per-step and per-sequence accuracy) and regression (MSE) metrics: hand-computed cases and metric plumbing.

B = 2, T = 3, C = 5 classes, O = 2 outputs: distinct sizes, so a swapped axis breaks a test.
"""

from __future__ import annotations

import pytest
import torch

from mannkit.core.errors import ShapeError
from mannkit.core.registry import registry
from mannkit.metrics import (
    CategoricalSequenceAccuracy,
    MaskedMSE,
    StepAccuracy,
    categorical_sequence_accuracy,
    masked_mse,
    squared_error_per_sequence,
    step_accuracy,
    step_errors_per_sequence,
)


def categorical_case():
    """Arg-max classes [[1, 4, 0], [2, 2, 3]]; targets [[1, 3, 0], [2, 2, 1]]; the last step of each sequence unscored."""
    classes = torch.tensor([[1, 4, 0], [2, 2, 3]])
    logits = torch.nn.functional.one_hot(classes, 5).float() * 3.0  # [2, 3, 5]
    target = torch.tensor([[1, 3, 0], [2, 2, 1]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    return logits, target, mask


def test_categorical_hand_computed():
    logits, target, mask = categorical_case()
    # sequence 0: step 1 wrong (4 vs 3); sequence 1: both scored steps right (the wrong last step is unscored)
    assert step_errors_per_sequence(logits, target, mask).tolist() == [1, 0]
    assert categorical_sequence_accuracy(logits, target, mask).tolist() == [False, True]
    assert step_accuracy(logits, target, mask).item() == pytest.approx(3 / 4)


def test_categorical_metrics_accumulate_over_batches():
    logits, target, mask = categorical_case()
    steps, sequences = StepAccuracy(), CategoricalSequenceAccuracy()
    for b in range(2):  # one sequence at a time
        steps.update(logits[b : b + 1], target[b : b + 1], mask[b : b + 1])
        sequences.update(logits[b : b + 1], target[b : b + 1], mask[b : b + 1])
    assert steps.compute().item() == pytest.approx(3 / 4)
    assert sequences.compute().item() == pytest.approx(1 / 2)


def test_regression_hand_computed():
    prediction = torch.tensor([[[1.0, 0.0], [2.0, 2.0], [7.0, 7.0]], [[0.0, 0.0], [0.0, -3.0], [7.0, 7.0]]])
    target = torch.zeros(2, 3, 2)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    assert squared_error_per_sequence(prediction, target, mask).tolist() == [9.0, 9.0]
    assert masked_mse(prediction, target, mask).item() == pytest.approx(18 / 8)
    metric = MaskedMSE()
    metric.update(prediction[:1], target[:1], mask[:1])
    metric.update(prediction[1:], target[1:], mask[1:])
    assert metric.compute().item() == pytest.approx(18 / 8)


def test_metric_attributes_and_registry():
    assert StepAccuracy.higher_is_better and CategoricalSequenceAccuracy.higher_is_better
    assert MaskedMSE.higher_is_better is False
    for cls in (StepAccuracy, CategoricalSequenceAccuracy, MaskedMSE):
        assert registry.get(cls.__name__, "metric") is cls


def test_a_target_of_the_wrong_shape_or_dtype():
    logits, target, mask = categorical_case()
    with pytest.raises(ShapeError, match=r"step_accuracy: target has shape \[2, 3, 5\] but \[2, 3\] was expected"):
        step_accuracy(logits, logits, mask)
    with pytest.raises(ShapeError, match=r"target has dtype torch.float32 but a categorical target holds class ids"):
        step_errors_per_sequence(logits, target.float(), mask)
    with pytest.raises(ShapeError, match=r"masked_mse: target has shape \[2, 3\] but \[2, 3, 5\] was expected"):
        masked_mse(logits, target.float(), mask)
