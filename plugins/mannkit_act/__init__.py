"""The Adaptive Computation Time plugin (Graves 2016): a variable number of steps of any recurrent cell per input step.

Loaded through the entry point ``act = "mannkit_act"``; importing it registers its classes.
Wrap any recurrent cell in :class:`ACT` (``class_path: ACT`` with ``init_args: {cell: ...}``);
``mannkit.nn.ControllerCell`` makes a controller alone (the paper's RNN or LSTM) a cell. The halting
rule is two pure functions in :mod:`mannkit_act.halting` (the decision during the ponder loop, the
weights after it); the mean-field mix of nested states is in :mod:`mannkit_act.tree`.
"""

from mannkit.nn import ControllerCell, RNNController
from mannkit.testing.defaults import SIZES, register_example
from mannkit_act.act import ACT
from mannkit_act.halting import halting_weights, keeps_pondering

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

__all__ = ["MANNKIT_API", "ACT", "halting_weights", "keeps_pondering"]


def _kit_act() -> ACT:
    """The kit's ACT: a small tanh RNN, at most 5 ponder steps."""
    return ACT(ControllerCell(RNNController(SIZES.H)), max_ponder=5)


register_example(ACT, _kit_act)
