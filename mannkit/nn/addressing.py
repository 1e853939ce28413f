"""Content addressing: cosine similarity with a key strength (NTM eq. 5-6, DNC's C(M, k, beta))."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mannkit.core.interfaces import Addressing, Memory
from mannkit.core.registry import register

__all__ = ["ContentAddressing", "cosine_similarity", "content_weights", "EPS"]

#: Added under square roots and to denominators so all-zero memories and keys give no NaN.
EPS = 1e-6


def cosine_similarity(keys: Tensor, memory: Tensor, eps: float = EPS) -> Tensor:
    """``K(k, M[n]) = k . M[n] / (|k| |M[n]|)``, safe at zero.

    Args:
        keys: ``[B, h, W]``.
        memory: ``[B, N, W]``.

    Returns:
        ``[B, h, N]`` in [-1, 1] (0 where a key or a row is all zero).
    """
    dots = torch.bmm(keys, memory.transpose(1, 2))  # [B, h, W] @ [B, W, N] -> [B, h, N]
    key_norm = torch.sqrt((keys * keys).sum(-1) + eps)  # [B, h]
    mem_norm = torch.sqrt((memory * memory).sum(-1) + eps)  # [B, N]
    return dots / (key_norm.unsqueeze(-1) * mem_norm.unsqueeze(-2))


def content_weights(keys: Tensor, strengths: Tensor, memory: Tensor) -> Tensor:
    """``w_c[n] = softmax_n(beta * K(k, M[n]))`` (NTM eq. 5).

    Args:
        keys: k, ``[B, h, W]``.
        strengths: beta >= 0, ``[B, h]``.
        memory: M, ``[B, N, W]``.

    Returns:
        ``[B, h, N]``, each row summing to 1.
    """
    return torch.softmax(strengths.unsqueeze(-1) * cosine_similarity(keys, memory), dim=-1)


@register
class ContentAddressing(Addressing):
    """Cosine content addressing: P = W + 1 (a key and a raw strength, beta = softplus(raw))."""

    def __init__(self) -> None:
        super().__init__()

    def param_size(self, memory: Memory) -> int:
        return memory.word_size + 1

    def forward(self, params: Tensor, memory_state, state):  # noqa: ANN001
        """``params [B, h, W + 1]`` -> ``(weights [B, h, N], state)``."""
        keys, raw_strength = params[..., :-1], params[..., -1]
        return content_weights(keys, F.softplus(raw_strength), memory_state.memory), state
