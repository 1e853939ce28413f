"""A controller alone as a recurrent cell: the plain LSTM / GRU / RNN network of the ACT experiments.

Shape letters: B batch, T time, I input width, O output width, H controller output size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Controller, RecurrentCell, SequenceOutput, State
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape

__all__ = ["ControllerCell"]


@register
class ControllerCell(RecurrentCell):
    """Any controller as a recurrent cell without memory: ``h_t, c_t = controller(x_t, c_{t-1})``, ``y_t = W h_t + b``.

    With an ``RNNController`` this is the simple RNN of the ACT paper's parity and logic tasks;
    with an ``LSTMController`` the LSTM of its addition task. The state is the controller's.

    Args:
        controller: the controller (its input size is derived).

    >>> from mannkit.nn import RNNController
    >>> cell = ControllerCell(RNNController(8))
    >>> cell.bind(input_size=3, output_size=2)
    >>> cell(torch.zeros(4, 5, 3)).logits.shape
    torch.Size([4, 5, 2])
    """

    def __init__(self, controller: Controller) -> None:
        super().__init__()
        if not isinstance(controller, Controller):
            raise ConfigError(
                f"ControllerCell: controller is a {type(controller).__name__}, not a Controller; "
                "give a controller class_path such as RNNController."
            )
        self.controller = controller
        self.output: nn.Linear | None = None

    def bind(self, input_size: int, output_size: int) -> None:
        """Bind the controller to I inputs and create the output layer ``H -> O``."""
        if not self._bind_once(input_size=input_size, output_size=output_size):
            return
        if input_size < 1 or output_size < 1:
            raise ConfigError(
                f"ControllerCell: input_size ({input_size}) and output_size ({output_size}) must be positive; "
                "they come from the task, so check the data settings."
            )
        self.input_size, self.output_size = input_size, output_size
        self.controller.bind(input_size)
        self.output = nn.Linear(self.controller.output_size, output_size)

    def _require_bound(self) -> None:
        if self.output is None:
            raise ConfigError("ControllerCell is not built yet; call cell.bind(input_size, output_size) or let a system build it.")

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State:
        self._require_bound()
        return self.controller.initial_state(batch_size, device, dtype)

    def step(self, x: Tensor, state: State, record: bool = False) -> tuple[Tensor, State, dict[str, Tensor]]:
        """``x [B, I]`` -> ``(y [B, O], state, {})``."""
        h, state = self.controller(x, state)  # h_t [B, H]
        return self.output(h), state, {}

    def forward(self, x: Tensor, record: bool = False) -> SequenceOutput:
        """``x [B, T, I]`` -> logits ``[B, T, O]``."""
        self._require_bound()
        check_shape(x, ("B", "T", self.input_size), "ControllerCell input", "the task's input width must match the model's")
        return super().forward(x, record)
