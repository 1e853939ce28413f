"""Metrics of the transduction tasks (Grefenstette et al. 2015): coarse and fine accuracy of each target sequence.

Shape letters: B batch, T time, C classes.

- **coarse accuracy**: the share of sequences whose every scored step is right
  (:func:`~mannkit.metrics.categorical.categorical_sequence_accuracy`, logged by the sequence system
  as ``seq_accuracy`` for every ``ce`` task);
- **fine accuracy**: per sequence, the share of its scored steps that are right *before the first
  error* (:func:`fine_accuracy`), averaged over sequences.

Both take ``logits [B, T, C]``, ``target [B, T]`` class ids and ``mask [B, T]``.

>>> import torch
>>> logits = torch.nn.functional.one_hot(torch.tensor([[1, 2, 0, 3]]), 4).float()  # predicts 1, 2, 0, 3
>>> target, mask = torch.tensor([[1, 2, 1, 3]]), torch.ones(1, 4)
>>> fine_accuracy(logits, target, mask), coarse_accuracy(logits, target, mask)   # 2 right before the error
(tensor([0.5000]), tensor([False]))
"""

from __future__ import annotations

from torch import Tensor

from mannkit.core.registry import register
from mannkit.metrics.categorical import categorical_sequence_accuracy, check_categorical, digits_as_steps
from mannkit.metrics.sequence import _MeanPerSequence

__all__ = ["fine_accuracy", "coarse_accuracy", "FineAccuracy"]

#: Whether every scored step of each sequence is right, ``[B]`` bool: the paper's coarse accuracy.
coarse_accuracy = categorical_sequence_accuracy


def fine_accuracy(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Per sequence, right scored steps before the first wrong one over all its scored steps: ``[B]`` float (1 when none is scored).

    A target of D class ids per step (``[B, T, D]``, logits ``[B, T, D * C]``) is scored digit by digit, in order.
    """
    logits, target, mask = digits_as_steps(logits, target, mask)
    check_categorical(logits, target, mask, "fine_accuracy")
    scored = mask > 0  # [B, T]
    wrong = (logits.argmax(dim=2) != target) & scored
    clean = (wrong.cumsum(dim=1) == 0) & scored  # scored steps with no error at or before them
    total = scored.sum(dim=1)
    share = clean.sum(dim=1) / total.clamp_min(1)  # [B]
    return share.masked_fill(total == 0, 1.0)


@register(kind="metric")
class FineAccuracy(_MeanPerSequence):
    """Mean of :func:`fine_accuracy` over every sequence seen (higher is better).

    >>> import torch
    >>> metric = FineAccuracy()
    >>> metric.update(torch.zeros(2, 3, 4), torch.tensor([[0, 0, 1], [1, 0, 0]]), torch.ones(2, 3))
    >>> metric.compute()
    tensor(0.3333)
    """

    higher_is_better = True
    _per_sequence = staticmethod(fine_accuracy)
