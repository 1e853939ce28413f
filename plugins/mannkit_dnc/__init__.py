"""The Differentiable Neural Computer plugin (Graves et al. 2016), dense and sparse (SAM/SDNC, Rae et al. 2016).

Loaded through the entry point ``dnc = "mannkit_dnc"``; importing it registers its classes.
Use :class:`DNCMemory` with one :class:`DNCWriteHead` and one :class:`DNCReadHead` bank in a
``MemoryCell``; the mechanisms are pure functions in :mod:`mannkit_dnc.mechanisms`.
"""

from mannkit_dnc import mechanisms
from mannkit_dnc.heads import DNCReadHead, DNCWriteHead
from mannkit_dnc.memory import DNCMemory, DNCState

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

__all__ = ["MANNKIT_API", "DNCMemory", "DNCReadHead", "DNCState", "DNCWriteHead", "mechanisms"]

from mannkit_dnc.sparse import SparseDNCMemory  # noqa: E402  (the sparse memory: SAM/SDNC)

__all__ += ["SparseDNCMemory"]
