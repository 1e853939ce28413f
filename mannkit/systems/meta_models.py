"""Plain networks for few-shot episodes: an MLP (sinusoid regression) and a 4-block conv net (Omniglot).

Shape letters: S examples (support or query of one task), I input width, O outputs (C classes).

Both take flat inputs ``x [S, I]`` (an image is ``I = side * side`` pixels, row-major) and give ``[S, O]``;
:class:`~mannkit.systems.MetaSystem` binds them to the task's sizes. They are plain ``nn.Module``s with a
recorded config (checkpoints rebuild them), not registry ``model``s: the registry's ``model`` kind is the
sequence-model contract (``[B, T, I] -> [B, T, O]``, recurrent) that the conformance kit checks, which a
per-example net does not meet. YAML names them by dotted path (``class_path: mannkit.systems.FewShotMLP``).
A sequence model (``MemoryCell``) is adapted by MetaSystem as it is.

>>> import torch
>>> net = FewShotConvNet(channels=8)
>>> net.bind(input_size=28 * 28, output_size=5)
>>> net(torch.zeros(3, 28 * 28)).shape
torch.Size([3, 5])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mannkit.core.component import Component
from mannkit.core.errors import ConfigError

__all__ = ["FewShotMLP", "FewShotConvNet"]


class FewShotMLP(Component):
    """ReLU MLP ``x [S, I] -> [S, O]``; MAML's sinusoid network is ``hidden_sizes: [40, 40]``.

    Args:
        hidden_sizes: widths of the hidden layers (``[]``: one linear layer).
    """

    def __init__(self, hidden_sizes: list[int] = [40, 40]) -> None:  # noqa: B006 (the YAML default)
        super().__init__()
        for i, width in enumerate(hidden_sizes):
            if isinstance(width, bool) or not isinstance(width, int) or width < 1:
                raise ConfigError(f"FewShotMLP: hidden_sizes[{i}] must be a positive integer, got {width!r}; use e.g. [40, 40].")
        self.hidden_sizes = list(hidden_sizes)
        self.net = nn.Sequential()

    def bind(self, input_size: int, output_size: int) -> None:
        """Create the layers for I inputs and O outputs."""
        if self._bind_once(input_size=input_size, output_size=output_size):
            widths = [input_size, *self.hidden_sizes]
            for a, b in zip(widths[:-1], widths[1:]):
                self.net.append(nn.Linear(a, b))
                self.net.append(nn.ReLU())
            self.net.append(nn.Linear(widths[-1], output_size))

    def forward(self, x: Tensor) -> Tensor:
        """``x [S, I]`` -> ``[S, O]``."""
        return self.net(x)


class FewShotConvNet(Component):
    """The few-shot Omniglot conv net (Vinyals et al. 2016; MAML): ``blocks`` x [3x3 conv, batch norm, ReLU,
    2x2 max-pool], then a linear layer over the flattened features.

    Batch norm uses the statistics of the examples it is given (``track_running_stats=False``), in training
    and evaluation alike, so no running statistics leak from query sets into adaptation.

    Args:
        channels: filters per convolution (64 in MAML).
        blocks: conv blocks; each halves the side (28 -> 14 -> 7 -> 3 -> 1 for 4).
    """

    def __init__(self, channels: int = 64, blocks: int = 4) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("blocks", blocks)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"FewShotConvNet: {name} must be a positive integer, got {value!r}; use e.g. 64 channels and 4 blocks.")
        self.channels, self.blocks = channels, blocks
        self.features = nn.Sequential()
        self.head: nn.Linear | None = None
        self.side = 0

    def bind(self, input_size: int, output_size: int) -> None:
        """Create the layers for square one-channel images of ``input_size`` pixels and O classes."""
        if not self._bind_once(input_size=input_size, output_size=output_size):
            return
        side = math.isqrt(input_size)
        if side * side != input_size:
            raise ConfigError(
                f"FewShotConvNet: input_size {input_size} is not a square image; give flat square images (e.g. 784 = 28 x 28).")
        self.side = side
        last, out_side = 1, side
        for _ in range(self.blocks):
            self.features.extend([nn.Conv2d(last, self.channels, 3, padding=1),
                                  nn.BatchNorm2d(self.channels, track_running_stats=False), nn.ReLU(), nn.MaxPool2d(2)])
            last, out_side = self.channels, out_side // 2
        if out_side < 1:
            raise ConfigError(f"FewShotConvNet: {self.blocks} blocks pool a {side}x{side} image to nothing; use fewer blocks.")
        self.head = nn.Linear(self.channels * out_side * out_side, output_size)

    def forward(self, x: Tensor) -> Tensor:
        """``x [S, I]`` (I = side * side) -> logits ``[S, C]``."""
        images = x.reshape(-1, 1, self.side, self.side)  # [S, side*side] -> [S, 1, side, side]
        return self.head(self.features(images).flatten(1))  # [S, channels, s, s] -> [S, channels*s*s] -> [S, C]
