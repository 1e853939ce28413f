"""An example mannkit plugin: :class:`ScaledDotAddressing` and :class:`IndRNNController`.

Loaded through the entry point ``example = "mannkit_example"`` (see ``pyproject.toml``);
importing this module registers both classes, so YAML can name them by their short names.
"""

from mannkit_example.addressing import ScaledDotAddressing, scaled_dot_weights
from mannkit_example.controllers import IndRNNController

#: The mannkit interface version this plugin is written for (mannkit refuses another).
MANNKIT_API = 1

__all__ = ["MANNKIT_API", "IndRNNController", "ScaledDotAddressing", "scaled_dot_weights"]
