"""The Relational Memory Core on its own as a recurrent sequence model: its memory is its whole state.

Shape letters: B batch, T time, I input width, O output width, N slots, W word size, H = N * W.

``y_t = f(h_t)`` with ``h_t`` the core's flattened memory and ``f`` an MLP (ReLU between its layers,
the last linear to O), as in Santoro et al. 2018's N-th farthest model (a 4 x 256 MLP on the memory).

>>> import torch
>>> model = RelationalMemoryModel(RelationalMemoryCore(slots=2, word_size=4, num_heads=2), output_layers=[6])
>>> model.bind(input_size=3, output_size=5)
>>> model(torch.zeros(2, 7, 3)).logits.shape
torch.Size([2, 7, 5])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import RecurrentCell, SequenceOutput
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit_relational.rmc import RelationalMemoryCore

__all__ = ["RelationalMemoryModel"]


@register
class RelationalMemoryModel(RecurrentCell):
    """A Relational Memory Core and an output MLP: ``x_t -> M_t -> h_t = flat(M_t) -> y_t [B, O]``.

    Args:
        core: the core (null: ``RelationalMemoryCore()`` with its defaults).
        output_layers: hidden widths of the output MLP before the last linear layer to O
            (the paper's N-th farthest: ``[256, 256, 256, 256]``); ``[]`` for one linear layer.
    """

    def __init__(self, core: RelationalMemoryCore | None = None, output_layers: list[int] = []) -> None:  # noqa: B006
        super().__init__()
        core = RelationalMemoryCore() if core is None else core
        if not isinstance(core, RelationalMemoryCore):
            raise ConfigError(
                f"RelationalMemoryModel: core is a {type(core).__name__}, not a RelationalMemoryCore; "
                "give core: {class_path: RelationalMemoryCore}, or use MemoryCell for other controllers."
            )
        for width in output_layers:
            if isinstance(width, bool) or not isinstance(width, int) or width < 1:
                raise ConfigError(
                    f"RelationalMemoryModel: output_layers must hold positive integers, got {list(output_layers)!r}; "
                    "e.g. [256, 256], or [] for one linear layer."
                )
        self.core, self.output_layers = core, list(output_layers)
        self.head = nn.Sequential()

    def bind(self, input_size: int, output_size: int) -> None:
        """Bind the core to I inputs and create the output MLP ``[N*W] -> ... -> [O]``."""
        if not self._bind_once(input_size=input_size, output_size=output_size):
            return
        self.core.bind(input_size)
        self.input_size = input_size
        width = self.core.output_size
        for hidden in self.output_layers:
            self.head.append(nn.Linear(width, hidden))
            self.head.append(nn.ReLU())
            width = hidden
        self.head.append(nn.Linear(width, output_size))

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The core's memory ``[B, N, W]``."""
        return self.core.initial_state(batch_size, device, dtype)

    def step(self, x: Tensor, state: Tensor, record: bool = False) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``x [B, I]`` -> ``(y [B, O], M [B, N, W], trace)``; the trace holds the memory (drawn as a matrix)."""
        h, state = self.core(x, state)  # [B, N*W], [B, N, W]
        return self.head(h), state, ({"memory": state} if record else {})

    def forward(self, x: Tensor, record: bool = False) -> SequenceOutput:
        """``x [B, T, I]`` -> logits ``[B, T, O]``."""
        if not self.is_bound:
            raise ConfigError("RelationalMemoryModel is not built yet; call bind(input_size, output_size) or let a system build it.")
        check_shape(x, ("B", "T", self.input_size), "RelationalMemoryModel input", "the task's input width must match the model's")
        return super().forward(x, record)
