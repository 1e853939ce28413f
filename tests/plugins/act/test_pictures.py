"""MemoryPictures draws ACT's ponder steps per input step and its halting weights (and the wrapped DNC's weightings)."""

import torch

from mannkit.callbacks.memory_pictures import example_figures
from mannkit.cell import MemoryCell
from mannkit.nn import LSTMController, RNNController
from mannkit.systems import SequenceSystem
from mannkit.tasks import AdditionTask, LogicTask
from mannkit.testing import default_factory
from mannkit.nn import ControllerCell
from mannkit_act import ACT


def test_ponder_and_halting_pictures_for_a_categorical_task():
    task = AdditionTask(max_length=4, test_lengths=[4])
    model = SequenceSystem(ACT(ControllerCell(RNNController(7)), max_ponder=4), input_size=task.input_size,
                           output_size=task.output_size)
    figures = example_figures(model, task.example_batch(2))
    assert {"example", "ponder", "halting_p"} <= set(figures)


def test_act_around_a_dnc_draws_the_dnc_weightings_too():
    torch.manual_seed(0)
    task = LogicTask(max_length=3, test_lengths=[3])
    cell = MemoryCell(LSTMController(7), default_factory("DNCMemory")(), [default_factory("DNCWriteHead")(), default_factory("DNCReadHead")()])
    model = SequenceSystem(ACT(cell, max_ponder=3), input_size=task.input_size, output_size=task.output_size)
    figures = example_figures(model, task.example_batch(2))
    assert {"ponder", "halting_p", "read_weights", "write_weights"} <= set(figures), sorted(figures)
