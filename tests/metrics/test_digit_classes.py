"""A categorical target of D class ids per step (``[B, T, D]``, logits ``[B, T, D * C]``): the ACT paper's addition digits."""

import math

import pytest
import torch

from mannkit.core.errors import ShapeError
from mannkit.metrics import CategoricalSequenceAccuracy, StepAccuracy
from mannkit.metrics.categorical import digits_as_steps, step_errors_per_sequence
from mannkit.systems.losses import objective


def _case():
    # B=2, T=3, D=2 digits of C=5 classes; sequence 0 all right, sequence 1 wrong in one digit of step 2
    target = torch.tensor([[[1, 4], [0, 2], [3, 3]], [[2, 2], [4, 0], [1, 1]]])
    logits = torch.full((2, 3, 2, 5), -5.0)
    logits.scatter_(3, target.unsqueeze(-1), 5.0)
    logits[1, 2, 1] = torch.tensor([0.0, 0.0, 0.0, 9.0, 0.0])  # predicts 3, target 1
    return logits.flatten(2), target, torch.ones(2, 3)


def test_each_digit_is_scored_as_a_step():
    logits, target, mask = _case()
    assert step_errors_per_sequence(logits, target, mask).tolist() == [0, 1]
    seq, step = CategoricalSequenceAccuracy(), StepAccuracy()
    seq.update(logits, target, mask)
    step.update(logits, target, mask)
    assert seq.compute().item() == 0.5 and step.compute().item() == pytest.approx(11 / 12)


def test_the_loss_is_the_mean_cross_entropy_over_scored_digits():
    logits, target, mask = _case()
    mask[1, 2] = 0.0  # the wrong step is not scored
    per_digit = torch.nn.functional.cross_entropy(logits.view(2, 3, 2, 5).flatten(0, 2), target.flatten(), reduction="none")
    expected = per_digit.view(2, 3, 2)[mask.bool()].mean()
    torch.testing.assert_close(objective("ce").loss(logits, target, mask), expected)
    assert objective("ce").predict(logits, target, mask)["prediction"].shape == (2, 3, 2)
    assert not math.isnan(expected.item())


def test_logits_that_are_not_d_times_c_are_refused():
    with pytest.raises(ShapeError, match=r"a categorical target of 2 class ids per step .* needs logits \[B, T, D \* C\], got \[2, 3, 7\]"):
        digits_as_steps(torch.zeros(2, 3, 7), torch.zeros(2, 3, 2, dtype=torch.long), torch.ones(2, 3))
