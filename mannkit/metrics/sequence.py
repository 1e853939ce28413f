"""Metrics of bit-sequence tasks: bits per sequence, bit errors per sequence, sequence accuracy.

Shape letters: B batch, T time, O output width.

Each metric has a functional form, computing one value per sequence from ``logits``
``[B, T, O]`` (before the sigmoid), ``target`` ``[B, T, O]`` (0/1 bits) and ``mask``
``[B, T]`` (which steps are scored), and a thin ``torchmetrics.Metric`` that averages
those values over every sequence it has seen (summed across processes).

>>> import torch
>>> logits, target, mask = torch.zeros(1, 2, 3), torch.ones(1, 2, 3), torch.tensor([[0.0, 1.0]])
>>> bits_per_sequence(logits, target, mask)  # three scored bits, each predicted at 1/2
tensor([3.])
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from mannkit.core.registry import register
from mannkit.core.shapes import check_shape

__all__ = [
    "bits_per_sequence",
    "bit_errors_per_sequence",
    "sequence_accuracy",
    "BitsPerSequence",
    "BitErrorsPerSequence",
    "SequenceAccuracy",
]


def _check(logits: Tensor, target: Tensor, mask: Tensor, where: str) -> None:
    check_shape(logits, ("B", "T", "O"), f"{where}: logits")
    B, T, O = logits.shape
    check_shape(target, (B, T, O), f"{where}: target", fix="target must have the shape of logits [B, T, O]")
    check_shape(mask, (B, T), f"{where}: mask", fix="mask must be [B, T], the first two axes of logits")


def bits_per_sequence(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Masked binary cross-entropy of each sequence, summed over time and outputs, in bits.

    Args:
        logits: ``[B, T, O]`` predictions before the sigmoid.
        target: ``[B, T, O]`` 0/1 bits.
        mask: ``[B, T]`` weight of each step (1 scored, 0 ignored).

    Returns:
        ``[B]``: ``sum_t mask[b, t] sum_o BCE(logits, target) / ln 2``.
    """
    _check(logits, target, mask, "bits_per_sequence")
    nats = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")  # [B, T, O]
    nats = nats * mask.to(nats.dtype).unsqueeze(2)  # zero where not scored
    return nats.sum(dim=(1, 2)) / math.log(2.0)


def bit_errors_per_sequence(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """How many scored output bits of each sequence are wrong when thresholded (``logits > 0`` is 1).

    Args:
        logits: ``[B, T, O]`` predictions before the sigmoid.
        target: ``[B, T, O]`` 0/1 bits.
        mask: ``[B, T]``; steps where ``mask > 0`` are scored.

    Returns:
        ``[B]`` int64 counts.

    >>> logits = torch.tensor([[[2.0, -1.0], [3.0, 3.0]]])  # [1, 2, 2]
    >>> bit_errors_per_sequence(logits, torch.ones(1, 2, 2), torch.ones(1, 2))
    tensor([1])
    """
    _check(logits, target, mask, "bit_errors_per_sequence")
    wrong = (logits > 0) != (target > 0.5)  # [B, T, O]
    wrong = wrong & (mask > 0).unsqueeze(2)
    return wrong.sum(dim=(1, 2))


def sequence_accuracy(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Whether each sequence has no bit error on its scored steps: ``[B]`` bool."""
    _check(logits, target, mask, "sequence_accuracy")
    return bit_errors_per_sequence(logits, target, mask) == 0


class _MeanPerSequence(Metric):
    """Mean over all sequences seen of a per-sequence value (states summed across processes)."""

    is_differentiable = False
    full_state_update = False
    total: Tensor
    count: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @staticmethod
    def _per_sequence(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        raise NotImplementedError

    def update(self, logits: Tensor, target: Tensor, mask: Tensor) -> None:
        """Add the sequences of one batch: logits and target ``[B, T, O]``, mask ``[B, T]``."""
        values = self._per_sequence(logits, target, mask)
        self.total += values.detach().to(self.total.dtype).sum()
        self.count += values.numel()

    def compute(self) -> Tensor:
        """The mean per sequence (NaN before any update)."""
        return self.total / self.count


@register(kind="metric")
class BitsPerSequence(_MeanPerSequence):
    """Mean of :func:`bits_per_sequence` over every sequence seen (lower is better).

    >>> metric = BitsPerSequence()
    >>> metric.update(torch.zeros(2, 3, 4), torch.ones(2, 3, 4), torch.ones(2, 3))
    >>> metric.compute()
    tensor(12.)
    """

    higher_is_better = False
    _per_sequence = staticmethod(bits_per_sequence)


@register(kind="metric")
class BitErrorsPerSequence(_MeanPerSequence):
    """Mean of :func:`bit_errors_per_sequence` over every sequence seen (lower is better)."""

    higher_is_better = False
    _per_sequence = staticmethod(bit_errors_per_sequence)


@register(kind="metric")
class SequenceAccuracy(_MeanPerSequence):
    """Fraction of sequences seen without any bit error (:func:`sequence_accuracy`; higher is better)."""

    higher_is_better = True
    _per_sequence = staticmethod(sequence_accuracy)
