"""Callbacks: prediction writer, memory-access pictures, length-generalisation report."""

from mannkit.callbacks.generalisation import LengthGeneralisation
from mannkit.callbacks.memory_pictures import MemoryPictures
from mannkit.callbacks.prediction import PredictionWriter

__all__ = ["LengthGeneralisation", "MemoryPictures", "PredictionWriter"]
