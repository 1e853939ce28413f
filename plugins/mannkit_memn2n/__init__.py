"""End-to-End Memory Networks plugin (Sukhbaatar et al. 2015).

Loaded through the entry point ``memn2n = "mannkit_memn2n"``; importing it registers its classes.
"""

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

__all__ = ["MANNKIT_API"]
