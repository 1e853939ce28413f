"""Sequence tasks as ``LightningDataModule``s: the base class, the NTM paper's five algorithmic tasks, auxiliary objectives."""

from mannkit.tasks.algorithmic import (
    AssociativeRecallTask,
    CopyTask,
    DynamicNGramsTask,
    PrioritySortTask,
    RepeatCopyTask,
    ngram_bayes_optimal_bits,
)
from mannkit.tasks.babi import BabiDataModule
from mannkit.tasks.base import Batch, SequenceTask
from mannkit.tasks.graph import FamilyTreeTask, GraphTask, GraphTraversalTask, ShortestPathTask
from mannkit.tasks.multitask import MultiTask
from mannkit.tasks.sorting import SortTask

__all__ = [
    "Batch",
    "SequenceTask",
    "CopyTask",
    "RepeatCopyTask",
    "AssociativeRecallTask",
    "DynamicNGramsTask",
    "PrioritySortTask",
    "MultiTask",
    "GraphTask",
    "GraphTraversalTask",
    "ShortestPathTask",
    "FamilyTreeTask",
    "SortTask",
    "BabiDataModule",
    "ngram_bayes_optimal_bits",
]
