"""The Neural Turing Machine plugin (Graves et al. 2014): location addressing for the core heads.

Loaded through the entry point ``ntm = "mannkit_ntm"``; importing it registers its
classes. Use :class:`NTMAddressing` with the core ``ReadHead`` / ``WriteHead`` over a
``MatrixMemory``.
"""

from mannkit_ntm.addressing import NTMAddressing, circular_shift, interpolate, sharpen, shift_index

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

__all__ = ["MANNKIT_API", "NTMAddressing", "circular_shift", "interpolate", "sharpen", "shift_index"]
