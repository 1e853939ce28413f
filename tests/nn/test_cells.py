"""Cells inside cells: a recurrent cell as a controller (CellController), cells as layers (StackedCells).

Distinct sizes: B 3, T 5, I 6, O 2, inner H 7, between-layer H 9.
"""

from pathlib import Path

import pytest
import torch
import yaml

from mannkit.cell import MemoryCell
from mannkit.core.config import instantiate
from mannkit.core.errors import ConfigError, ShapeError
from mannkit.nn import CellController, ContentAddressing, ControllerCell, GRUController, LSTMController, MatrixMemory, ReadHead, StackedCells, WriteHead
from mannkit.testing import check_controller, check_sequence_model

B, T, I, O = 3, 5, 6, 2
MIXES = Path(__file__).parents[2] / "configs" / "mixes"


def _cell(controller=None, slots: int = 5, word: int = 4) -> MemoryCell:
    return MemoryCell(controller or LSTMController(8), MatrixMemory(slots, word, init="random"),
                      [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])


# -- CellController ---------------------------------------------------------------------------------
def test_a_cell_controller_gives_the_inner_cells_step_output_as_h():
    torch.manual_seed(0)
    controller = CellController(_cell(), hidden_size=7)
    controller.bind(I)
    assert controller.output_size == 7 and controller.cell.input_size == I and controller.cell.output_size == 7
    x = torch.randn(B, T, I)
    torch.manual_seed(5)
    state = controller.initial_state(B, x.device, x.dtype)
    hs = []
    for t in range(T):
        h, state = controller(x[:, t], state)  # h [B, 7]
        hs.append(h)
    torch.manual_seed(5)  # the inner cell's random memory init draws the same noise
    torch.testing.assert_close(torch.stack(hs, dim=1), controller.cell(x).logits)


def test_a_tanh_cell_controller_bounds_the_inner_output():
    torch.manual_seed(0)
    plain, bounded = CellController(_cell(), hidden_size=7), CellController(_cell(), hidden_size=7, activation="tanh")
    for controller in (plain, bounded):
        controller.bind(I)
    with torch.no_grad():
        for p in plain.parameters():
            p.mul_(5)  # a trained-looking scale, where the plain output leaves (-1, 1)
    bounded.load_state_dict(plain.state_dict())
    x = 10 * torch.randn(B, I)
    torch.manual_seed(5)
    h_plain, _ = plain(x, plain.initial_state(B, x.device, x.dtype))
    torch.manual_seed(5)
    h_bounded, _ = bounded(x, bounded.initial_state(B, x.device, x.dtype))
    torch.testing.assert_close(h_bounded, torch.tanh(h_plain))
    assert h_plain.abs().max() > 1 > h_bounded.abs().max()
    check_controller(lambda: CellController(_cell(LSTMController(13), 7, 11), hidden_size=13, activation="tanh"))


def test_an_identity_output_passes_the_inner_controllers_state_through():
    torch.manual_seed(0)
    plain = CellController(ControllerCell(LSTMController(7)), hidden_size=7, output_init="identity")
    plain.bind(I)
    x = torch.randn(B, I)
    state = plain.initial_state(B, x.device, x.dtype)
    h, _ = plain(x, state)
    h_inner, _ = plain.cell.controller(x, state)  # the LSTM alone, same weights and state
    torch.testing.assert_close(h, h_inner)
    wide = CellController(_cell(LSTMController(8), 5, 4), hidden_size=6, output_init="identity")  # output [h 8, r 4] -> 6
    wide.bind(I)
    expected = torch.cat([torch.eye(6), torch.zeros(6, 6)], dim=1)
    torch.testing.assert_close(wide.cell.output.weight, expected)
    assert not wide.cell.output.bias.any()
    check_controller(lambda: CellController(_cell(LSTMController(13), 7, 11), hidden_size=13, activation="tanh", output_init="identity"))
    default = CellController(ControllerCell(LSTMController(7)), hidden_size=7)
    default.bind(I)
    assert not torch.equal(default.cell.output.weight, torch.eye(7))  # the default keeps the cell's own initialisation


def test_an_ntm_whose_controller_is_a_memory_cell_passes_the_kit():
    check_controller(lambda: CellController(_cell(LSTMController(13), 7, 11), hidden_size=13))
    check_sequence_model(lambda: MemoryCell(CellController(_cell(GRUController(13)), hidden_size=13), MatrixMemory(7, 11),
                                            [WriteHead(ContentAddressing()), ReadHead(ContentAddressing(), count=2)]))


