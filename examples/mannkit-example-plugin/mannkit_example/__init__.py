"""An example mannkit plugin: :class:`ScaledDotAddressing`, :class:`IndRNNController` and :class:`MajorityTask`.

Loaded through the entry point ``example = "mannkit_example"`` (see ``pyproject.toml``);
importing this module registers the three classes, so YAML can name them by their short names.
It also tells mannkit's conformance kit how to check the addressing (``register_example``):
here, in the package, so that the example is known wherever the plugin is loaded, mannkit's
own registry-driven tests included, not only in this plugin's tests.
"""

from mannkit.nn import MatrixMemory
from mannkit.testing import SIZES, register_example
from mannkit_example.addressing import ScaledDotAddressing, scaled_dot_weights
from mannkit_example.controllers import IndRNNController
from mannkit_example.tasks import MajorityTask, majority

#: The mannkit interface version this plugin is written for (mannkit refuses another).
MANNKIT_API = 1


def random_memory() -> MatrixMemory:
    """The kit's ``MatrixMemory(N, W)`` with random rows: over equal rows every dot product is the same,
    the weights are uniform whatever the scale, and the learned scale would get no real gradient."""
    return MatrixMemory(slots=SIZES.N, word_size=SIZES.W, init="random")


register_example(ScaledDotAddressing, memory=random_memory)

__all__ = ["MANNKIT_API", "IndRNNController", "MajorityTask", "ScaledDotAddressing", "majority", "random_memory",
           "scaled_dot_weights"]
