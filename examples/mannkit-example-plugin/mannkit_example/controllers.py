"""IndRNN controller (Li et al. 2018, "Independently Recurrent Neural Network").

Each unit has one recurrent weight of its own instead of a full recurrent matrix:
``h_t = act(W x_t + u * h_{t-1} + b)``, with ``*`` elementwise. Layers are stacked.

Shape letters: B batch, I input width, H hidden units, L layers.

>>> import torch
>>> controller = IndRNNController(hidden_size=4, layers=2)
>>> controller.bind(input_size=3)
>>> state = controller.initial_state(5, torch.device("cpu"), torch.float32)  # [L, B, H]
>>> h, state = controller(torch.randn(5, 3), state)
>>> tuple(h.shape), tuple(state.shape)
((5, 4), (2, 5, 4))
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from mannkit import ConfigError, Controller, register

__all__ = ["IndRNNController"]

_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


@register
class IndRNNController(Controller):
    """A stack of IndRNN layers; the output is the top layer's hidden state.

    Per layer l: ``h^l_t = act(W^l x^l_t + u^l * h^l_{t-1} + b^l)`` with ``x^1_t = x_t [B, I]``
    and ``x^l_t = h^{l-1}_t [B, H]``. The recurrent weights ``u [L, H]`` start uniform in
    ``[0, 1)`` (Li et al.'s choice for relu) and are clipped to ``[-recurrent_max, recurrent_max]``
    in the forward pass when ``recurrent_max`` is set (use ``2 ** (1 / T)`` to bound growth
    over T steps).

    Shapes: ``x [B, I]``, state ``[L, B, H]`` -> ``h [B, H]``, state ``[L, B, H]``.

    Args:
        hidden_size: H, units per layer.
        layers: L, stacked layers.
        activation: relu (the paper's) or tanh.
        recurrent_max: bound on ``|u|``; null for none.
    """

    def __init__(
        self,
        hidden_size: int = 100,
        layers: int = 1,
        activation: Literal["relu", "tanh"] = "relu",
        recurrent_max: float | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("hidden_size", hidden_size), ("layers", layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"IndRNNController: {name} must be a positive integer, got {value!r}; set it to 1 or more.")
        if activation not in _ACTIVATIONS:
            raise ConfigError(
                f"IndRNNController: activation must be relu or tanh, got {activation!r}; pick one of those."
            )
        if recurrent_max is not None and not recurrent_max > 0:
            raise ConfigError(
                f"IndRNNController: recurrent_max must be positive or null, got {recurrent_max!r}; use e.g. 2.0 or null."
            )
        self.hidden_size, self.layers = hidden_size, layers
        self.activation, self.recurrent_max = activation, recurrent_max
        self.recurrent = nn.Parameter(torch.rand(layers, hidden_size))  # u, [L, H]
        self.inputs = nn.ModuleList()  # W^l and b^l, created by bind once I is known

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def bind(self, input_size: int) -> None:
        if self._bind_once(input_size=input_size):
            sizes = [input_size] + [self.hidden_size] * (self.layers - 1)
            self.inputs.extend(nn.Linear(i, self.hidden_size) for i in sizes)

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        return torch.zeros(self.layers, batch_size, self.hidden_size, device=device, dtype=dtype)  # [L, B, H]

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """``x [B, I]``, ``state [L, B, H]`` -> ``(h [B, H], state [L, B, H])``."""
        act = _ACTIVATIONS[self.activation]
        u = self.recurrent
        if self.recurrent_max is not None:
            u = u.clamp(-self.recurrent_max, self.recurrent_max)
        hs = []
        for layer, linear in enumerate(self.inputs):  # layers, not batch or units
            x = act(linear(x) + u[layer] * state[layer])  # u [H] broadcasts over B
            hs.append(x)
        return x, torch.stack(hs)  # L x [B, H] -> [L, B, H]
