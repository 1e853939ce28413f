"""Bits per sequence, bit errors per sequence and sequence accuracy: hand-computed cases and metric plumbing."""

from __future__ import annotations

import math

import pytest
import torch

from mannkit.core.errors import ShapeError
from mannkit.core.registry import registry
from mannkit.metrics import (
    BitErrorsPerSequence,
    BitsPerSequence,
    SequenceAccuracy,
    bit_errors_per_sequence,
    bits_per_sequence,
    sequence_accuracy,
)

LN3 = math.log(3.0)  # sigmoid(ln 3) = 3/4
COST_3_4 = math.log2(4 / 3)  # bits for an outcome predicted at 3/4; one predicted at 1/4 costs 2


def hand_case():
    """B=2, T=3, O=2, with every BCE term chosen to be 1, 2 or log2(4/3) bits."""
    logits = torch.tensor(
        [
            [[LN3, 0.0], [-LN3, LN3], [0.0, 0.0]],
            [[-LN3, -LN3], [LN3, LN3], [LN3, -LN3]],
        ]
    )
    target = torch.tensor(
        [
            [[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]],
            [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]],
        ]
    )
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    return logits, target, mask


def test_bits_per_sequence_hand_computed():
    # sequence 0: step 0 costs log2(4/3) + 1, step 1 costs log2(4/3) + 2 (P(0) = 1/4), step 2 is not scored.
    # sequence 1: step 0 is not scored; steps 1 and 2 cost log2(4/3) per bit.
    expected = torch.tensor([3 + 2 * COST_3_4, 4 * COST_3_4])
    assert torch.allclose(bits_per_sequence(*hand_case()), expected)


def test_bit_errors_and_accuracy_hand_computed():
    # sequence 0: step 1 predicts 1 where 0 is due (1 error); step 2 would add two errors but is masked.
    assert bit_errors_per_sequence(*hand_case()).tolist() == [1, 0]
    assert sequence_accuracy(*hand_case()).tolist() == [False, True]


def test_zero_logits_cost_one_bit_per_scored_bit():
    B, T, O = 3, 5, 2
    target = torch.randint(0, 2, (B, T, O), generator=torch.Generator().manual_seed(0)).float()
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0, 1.0]])
    assert torch.allclose(bits_per_sequence(torch.zeros(B, T, O), target, mask), torch.tensor([10.0, 0.0, 6.0]))


def test_extreme_logits_are_finite():
    target = torch.tensor([[[1.0, 0.0]]])
    mask = torch.ones(1, 1)
    assert bits_per_sequence(torch.tensor([[[200.0, -200.0]]]), target, mask).item() == pytest.approx(0.0, abs=1e-6)
    wrong = bits_per_sequence(torch.tensor([[[-200.0, 200.0]]]), target, mask)
    assert wrong.item() == pytest.approx(400.0 / math.log(2.0), rel=1e-5)


@pytest.mark.parametrize("fn", [bits_per_sequence, bit_errors_per_sequence, sequence_accuracy])
def test_unscored_steps_change_nothing(fn):
    logits, target, mask = hand_case()
    noisy = logits + (1 - mask).unsqueeze(2) * torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(1)) * 50
    flipped = torch.where((mask == 0).unsqueeze(2), 1 - target, target)
    assert torch.equal(fn(noisy, flipped, mask), fn(logits, target, mask))


@pytest.mark.parametrize(
    ("metric_cls", "fn"),
    [
        (BitsPerSequence, bits_per_sequence),
        (BitErrorsPerSequence, bit_errors_per_sequence),
        (SequenceAccuracy, sequence_accuracy),
    ],
)
def test_metric_accumulates_like_the_functional_on_the_concatenation(metric_cls, fn):
    g = torch.Generator().manual_seed(2)
    B1, B2, T, O = 3, 4, 5, 2
    logits = torch.randn(B1 + B2, T, O, generator=g) * 3
    target = torch.randint(0, 2, (B1 + B2, T, O), generator=g).float()
    target[0] = (logits[0] > 0).float()  # at least one perfect sequence
    mask = torch.randint(0, 2, (B1 + B2, T), generator=g).float()
    metric = metric_cls()
    metric.update(logits[:B1], target[:B1], mask[:B1])
    metric.update(logits[B1:], target[B1:], mask[B1:])
    expected = fn(logits, target, mask).float().mean()
    assert torch.allclose(metric.compute(), expected)
    metric.reset()
    metric.update(logits[B1:], target[B1:], mask[B1:])
    assert torch.allclose(metric.compute(), fn(logits[B1:], target[B1:], mask[B1:]).float().mean())


def test_metric_attributes_and_registry():
    expected = {BitsPerSequence: False, BitErrorsPerSequence: False, SequenceAccuracy: True}
    for cls, higher_is_better in expected.items():
        assert cls.higher_is_better is higher_is_better
        assert cls.full_state_update is False
        assert registry.get(cls.__name__, "metric") is cls


@pytest.mark.parametrize("fn", [bits_per_sequence, bit_errors_per_sequence, sequence_accuracy])
def test_shape_mismatch_is_a_clear_error(fn):
    logits = torch.zeros(2, 3, 5)
    target_message = r"target has shape \[2, 5, 3\] but \[2, 3, 5\] was expected; target must have the shape of logits"
    with pytest.raises(ShapeError, match=target_message):
        fn(logits, torch.zeros(2, 5, 3), torch.ones(2, 3))
    with pytest.raises(ShapeError, match=r"mask has shape \[2, 3, 1\] but \[2, 3\] was expected; mask must be \[B, T\]"):
        fn(logits, torch.zeros(2, 3, 5), torch.ones(2, 3, 1))
    with pytest.raises(ShapeError, match=r"logits has shape \[2, 3\] but \[B, T, O\] was expected"):
        fn(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3))
