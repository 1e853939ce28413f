"""Generic LightningModules (systems) that train any model of the right kind."""

from mannkit.systems.sequence import SequenceSystem

__all__ = ["SequenceSystem"]
