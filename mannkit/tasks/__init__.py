"""Sequence tasks as ``LightningDataModule``s: the base class and its difficulty declaration, the NTM paper's five
algorithmic tasks, the ACT paper's parity, logic and addition, sorting, the DNC paper's graph tasks, bAbI, auxiliary objectives, and few-shot episodes (sinusoid regression, Omniglot)."""

from mannkit.tasks.algorithmic import (
    AssociativeRecallTask,
    CopyTask,
    DynamicNGramsTask,
    PrioritySortTask,
    RepeatCopyTask,
    ngram_bayes_optimal_bits,
)
from mannkit.tasks.act_tasks import AdditionTask, LogicTask, ParityTask
from mannkit.tasks.babi import BabiDataModule
from mannkit.tasks.babi_stream import BabiSequenceTask
from mannkit.tasks.base import LOSSES, Batch, SequenceTask
from mannkit.tasks.difficulty import Difficulty
from mannkit.tasks.episodic import EpisodicTask, SinusoidTask
from mannkit.tasks.graph import FamilyTreeTask, GraphTask, GraphTraversalTask, ShortestPathTask
from mannkit.tasks.multitask import MultiTask
from mannkit.tasks.nth_farthest import NthFarthestTask
from mannkit.tasks.omniglot import OmniglotTask
from mannkit.tasks.parsing import DyckTask
from mannkit.tasks.sorting import SortTask
from mannkit.tasks.transduction import (
    BigramFlipTask,
    CopyTransduction,
    GenderConjugationTask,
    ReversalTask,
    SVOtoSOVTask,
    TransductionTask,
)

__all__ = [
    "Batch",
    "SequenceTask",
    "Difficulty",
    "LOSSES",
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
    "NthFarthestTask",
    "ParityTask",
    "LogicTask",
    "AdditionTask",
    "TransductionTask",
    "CopyTransduction",
    "ReversalTask",
    "BigramFlipTask",
    "SVOtoSOVTask",
    "GenderConjugationTask",
    "DyckTask",
    "BabiDataModule",
    "BabiSequenceTask",
    "ngram_bayes_optimal_bits",
    "EpisodicTask",
    "SinusoidTask",
    "OmniglotTask",
]
