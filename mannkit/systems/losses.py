"""The losses a sequence task may declare, and what each means to :class:`~mannkit.systems.SequenceSystem`.

Shape letters: B batch, T time, O output width (C classes for ``ce``).

A task names its loss in its ``loss`` attribute (``SequenceTask.loss``, ``"bce"`` by default);
the system looks the name up in :data:`OBJECTIVES` at setup and takes from the
:class:`Objective` its loss, the form of the target, the metrics it logs and what
``predict`` returns:

======  ===========================  ===========================================  =============================
loss    target                       logged metrics (``val/``, ``test/<set>/``)    predict returns
======  ===========================  ===========================================  =============================
bce     float 0/1 ``[B, T, O]``      bits_per_seq, bit_errors_per_seq,            probabilities, prediction
                                     seq_accuracy                                 (0/1), bit_errors
ce      int64 class ids ``[B, T]``   seq_accuracy, step_accuracy,                 probabilities (softmax),
                                     fine_accuracy                                prediction (ids), step_errors
mse     float ``[B, T, O]``          mse                                          prediction, squared_error
======  ===========================  ===========================================  =============================

Every loss is averaged over the scored steps (``mask [B, T]``): BCE over scored bits,
cross-entropy over scored steps, squared error over scored values. A ``ce`` target may hold D class
ids per step (``[B, T, D]``, logits ``[B, T, D * C]``; the ACT paper's addition writes 6 digits of
11 classes): each digit is then scored as a step (:func:`~mannkit.metrics.categorical.digits_as_steps`).

>>> import torch
>>> logits, target, mask = torch.zeros(1, 2, 4), torch.tensor([[3, -1]]), torch.tensor([[1.0, 0.0]])
>>> round(float(masked_cross_entropy_loss(logits, target, mask)), 4)   # ln 4: uniform over 4 classes
1.3863
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from mannkit.core.errors import ConfigError
from mannkit.metrics import (
    BitErrorsPerSequence,
    BitsPerSequence,
    CategoricalSequenceAccuracy,
    FineAccuracy,
    MaskedMSE,
    SequenceAccuracy,
    StepAccuracy,
    bit_errors_per_sequence,
    bits_per_sequence,
    masked_mse,
    squared_error_per_sequence,
    step_accuracy,
    step_errors_per_sequence,
)
from mannkit.metrics.categorical import check_categorical, digits_as_steps

__all__ = ["Objective", "OBJECTIVES", "objective", "masked_bce_loss", "masked_cross_entropy_loss", "masked_mse_loss"]


def masked_bce_loss(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy averaged over the scored bits.

    Args:
        logits: ``[B, T, O]``.
        target: ``[B, T, O]`` of 0/1.
        mask: ``[B, T]``, 1 where a step is scored.
    """
    mask = mask.unsqueeze(-1)  # [B, T, 1]
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")  # [B, T, O]
    return (bce * mask).sum() / (mask.sum() * logits.shape[-1]).clamp_min(1)


