"""Small helpers shared by the DMN+ modules: argument checks and Xavier initialisation."""

from __future__ import annotations

from torch import nn

from mannkit.core.errors import ConfigError

__all__ = ["positive_int", "optional_positive_int", "probability", "xavier_", "xavier_gru_"]


def positive_int(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{owner}: {name} must be a positive integer, got {value!r}; set {name} to 1 or more.")


def optional_positive_int(owner: str, name: str, value: object, default: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(
            f"{owner}: {name} must be a positive integer or null, got {value!r}; set it to 1 or more, or null for {default}."
        )


def probability(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{owner}: {name} must be a number in [0, 1), got {value!r}; use e.g. 0.1, or 0 for none.")


def xavier_(layer: nn.Linear) -> nn.Linear:
    """Xavier-uniform weights and zero biases (DMN+ sec. 4.2 initialises every weight this way)."""
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def xavier_gru_(gru: nn.GRU) -> nn.GRU:
    """Xavier-uniform weights per gate block (reset, update, candidate) and zero biases, for every layer and direction."""
    for name, tensor in gru.named_parameters():
        if name.startswith("weight"):
            for block in tensor.data.chunk(3, dim=0):  # [3H, I] -> three [H, I] gate matrices
                nn.init.xavier_uniform_(block)
        else:
            nn.init.zeros_(tensor)
    return gru
