"""A controller alone as a sequence model: the LSTM (GRU, ...) baseline of the stack experiments.

Shape letters: B batch, T time, I input width, H controller output, O outputs.

``y_t = Linear(h_t)`` with ``h_t`` from any registered controller; no memory. Grefenstette et al.
2015 compare their stack, queue and deque with deep LSTMs trained the same way; a preset names
``ControllerOnly`` as its ``core`` to train one under the same system and task.

>>> import torch
>>> from mannkit.nn import LSTMController
>>> model = ControllerOnly(LSTMController(16, layers=2))
>>> model.bind(input_size=3, output_size=5)
>>> model(torch.zeros(4, 7, 3)).logits.shape
torch.Size([4, 7, 5])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Controller, RecurrentCell, State
from mannkit.core.registry import register

__all__ = ["ControllerOnly"]


@register
class ControllerOnly(RecurrentCell):
    """Any controller with a linear output layer and no memory: ``x_t -> h_t [B, H] -> y_t [B, O]``.

    Args:
        controller: the recurrent network (e.g. ``LSTMController`` with ``layers: 2``); its input size is derived.
    """

    def __init__(self, controller: Controller) -> None:
        super().__init__()
        if not isinstance(controller, Controller):
            raise ConfigError(
                f"ControllerOnly: controller is a {type(controller).__name__}, not a Controller; "
                "give a controller class_path such as LSTMController."
            )
        self.controller = controller
        self.output: nn.Linear | None = None

    def bind(self, input_size: int, output_size: int) -> None:
        """Create the controller's layers for I inputs and the output layer for O outputs."""
        if not self._bind_once(input_size=input_size, output_size=output_size):
            return
        self.controller.bind(input_size)
        self.output = nn.Linear(self.controller.output_size, output_size)

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State:
        if self.output is None:
            raise ConfigError("ControllerOnly is not built yet; call bind(input_size, output_size) or let a system build it.")
        return self.controller.initial_state(batch_size, device, dtype)

    def step(self, x: Tensor, state: State, record: bool = False) -> tuple[Tensor, State, dict[str, Tensor]]:
        """``x [B, I]`` -> ``(y [B, O], state, {})``."""
        h, state = self.controller(x, state)
        return self.output(h), state, {}