def test_a_cell_controller_is_validated():
    with pytest.raises(ConfigError, match=r"^CellController: cell is a LSTMController, not a recurrent cell; give a class_path such as MemoryCell\.$"):
        CellController(LSTMController(3))
    with pytest.raises(ConfigError, match=r"^CellController: hidden_size must be a positive integer, got 0; set hidden_size to 1 or more\.$"):
        CellController(_cell(), hidden_size=0)
    with pytest.raises(ConfigError, match=r"^CellController: activation must be 'none' or 'tanh', got 'relu'; use tanh to bound h_t as an LSTM controller's output is\.$"):
        CellController(_cell(), activation="relu")
    with pytest.raises(ConfigError, match=r"^CellController: output_init must be 'default' or 'identity', got 'zeros'; use identity to start the outer heads from the inner controller's state\.$"):
        CellController(_cell(), output_init="zeros")
    with pytest.raises(ConfigError, match=r"^CellController: output_init 'identity' needs an inner cell with an output layer named 'output', and StackedCells has none; use output_init: default\.$"):
        CellController(StackedCells([_cell()], hidden_size=4), output_init="identity")


# -- StackedCells -----------------------------------------------------------------------------------
def _stack() -> StackedCells:
    torch.manual_seed(0)
    stack = StackedCells([_cell(slots=5, word=4), _cell(GRUController(10), slots=7, word=3)], hidden_size=9)
    stack.bind(I, O)
    return stack


def test_each_layer_feeds_the_next():
    stack = _stack()
    bottom, top = stack.layers
    assert (bottom.input_size, bottom.output_size, top.input_size, top.output_size) == (I, 9, 9, O)
    x = torch.randn(B, T, I)
    torch.manual_seed(1)
    out = stack(x, record=True)
    torch.manual_seed(1)  # the layers' random memory inits, drawn in the same order
    expected = top(bottom(x).logits).logits
    torch.testing.assert_close(out.logits, expected)
    assert out.trace["layer0/read_weights"].shape == (B, T, 1, 5) and out.trace["layer1/read_weights"].shape == (B, T, 1, 7)
    assert out.trace["layer1/memory"].shape == (B, T, 7, 3)


def test_stacked_cells_pass_the_kit_and_nest():
    check_sequence_model(lambda: StackedCells([_cell(LSTMController(13)), _cell(GRUController(13))], hidden_size=13))
    nested = StackedCells([StackedCells([_cell()], hidden_size=4), MemoryCell(CellController(_cell(), 5), MatrixMemory(3, 2),
                                                                              [ReadHead(ContentAddressing())])], hidden_size=6)
    nested.bind(I, O)
    assert nested(torch.randn(B, T, I)).logits.shape == (B, T, O)


def test_stacked_cells_are_validated():
    with pytest.raises(ConfigError, match=r"^StackedCells: layers must be a non-empty list of cells, got \[\]; give at least one MemoryCell\.$"):
        StackedCells([])
    with pytest.raises(ConfigError, match=r"^StackedCells: layers\[1\] is a MatrixMemory, not a recurrent cell; "):
        StackedCells([_cell(), MatrixMemory(3, 2)])
    with pytest.raises(ConfigError, match=r"StackedCells is not built yet; call bind\(input_size, output_size\)"):
        StackedCells([_cell()])(torch.zeros(B, T, I))
    with pytest.raises(ShapeError):
        _stack()(torch.zeros(B, T, I + 1))


@pytest.mark.parametrize("name", ["ntm_cell_controller_copy.yaml", "stacked_cells_copy.yaml"])
def test_the_presets_round_trip_through_to_config(name):
    core = yaml.safe_load((MIXES / name).read_text())["model"]["init_args"]["core"]
    model = instantiate(core)
    config = model.to_config()
    assert instantiate(config).to_config() == config


def test_memory_pictures_draw_each_layer():
    from mannkit.callbacks.memory_pictures import example_figures

    figures = example_figures(_stack(), {"input": torch.rand(2, T, I), "target": torch.rand(2, T, O)})
    assert {"layer0/read_weights", "layer0/memory", "layer1/write_weights", "layer1/memory"} <= set(figures)
