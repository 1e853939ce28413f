"""mannkit: a plugin framework for memory-augmented neural networks on PyTorch Lightning."""

from mannkit.core import *  # noqa: F401,F403
from mannkit.core import __all__ as _core_all

__version__ = "0.1.0"
__all__ = ["__version__", *_core_all]
