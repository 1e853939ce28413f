"""Differentiable plasticity (Miconi, Clune & Stanley 2018): a recurrent controller whose recurrent weights are
fixed weights plus a learned multiple of a Hebbian trace that each sequence writes as it runs.

Shape letters: B batch, T time, I input width, H hidden units, O outputs.

One step (Miconi eq. 1-2; the trace is per sample, as in Backpropamine, and clamped)::

    y_t    = tanh(W_in x_t + y_{t-1} (W + alpha * Hebb_{t-1}))        W, alpha [H, H] learned; Hebb [B, H, H]
    Hebb_t = (1 - eta) Hebb_{t-1} + eta y_{t-1} y_t^T                 rule "hebb" (eq. 2), eta learned
    Hebb_t = Hebb_{t-1} + eta y_t (y_{t-1} - y_t Hebb_{t-1})            rule "oja" (eq. 3)

``w_ij + alpha_ij Hebb_ij`` is the background notes' ``w_ij^new = w_ij + eta A_ij Hebb_ij`` with the rate
folded into the trace. ``alpha = 0`` everywhere gives a plain tanh RNN, the non-plastic baseline of the same size.

>>> import torch
>>> controller = PlasticController(hidden_size=6)
>>> controller.bind(input_size=3)
>>> h, state = controller(torch.zeros(2, 3), controller.initial_state(2, torch.device("cpu"), torch.float32))
>>> h.shape, state.hebb.shape
(torch.Size([2, 6]), torch.Size([2, 6, 6]))
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Controller, RecurrentCell, State
from mannkit.core.registry import register
from mannkit_mann.mechanisms import hebbian_update, oja_update

__all__ = ["PlasticController", "PlasticState", "ReadoutNet"]

_RULES = {"hebb": hebbian_update, "oja": oja_update}


class PlasticState(NamedTuple):
    y: Tensor  # y_{t-1}, [B, H]
    hebb: Tensor  # Hebb_{t-1}, [B, H, H]


@register
class PlasticController(Controller):
    """A plastic tanh RNN: recurrent weights ``W + alpha * Hebb`` with a per-sample Hebbian trace as state.

    Args:
        hidden_size: H.
        rule: ``hebb`` (decaying Hebbian trace) or ``oja`` (Oja's rule).
        eta: the initial plasticity rate (learned).
        init_scale: W and alpha start as ``init_scale * N(0, 1)`` (0.01 in Miconi's pattern task).
        clamp: the trace is kept in ``[-clamp, clamp]`` (2, as in Backpropamine).
        plastic: false freezes alpha at 0: the non-plastic RNN of the same size (W, W_in), for comparisons.
    """

    def __init__(self, hidden_size: int = 100, rule: Literal["hebb", "oja"] = "hebb", eta: float = 0.01,
                 init_scale: float = 0.01, clamp: float = 2.0, plastic: bool = True) -> None:
        super().__init__()
        if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
            raise ConfigError(f"PlasticController: hidden_size must be a positive integer, got {hidden_size!r}; set it to 1 or more.")
        if rule not in _RULES:
            raise ConfigError(f"PlasticController: rule must be hebb or oja, got {rule!r}; pick one of those.")
        if not clamp > 0:
            raise ConfigError(f"PlasticController: clamp must be positive, got {clamp!r}; use e.g. 2.")
        self.hidden_size, self.rule, self.clamp, self.plastic = hidden_size, rule, float(clamp), bool(plastic)
        self.w = nn.Parameter(init_scale * torch.randn(hidden_size, hidden_size))  # W [H, H]
        self.alpha = nn.Parameter(init_scale * torch.randn(hidden_size, hidden_size)) if plastic else None  # alpha [H, H]
        self.eta = nn.Parameter(torch.tensor(float(eta))) if plastic else None
        self.input: nn.Linear | None = None

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def bind(self, input_size: int) -> None:
        if self._bind_once(input_size=input_size):
            self.input = nn.Linear(input_size, self.hidden_size)  # W_in x_t + b

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> PlasticState:
        H = self.hidden_size
        return PlasticState(torch.zeros(batch_size, H, device=device, dtype=dtype),
                            torch.zeros(batch_size, H, H, device=device, dtype=dtype))

    def forward(self, x: Tensor, state: PlasticState) -> tuple[Tensor, PlasticState]:
        """``x [B, I]`` -> ``(y_t [B, H], (y_t, Hebb_t))``."""
        pre = state.y
        recurrent = pre @ self.w  # y_{t-1} W: [B, H]
        if self.plastic:
            plastic = torch.bmm(pre.unsqueeze(1), self.alpha * state.hebb).squeeze(1)  # y_{t-1} (alpha * Hebb): [B, H]
            recurrent = recurrent + plastic
        y = torch.tanh(self.input(x) + recurrent)
        if not self.plastic:
            return y, PlasticState(y, state.hebb)
        return y, PlasticState(y, _RULES[self.rule](state.hebb, pre, y, self.eta, self.clamp))


@register
class ReadoutNet(RecurrentCell):
    """Any controller with a linear readout, ``y_t = Linear(h_t)``: a memory-less sequence model (the plastic
    network of the pattern task, and its non-plastic and LSTM baselines under one system).

    Args:
        controller: computes ``h_t`` from ``x_t`` (any registered controller, e.g. PlasticController).
    """

    def __init__(self, controller: Controller) -> None:
        super().__init__()
        if not isinstance(controller, Controller):
            raise ConfigError(f"ReadoutNet: controller must be a Controller, got {type(controller).__name__}; give a controller class_path.")
        self.controller = controller
        self.output: nn.Linear | None = None

    def bind(self, input_size: int, output_size: int) -> None:
        if self._bind_once(input_size=input_size, output_size=output_size):
            self.controller.bind(input_size)
            self.output = nn.Linear(self.controller.output_size, output_size)

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State:
        return self.controller.initial_state(batch_size, device, dtype)

    def step(self, x: Tensor, state: State, record: bool = False) -> tuple[Tensor, State, dict[str, Tensor]]:
        h, state = self.controller(x, state)
        return self.output(h), state, {}
