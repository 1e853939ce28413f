"""Config round trip: components -> plain data -> components."""

import pickle

import pytest
import torch

from mannkit.cell import MemoryCell
from mannkit.core.config import instantiate, resolve_class, to_config
from mannkit.core.errors import ConfigError
from mannkit.nn import ContentAddressing, GRUController, LSTMController, MatrixMemory, ReadHead, WriteHead


def _cell():
    return MemoryCell(
        GRUController(13, layers=2),
        MatrixMemory(7, 5, init="learned"),
        [WriteHead(ContentAddressing()), ReadHead(ContentAddressing(), count=3)],
        clip=20.0,
    )


def test_config_is_plain_data_and_rebuilds_the_same_model():
    cell = _cell()
    cell.bind(3, 2)
    cfg = cell.to_config()
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # only primitives inside
    assert cfg["init_args"]["heads"][1]["init_args"]["count"] == 3
    twin = instantiate(cfg)
    twin.bind(3, 2)
    twin.load_state_dict(cell.state_dict())
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(twin(x).logits, cell(x).logits)


def test_short_names_resolve_through_the_registry():
    assert resolve_class("LSTMController") is LSTMController
    assert resolve_class("mannkit.nn.LSTMController") is LSTMController
    built = instantiate({"class_path": "MatrixMemory", "init_args": {"slots": 3, "word_size": 2}})
    assert isinstance(built, MatrixMemory) and built.slots == 3


def test_unknown_class_names_the_field():
    with pytest.raises(ConfigError, match=r"model\.core\.class_path: unknown class 'MemoryCel'; did you mean 'MemoryCell'"):
        instantiate({"class_path": "MemoryCel"}, "model.core")


def test_wrong_option_names_the_class():
    with pytest.raises(ConfigError, match=r"memory: MatrixMemory does not accept these options"):
        instantiate({"class_path": "MatrixMemory", "init_args": {"slotz": 3}}, "memory")


def test_unsaveable_value_is_refused():
    with pytest.raises(ConfigError, match="a Tensor cannot be saved in a config"):
        to_config(torch.zeros(1))


def test_component_binding_twice_with_other_sizes_fails():
    ctrl = LSTMController(5)
    ctrl.bind(3)
    ctrl.bind(3)  # same size: no-op
    with pytest.raises(ConfigError, match="already built for"):
        ctrl.bind(4)
