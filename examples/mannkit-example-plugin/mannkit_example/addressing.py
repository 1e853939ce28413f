"""Scaled dot-product addressing: attention of each head's key over the memory rows.

Shape letters: B batch, h heads of one bank, N memory slots, W word size, P parameters per head.

>>> import torch
>>> memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])  # [B=1, N=3, W=2]
>>> weights = scaled_dot_weights(torch.tensor([[[0.0, 9.0]]]), torch.tensor([[1.0]]), memory)
>>> weights.argmax(-1).item()  # the key points at row 1
1
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mannkit import Addressing, ConfigError, Memory, register

__all__ = ["ScaledDotAddressing", "scaled_dot_weights"]


def scaled_dot_weights(keys: Tensor, strengths: Tensor, memory: Tensor) -> Tensor:
    """``w[n] = softmax_n(beta * (k . M[n]) / sqrt(W))``.

    Args:
        keys: k, ``[B, h, W]``.
        strengths: beta >= 0, ``[B, h]``.
        memory: M, ``[B, N, W]``.

    Returns:
        ``[B, h, N]``, each row summing to 1 (uniform on an all-zero memory).
    """
    W = memory.shape[-1]
    scores = torch.bmm(keys, memory.transpose(1, 2)) / math.sqrt(W)  # k . M[n]: [B, h, W] @ [B, W, N] -> [B, h, N]
    return torch.softmax(strengths.unsqueeze(-1) * scores, dim=-1)  # beta [B, h] -> [B, h, 1]


@register
class ScaledDotAddressing(Addressing):
    """Dot-product attention over memory rows, with a learned sharpness.

    Each head's raw parameters are ``P = W + 1``: the key k (W numbers) and a raw strength,
    ``beta = softplus(raw) * s``, where ``s = exp(log_scale)`` is one scale shared by the heads
    of a bank (learned unless ``learn_scale`` is false). Unlike cosine content addressing, a
    row's norm counts: the weights favour large rows that point the key's way.

    Shapes: params ``[B, h, W + 1]`` and memory ``M [B, N, W]`` -> weights ``[B, h, N]``;
    no state between steps.

    Args:
        scale: the initial s (> 0); larger gives sharper weights from the start.
        learn_scale: learn s (a parameter) or keep it fixed (a buffer).
    """

    def __init__(self, scale: float = 1.0, learn_scale: bool = True) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ConfigError(f"ScaledDotAddressing: scale must be a positive number, got {scale!r}; use e.g. 1.0.")
        log_scale = torch.tensor(math.log(scale))
        if learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def param_size(self, memory: Memory) -> int:
        return memory.word_size + 1

    def forward(self, params: Tensor, memory_state, state):  # noqa: ANN001
        """``params [B, h, W + 1]`` -> ``(weights [B, h, N], state)``."""
        keys, raw_strength = params[..., :-1], params[..., -1]  # [B, h, W], [B, h]
        strengths = F.softplus(raw_strength) * self.log_scale.exp()  # beta * s, [B, h]
        return scaled_dot_weights(keys, strengths, memory_state.memory), state
