"""Built-in controllers: stacked LSTM, stacked GRU, stacked tanh RNN, and a feed-forward MLP.

Each maps ``x [B, I]`` and its state to ``h [B, H]`` and a new state. ``I`` is
given by the assembling cell through :meth:`bind`.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Controller
from mannkit.core.registry import register

__all__ = ["LSTMController", "GRUController", "RNNController", "MLPController", "LSTMState"]


def _positive(owner: str, name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"{owner}: {name} must be a positive integer, got {value!r}; set {name} to 1 or more.")


class LSTMState(NamedTuple):
    h: Tensor  # [L, B, H]
    c: Tensor  # [L, B, H]


@register
class LSTMController(Controller):
    """A stack of LSTM layers; output is the top layer's hidden state.

    Args:
        hidden_size: H, units per layer.
        layers: number of stacked LSTM layers.
        learn_initial_state: learn h0 and c0 (shared across the batch) instead of zeros.
    """

    def __init__(self, hidden_size: int = 100, layers: int = 1, learn_initial_state: bool = False) -> None:
        super().__init__()
        _positive("LSTMController", "hidden_size", hidden_size)
        _positive("LSTMController", "layers", layers)
        self.hidden_size, self.layers = hidden_size, layers
        self.cells = nn.ModuleList()
        if learn_initial_state:
            self.h0 = nn.Parameter(torch.zeros(layers, 1, hidden_size))
            self.c0 = nn.Parameter(torch.zeros(layers, 1, hidden_size))
        else:
            self.h0 = self.c0 = None

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def bind(self, input_size: int) -> None:
        if self._bind_once(input_size=input_size):
            sizes = [input_size] + [self.hidden_size] * (self.layers - 1)
            self.cells.extend(nn.LSTMCell(i, self.hidden_size) for i in sizes)

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> LSTMState:
        if self.h0 is not None:
            h0, c0 = (p.to(device=device, dtype=dtype) for p in (self.h0, self.c0))
            return LSTMState(h0.expand(-1, batch_size, -1), c0.expand(-1, batch_size, -1))
        zeros = torch.zeros(self.layers, batch_size, self.hidden_size, device=device, dtype=dtype)
        return LSTMState(zeros, zeros)

    def forward(self, x: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        if len(self.cells) == 1:  # one layer: no stacking copy, [B, H] -> [1, B, H] views
            h, c = self.cells[0](x, (state.h[0], state.c[0]))
            return h, LSTMState(h.unsqueeze(0), c.unsqueeze(0))
        hs, cs = [], []
        for layer, cell in enumerate(self.cells):  # layers, not batch or heads
            x, c = cell(x, (state.h[layer], state.c[layer]))
            hs.append(x)
            cs.append(c)
        return x, LSTMState(torch.stack(hs), torch.stack(cs))


class _OneTensorStack(Controller):
    """Stacked layers of one torch cell whose state is a single ``h`` per layer (GRU, tanh RNN).

    The state holds every layer's ``h``: ``[L, B, H]`` when ``layer_axis`` is 0, ``[B, L, H]`` when it is 1.
    A subclass names its cell in :meth:`_cell`.
    """

    layer_axis = 0

    def __init__(self, hidden_size: int = 100, layers: int = 1) -> None:
        super().__init__()
        _positive(type(self).__name__, "hidden_size", hidden_size)
        _positive(type(self).__name__, "layers", layers)
        self.hidden_size, self.layers = hidden_size, layers
        self.cells = nn.ModuleList()

    def _cell(self, input_size: int) -> nn.Module:
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def bind(self, input_size: int) -> None:
        if self._bind_once(input_size=input_size):
            sizes = [input_size] + [self.hidden_size] * (self.layers - 1)
            self.cells.extend(self._cell(i) for i in sizes)

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        shape = [batch_size, self.hidden_size]
        shape.insert(self.layer_axis, self.layers)  # [L, B, H] or [B, L, H]
        return torch.zeros(shape, device=device, dtype=dtype)

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        axis = self.layer_axis
        if len(self.cells) == 1:  # one layer: [B, H] -> a view with the layer axis, instead of a stacking copy
            x = self.cells[0](x, state.select(axis, 0))
            return x, x.unsqueeze(axis)
        hs = []
        for layer, cell in enumerate(self.cells):  # layers, not batch
            x = cell(x, state.select(axis, layer))
            hs.append(x)
        return x, torch.stack(hs, dim=axis)


@register
class GRUController(_OneTensorStack):
    """A stack of GRU layers; output is the top layer's hidden state; state ``[L, B, H]``.

    Args:
        hidden_size: H, units per layer.
        layers: number of stacked GRU layers.
    """

    def _cell(self, input_size: int) -> nn.Module:
        return nn.GRUCell(input_size, self.hidden_size)


@register
class RNNController(_OneTensorStack):
    """A stack of plain tanh RNN layers, ``h_t = tanh(W x_t + U h_{t-1} + b)``; output is the top layer's ``h_t``;
    state ``[B, L, H]``.

    The simple recurrent network of the ACT paper's parity and logic experiments (Graves 2016).

    Args:
        hidden_size: H, units per layer.
        layers: number of stacked RNN layers.
    """

    layer_axis = 1

    def _cell(self, input_size: int) -> nn.Module:
        return nn.RNNCell(input_size, self.hidden_size, nonlinearity="tanh")


_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


@register
class MLPController(Controller):
    """A feed-forward controller (no recurrent state of its own): Linear + activation, ``layers`` times.

    Args:
        hidden_size: H, units per layer.
        layers: number of Linear + activation layers.
        activation: one of relu, tanh, sigmoid, gelu.
    """

    def __init__(self, hidden_size: int = 100, layers: int = 1, activation: Literal["relu", "tanh", "sigmoid", "gelu"] = "relu") -> None:
        super().__init__()
        _positive("MLPController", "hidden_size", hidden_size)
        _positive("MLPController", "layers", layers)
        if activation not in _ACTIVATIONS:
            raise ConfigError(
                f"MLPController: activation must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}; pick one of those."
            )
        self.hidden_size, self.layers, self.activation = hidden_size, layers, activation
        self.net = nn.Sequential()

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def bind(self, input_size: int) -> None:
        if self._bind_once(input_size=input_size):
            for i in range(self.layers):
                self.net.append(nn.Linear(input_size if i == 0 else self.hidden_size, self.hidden_size))
                self.net.append(_ACTIVATIONS[self.activation]())

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> tuple:
        return ()

    def forward(self, x: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        return self.net(x), state
