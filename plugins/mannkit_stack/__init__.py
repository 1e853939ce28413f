"""The stack plugin: the neural stack, queue and deque of Grefenstette et al. 2015 and the push/pop/no-op stack of Joulin & Mikolov 2015.

Loaded through the entry point ``stack = "mannkit_stack"``; importing it registers its classes:

- memories whose state grows one value per push (``Memory.growing``): :class:`NeuralStack`,
  :class:`NeuralQueue`, :class:`NeuralDeque`, driven by :class:`NeuralStackHead`;
- a fixed-depth memory of K stacks: :class:`PushPopStack`, driven by :class:`PushPopStackHead`;
The memory-less LSTM baseline of the comparisons is ``mannkit.nn.ControllerCell``.

The equations are pure functions in :mod:`mannkit_stack.mechanisms`. Any registered controller
drives the heads; ``OnMemory`` puts a stack beside a matrix memory in one cell.
"""

from mannkit_stack import mechanisms
from mannkit_stack.heads import NeuralStackHead
from mannkit_stack.memory import NeuralDeque, NeuralQueue, NeuralStack, StackState
from mannkit_stack.pushpop import PushPopStack, PushPopStackHead, PushPopState

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

__all__ = [
    "MANNKIT_API",
    "NeuralDeque",
    "NeuralQueue",
    "NeuralStack",
    "NeuralStackHead",
    "PushPopStack",
    "PushPopStackHead",
    "PushPopState",
    "StackState",
    "mechanisms",
]

from mannkit_stack import kit  # noqa: E402,F401  (registers the conformance kit's examples)
