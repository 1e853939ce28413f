"""Metrics of categorical sequence tasks (``loss == "ce"``): per-step accuracy and per-sequence accuracy.

Shape letters: B batch, T time, C classes (the model's output width O).

The functional forms take ``logits`` ``[B, T, C]`` (before the softmax), ``target`` ``[B, T]``
(int64 class ids in ``0..C-1``; any id at unscored steps) and ``mask`` ``[B, T]`` (which steps
are scored); the prediction at a step is the arg-max class. A step may hold D class ids (``target
[B, T, D]``, logits ``[B, T, D * C]``, digit d's classes at ``C d ... C d + C - 1``; the ACT paper's
addition): :func:`digits_as_steps` then scores each digit as a step of its own. The thin ``torchmetrics.Metric``\\ s
accumulate over every batch they see (summed across processes).

>>> import torch
>>> logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]]])  # predicts 0, 1, 0
>>> target, mask = torch.tensor([[0, 0, 1]]), torch.tensor([[1.0, 1.0, 0.0]])
>>> step_errors_per_sequence(logits, target, mask), step_accuracy(logits, target, mask)
(tensor([1]), tensor(0.5000))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from mannkit.core.errors import ShapeError
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.metrics.sequence import _MeanPerSequence

__all__ = [
    "check_categorical",
    "digits_as_steps",
    "step_errors_per_sequence",
    "categorical_sequence_accuracy",
    "step_accuracy",
    "StepAccuracy",
    "CategoricalSequenceAccuracy",
]


def check_categorical(logits: Tensor, target: Tensor, mask: Tensor, where: str) -> None:
    """Raise unless ``logits [B, T, C]``, ``target [B, T]`` of integer class ids and ``mask [B, T]`` agree."""
    check_shape(logits, ("B", "T", "C"), f"{where}: logits")
    B, T, _ = logits.shape
    check_shape(target, (B, T), f"{where}: target", fix="a categorical target is [B, T], one class id per step")
    check_shape(mask, (B, T), f"{where}: mask", fix="mask must be [B, T], the first two axes of logits")
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ShapeError(
            f"{where}: target has dtype {target.dtype} but a categorical target holds class ids; "
            "give it as int64 (torch.long)."
        )


def digits_as_steps(logits: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``target [B, T, D]`` (D class ids per step) as ``[B, T * D]``, with logits ``[B, T, D * C] -> [B, T * D, C]``
    and mask ``[B, T] -> [B, T * D]``; a ``[B, T]`` target (or one that holds no class ids) passes through.

    >>> logits, target, mask = digits_as_steps(torch.zeros(2, 3, 8), torch.zeros(2, 3, 4, dtype=torch.long), torch.ones(2, 3))
    >>> logits.shape, target.shape, mask.shape
    (torch.Size([2, 12, 2]), torch.Size([2, 12]), torch.Size([2, 12]))
    """
    if target.dim() != 3 or target.dtype.is_floating_point or target.dtype == torch.bool:
        return logits, target, mask
    B, T, D = target.shape
    if logits.dim() != 3 or logits.shape[:2] != (B, T) or logits.shape[2] % D:
        raise ShapeError(
            f"a categorical target of {D} class ids per step ([B, T, D] = {list(target.shape)}) needs logits [B, T, D * C], "
            f"got {list(logits.shape)}; give the model D * C outputs per step."
        )
    return logits.reshape(B, T * D, -1), target.reshape(B, T * D), mask.repeat_interleave(D, dim=1)  # digit-major per step


def _wrong_steps(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``[B, T]`` bool: a scored step whose arg-max class is not the target."""
    return (logits.argmax(dim=2) != target) & (mask > 0)


def step_errors_per_sequence(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """How many scored steps (digits, for ``target [B, T, D]``) of each sequence predict the wrong class: ``[B]`` int64."""
    logits, target, mask = digits_as_steps(logits, target, mask)
    check_categorical(logits, target, mask, "step_errors_per_sequence")
    return _wrong_steps(logits, target, mask).sum(dim=1)


def categorical_sequence_accuracy(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Whether every scored step of each sequence predicts its class: ``[B]`` bool."""
    return step_errors_per_sequence(logits, target, mask) == 0


def step_accuracy(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """The fraction of scored steps (over the whole batch) whose arg-max class is the target: a scalar (NaN if none)."""
    logits, target, mask = digits_as_steps(logits, target, mask)
    check_categorical(logits, target, mask, "step_accuracy")
    scored = (mask > 0).sum()
    right = scored - _wrong_steps(logits, target, mask).sum()
    return right.float() / scored.float()


@register(kind="metric")
class StepAccuracy(Metric):
    """Fraction of all scored steps seen whose arg-max class is right (higher is better).

    >>> metric = StepAccuracy()
    >>> metric.update(torch.tensor([[[1.0, 0.0], [1.0, 0.0]]]), torch.tensor([[0, 1]]), torch.ones(1, 2))
    >>> metric.compute()
    tensor(0.5000)
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    correct: Tensor
    total: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor, mask: Tensor) -> None:
        """Add one batch: logits ``[B, T, C]``, target ``[B, T]`` class ids, mask ``[B, T]``."""
        logits, target, mask = digits_as_steps(logits, target, mask)
        check_categorical(logits, target, mask, "StepAccuracy")
        scored = (mask > 0).sum()
        self.correct += scored - _wrong_steps(logits, target, mask).sum()
        self.total += scored

    def compute(self) -> Tensor:
        """Right steps over scored steps (NaN before any scored step)."""
        return self.correct.float() / self.total.float()


@register(kind="metric")
class CategoricalSequenceAccuracy(_MeanPerSequence):
    """Fraction of sequences seen whose every scored step is right (:func:`categorical_sequence_accuracy`)."""

    higher_is_better = True
    _per_sequence = staticmethod(categorical_sequence_accuracy)
