"""Callbacks: prediction writer, memory-access pictures, length-generalisation report, curriculum, QA attention pictures, linear start."""

from mannkit.callbacks.attention_pictures import AttentionPictures
from mannkit.callbacks.curriculum import Curriculum
from mannkit.callbacks.generalisation import LengthGeneralisation
from mannkit.callbacks.linear_start import LinearStart
from mannkit.callbacks.memory_pictures import MemoryPictures
from mannkit.callbacks.prediction import PredictionWriter

__all__ = ["AttentionPictures", "Curriculum", "LengthGeneralisation", "LinearStart", "MemoryPictures", "PredictionWriter"]
