"""Sequence tasks as ``LightningDataModule``s: the base class and the NTM paper's five algorithmic tasks."""

from mannkit.tasks.algorithmic import (
    AssociativeRecallTask,
    CopyTask,
    DynamicNGramsTask,
    PrioritySortTask,
    RepeatCopyTask,
    ngram_bayes_optimal_bits,
)
from mannkit.tasks.base import Batch, SequenceTask

__all__ = [
    "Batch",
    "SequenceTask",
    "CopyTask",
    "RepeatCopyTask",
    "AssociativeRecallTask",
    "DynamicNGramsTask",
    "PrioritySortTask",
    "ngram_bayes_optimal_bits",
]
