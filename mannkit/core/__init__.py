"""mannkit's core: interfaces, config round trip, registry and errors (imports no plugin)."""

from mannkit.core.config import Configurable, instantiate, resolve_class, to_config
from mannkit.core.errors import (
    ConfigError,
    DataError,
    MannkitError,
    PluginError,
    ShapeError,
    TrainingError,
)
from mannkit.core.interfaces import (
    Addressing,
    Component,
    Controller,
    Head,
    HeadOutput,
    Memory,
    QAModel,
    QAOutput,
    RecurrentCell,
    SequenceModel,
    SequenceOutput,
    State,
    slot_mask,
)
from mannkit.core.registry import API_VERSION, load_plugins, register, registry
from mannkit.core.shapes import check_shape

__all__ = [
    "API_VERSION",
    "Addressing",
    "Component",
    "ConfigError",
    "Configurable",
    "Controller",
    "DataError",
    "Head",
    "HeadOutput",
    "MannkitError",
    "Memory",
    "PluginError",
    "QAModel",
    "QAOutput",
    "RecurrentCell",
    "slot_mask",
    "SequenceModel",
    "SequenceOutput",
    "ShapeError",
    "State",
    "TrainingError",
    "check_shape",
    "instantiate",
    "load_plugins",
    "register",
    "registry",
    "resolve_class",
    "to_config",
]
