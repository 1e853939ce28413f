"""torchmetrics metrics of mannkit's tasks, with their functional forms."""

from mannkit.metrics.sequence import (
    BitErrorsPerSequence,
    BitsPerSequence,
    SequenceAccuracy,
    bit_errors_per_sequence,
    bits_per_sequence,
    sequence_accuracy,
)

__all__ = [
    "BitsPerSequence",
    "BitErrorsPerSequence",
    "SequenceAccuracy",
    "bits_per_sequence",
    "bit_errors_per_sequence",
    "sequence_accuracy",
]
