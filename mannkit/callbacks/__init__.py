"""Callbacks: prediction writer (more to come: memory-access pictures, curriculum, generalisation report)."""

from mannkit.callbacks.prediction import PredictionWriter

__all__ = ["PredictionWriter"]
