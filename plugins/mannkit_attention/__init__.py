"""Attention addressing plugin: scaled dot-product, multi-head, Linformer and Performer attention as Addressing.

Loaded through the entry point ``attention = "mannkit_attention"``; importing it registers its classes.
"""

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

__all__ = ["MANNKIT_API"]
