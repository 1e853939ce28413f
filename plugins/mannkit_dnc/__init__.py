"""The Differentiable Neural Computer plugin (Graves et al. 2016), dense and sparse (SAM/SDNC, Rae et al. 2016).

Loaded through the entry point ``dnc = "mannkit_dnc"``; importing it registers its classes.
"""

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

__all__ = ["MANNKIT_API"]

from mannkit_dnc.sparse import SparseDNCMemory  # noqa: E402  (the sparse memory: SAM/SDNC)

__all__ += ["SparseDNCMemory"]
