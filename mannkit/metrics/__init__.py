"""torchmetrics metrics of mannkit's tasks, with their functional forms."""

from mannkit.metrics.qa import (
    FailedTasks,
    MeanTaskError,
    PerTaskError,
    QAAccuracy,
    answer_correct,
    failed_tasks,
    mean_task_error,
    task_counts,
    task_errors,
)
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
    "QAAccuracy",
    "PerTaskError",
    "MeanTaskError",
    "FailedTasks",
    "answer_correct",
    "task_counts",
    "task_errors",
    "mean_task_error",
    "failed_tasks",
]
