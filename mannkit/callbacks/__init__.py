"""Callbacks: checkpoints (atomic, last always newest), training guard, prediction writer, memory-access pictures, length-generalisation report, gradient-norm monitor, curriculum, QA attention pictures, linear start."""

from mannkit.callbacks.attention_pictures import AttentionPictures
from mannkit.callbacks.checkpoint import Checkpoint
from mannkit.callbacks.converged_lr import LowerLROnTarget
from mannkit.callbacks.checkpoint_io import AtomicCheckpointIO, CheckpointError, read_checkpoint
from mannkit.callbacks.clip_each import ClipEachGradient
from mannkit.callbacks.curriculum import Curriculum
from mannkit.callbacks.generalisation import LengthGeneralisation
from mannkit.callbacks.grad_norm import GradNormMonitor
from mannkit.callbacks.guard import TrainingGuard
from mannkit.callbacks.linear_start import LinearStart
from mannkit.callbacks.memory_pictures import MemoryPictures
from mannkit.callbacks.prediction import PredictionWriter
from mannkit.callbacks.spike_clip import SpikeClip

__all__ = [
    "AtomicCheckpointIO",
    "AttentionPictures",
    "Checkpoint",
    "CheckpointError",
    "ClipEachGradient",
    "Curriculum",
    "GradNormMonitor",
    "LengthGeneralisation",
    "LinearStart",
    "LowerLROnTarget",
    "MemoryPictures",
    "PredictionWriter",
    "SpikeClip",
    "TrainingGuard",
    "read_checkpoint",
]
