"""The meta-learning-with-memory plugin: memory-augmented neural networks with least-recently-used access
(Santoro et al. 2016) and differentiable plasticity (Miconi et al. 2018).

Loaded through the entry point ``mann = "mannkit_mann"``; importing it registers:

- :class:`LRUAMemory` and its head bank :class:`LRUAHead` (write by LRUA, read by content), for a
  ``MemoryCell`` under any controller;
- :class:`PlasticController`, a plastic tanh RNN usable as a controller anywhere, and :class:`ReadoutNet`
  (any controller with a linear readout, no memory);
- the tasks :class:`SequentialOmniglotTask` (labels one step late, accuracy by presentation) and
  :class:`PatternCompletionTask`, and :class:`PresentationAccuracy`.

The equations are pure functions in :mod:`mannkit_mann.mechanisms`. MAML over any of these models is the
core's :class:`mannkit.systems.MetaSystem`.
"""

from mannkit_mann import mechanisms
from mannkit_mann.lrua import LRUAHead, LRUAMemory, LRUAState
from mannkit_mann.plastic import PlasticController, PlasticState, ReadoutNet
from mannkit_mann.tasks import PatternCompletionTask, PresentationAccuracy, SequentialOmniglotTask, accuracy_by_presentation, presentations

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

__all__ = [
    "MANNKIT_API",
    "LRUAHead",
    "LRUAMemory",
    "LRUAState",
    "PlasticController",
    "PlasticState",
    "ReadoutNet",
    "PatternCompletionTask",
    "PresentationAccuracy",
    "SequentialOmniglotTask",
    "accuracy_by_presentation",
    "presentations",
    "mechanisms",
]

from mannkit_mann import kit  # noqa: E402,F401  (registers the conformance kit's examples)
