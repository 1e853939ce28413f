"""torchmetrics metrics of mannkit's tasks, with their functional forms.

Which metrics a sequence task is scored with follows its loss: bits (``bce``) in :mod:`.sequence`,
classes per step (``ce``) in :mod:`.categorical`, real values (``mse``) in :mod:`.regression`.
"""

from mannkit.metrics.categorical import (
    CategoricalSequenceAccuracy,
    StepAccuracy,
    categorical_sequence_accuracy,
    step_accuracy,
    step_errors_per_sequence,
)
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
from mannkit.metrics.regression import MaskedMSE, masked_mse, squared_error_per_sequence
from mannkit.metrics.transduction import FineAccuracy, coarse_accuracy, fine_accuracy
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
    "StepAccuracy",
    "CategoricalSequenceAccuracy",
    "step_accuracy",
    "step_errors_per_sequence",
    "categorical_sequence_accuracy",
    "FineAccuracy",
    "fine_accuracy",
    "coarse_accuracy",
    "MaskedMSE",
    "masked_mse",
    "squared_error_per_sequence",
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
