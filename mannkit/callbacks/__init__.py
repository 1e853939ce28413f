"""Callbacks: prediction writer, memory-access pictures, length-generalisation report, curriculum."""

from mannkit.callbacks.curriculum import Curriculum
from mannkit.callbacks.generalisation import LengthGeneralisation
from mannkit.callbacks.memory_pictures import MemoryPictures
from mannkit.callbacks.prediction import PredictionWriter

__all__ = ["Curriculum", "LengthGeneralisation", "MemoryPictures", "PredictionWriter"]
