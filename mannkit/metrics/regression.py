"""Metrics of regression sequence tasks (``loss == "mse"``): mean squared error over the scored steps.

Shape letters: B batch, T time, O output width.

The functional forms take ``prediction`` ``[B, T, O]`` (the model's raw output), ``target``
``[B, T, O]`` (real values) and ``mask`` ``[B, T]`` (which steps are scored).

>>> import torch
>>> prediction, target = torch.tensor([[[1.0], [3.0], [9.0]]]), torch.tensor([[[0.0], [1.0], [0.0]]])
>>> mask = torch.tensor([[1.0, 1.0, 0.0]])
>>> squared_error_per_sequence(prediction, target, mask), masked_mse(prediction, target, mask)
(tensor([5.]), tensor(2.5000))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from mannkit.core.registry import register
from mannkit.core.shapes import check_shape

__all__ = ["squared_error_per_sequence", "masked_mse", "MaskedMSE"]


def _check(prediction: Tensor, target: Tensor, mask: Tensor, where: str) -> None:
    check_shape(prediction, ("B", "T", "O"), f"{where}: prediction")
    B, T, O = prediction.shape
    check_shape(target, (B, T, O), f"{where}: target", fix="target must have the shape of the prediction [B, T, O]")
    check_shape(mask, (B, T), f"{where}: mask", fix="mask must be [B, T], the first two axes of the prediction")


def _squared(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``[B, T, O]`` squared errors, zero at unscored steps."""
    return (prediction - target.to(prediction.dtype)).square() * mask.to(prediction.dtype).unsqueeze(2)


def squared_error_per_sequence(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """The summed squared error of each sequence over its scored steps and outputs: ``[B]``."""
    _check(prediction, target, mask, "squared_error_per_sequence")
    return _squared(prediction, target, mask).sum(dim=(1, 2))


def masked_mse(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """The mean squared error over every scored value of the batch (differentiable; 0 when nothing is scored)."""
    _check(prediction, target, mask, "masked_mse")
    scored = mask.to(prediction.dtype).sum() * prediction.shape[2]
    return _squared(prediction, target, mask).sum() / scored.clamp_min(1)


@register(kind="metric")
class MaskedMSE(Metric):
    """Mean squared error over every scored value seen (lower is better).

    >>> metric = MaskedMSE()
    >>> metric.update(torch.ones(2, 3, 1), torch.zeros(2, 3, 1), torch.tensor([[1.0, 0, 0], [1, 1, 0]]))
    >>> metric.compute()
    tensor(1.)
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    total: Tensor
    count: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, prediction: Tensor, target: Tensor, mask: Tensor) -> None:
        """Add one batch: prediction and target ``[B, T, O]``, mask ``[B, T]``."""
        _check(prediction, target, mask, "MaskedMSE")
        self.total += _squared(prediction, target, mask).detach().sum().to(self.total.dtype)
        self.count += int((mask > 0).sum()) * prediction.shape[2]

    def compute(self) -> Tensor:
        """The mean over scored values (NaN before any)."""
        return self.total / self.count