def masked_cross_entropy_loss(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Cross-entropy (nats) averaged over the scored steps.

    Args:
        logits: ``[B, T, C]`` before the softmax.
        target: ``[B, T]`` int64 class ids in ``0..C-1`` (any id, e.g. -1, at unscored steps).
        mask: ``[B, T]``, 1 where a step is scored.
    """
    logits, target, mask = digits_as_steps(logits, target, mask)  # target [B, T, D]: each digit scored as a step
    check_categorical(logits, target, mask, "masked_cross_entropy_loss")
    scored = mask > 0
    ids = torch.where(scored, target, torch.zeros_like(target))  # a valid id at unscored steps
    nats = F.cross_entropy(logits.transpose(1, 2), ids, reduction="none")  # [B, C, T] in -> [B, T]
    weights = mask.to(nats.dtype)
    return (nats * weights).sum() / weights.sum().clamp_min(1)


def masked_mse_loss(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Squared error averaged over the scored values (:func:`mannkit.metrics.masked_mse`)."""
    return masked_mse(prediction, target, mask)


@dataclass(frozen=True)
class Objective:
    """What one loss name means to the sequence system.

    Attributes:
        name: the loss name a task declares (``"bce"``, ``"ce"``, ``"mse"``).
        loss: ``(logits [B, T, O], target, mask [B, T]) -> scalar``, differentiable.
        categorical: the target is ``[B, T]`` class ids (else ``[B, T, O]`` like the output).
        metrics: a fresh ``{name: Metric}`` for validation and for each test set; the first is the headline.
        train_metrics: ``(logits, target, mask) -> {name: scalar}`` logged at each training step.
        predict: ``(logits, target, mask) -> {name: tensor}``, what ``predict_step`` returns.
    """

    name: str
    loss: Callable[[Tensor, Tensor, Tensor], Tensor]
    categorical: bool
    metrics: Callable[[], dict[str, Metric]]
    train_metrics: Callable[[Tensor, Tensor, Tensor], dict[str, Tensor]]
    predict: Callable[[Tensor, Tensor, Tensor], dict[str, Tensor]]

    @property
    def metric_names(self) -> list[str]:
        """The names of the logged metrics, headline first."""
        return list(self.metrics())


# Module-level functions, not lambdas: a system holding its Objective must pickle (DDP spawn, checkpoints).


def _bce_metrics() -> dict[str, Metric]:
    return {"bits_per_seq": BitsPerSequence(), "bit_errors_per_seq": BitErrorsPerSequence(), "seq_accuracy": SequenceAccuracy()}


def _bce_train(logits: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    return {"bits_per_seq": bits_per_sequence(logits, target, mask).mean()}


def _bce_predict(logits: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    return {
        "probabilities": torch.sigmoid(logits),
        "prediction": (logits > 0).float(),
        "bit_errors": bit_errors_per_sequence(logits, target, mask),
    }


def _ce_metrics() -> dict[str, Metric]:
    return {"seq_accuracy": CategoricalSequenceAccuracy(), "step_accuracy": StepAccuracy(), "fine_accuracy": FineAccuracy()}


def _ce_train(logits: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    return {"step_accuracy": step_accuracy(logits, target, mask)}


def _ce_predict(logits: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    if target.dim() == 3:  # D class ids per step: probabilities [B, T, D, C], prediction [B, T, D]
        logits = logits.unflatten(2, (target.shape[2], -1))
        return {
            "probabilities": torch.softmax(logits, dim=3),
            "prediction": logits.argmax(dim=3),
            "step_errors": step_errors_per_sequence(logits.flatten(2), target, mask),
        }
    return {
        "probabilities": torch.softmax(logits, dim=2),
        "prediction": logits.argmax(dim=2),
        "step_errors": step_errors_per_sequence(logits, target, mask),
    }


def _mse_metrics() -> dict[str, Metric]:
    return {"mse": MaskedMSE()}


def _mse_train(prediction: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    return {}  # train/loss already is the MSE


def _mse_predict(prediction: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    return {"prediction": prediction, "squared_error": squared_error_per_sequence(prediction, target, mask)}


#: Every loss a task may declare, by name.
OBJECTIVES: dict[str, Objective] = {
    "bce": Objective("bce", masked_bce_loss, False, _bce_metrics, _bce_train, _bce_predict),
    "ce": Objective("ce", masked_cross_entropy_loss, True, _ce_metrics, _ce_train, _ce_predict),
    "mse": Objective("mse", masked_mse_loss, False, _mse_metrics, _mse_train, _mse_predict),
}


def objective(name: str, field: str = "model.loss") -> Objective:
    """The :class:`Objective` of a loss name; an unknown name is a :class:`ConfigError` naming ``field``.

    >>> objective("ce").metric_names
    ['seq_accuracy', 'step_accuracy', 'fine_accuracy']
    """
    if name not in OBJECTIVES:
        raise ConfigError(f"{field} is {name!r}, not a known loss; use one of {list(OBJECTIVES)} (or null to follow the task).")
    return OBJECTIVES[name]
