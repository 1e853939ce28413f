"""Scaled dot-product attention as an addressing (Vaswani et al. 2017, eq. 1; MemN2N's plain dot product).

Shape letters: B batch, h heads of one bank, N memory slots, W word size.

The head's parameters are the query itself (P = W), so a MemN2N hop can pass its state u
as ``params [B, 1, W]``; the keys are the memory rows (or MemN2N's input-memory embeddings).

>>> import torch
>>> from mannkit.nn import MatrixState
>>> keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # [B=1, N=2, W=2]
>>> query = torch.tensor([[[2.0, 0.0]]])             # [B=1, h=1, W=2]
>>> ScaledDotProductAddressing(scale=False)(query, MatrixState(keys), ())[0]  # softmax([2, 0])
tensor([[[0.8808, 0.1192]]])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mannkit.core.interfaces import Addressing, Memory, slot_mask
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.nn.addressing import masked_softmax
from mannkit_attention._checks import check_bool

__all__ = ["ScaledDotProductAddressing", "dot_product_scores", "attention_weights"]


def dot_product_scores(queries: Tensor, keys: Tensor, scale: float = 1.0) -> Tensor:
    """``s[n] = scale * q . k_n``.

    Args:
        queries: q, ``[B, h, W]``.
        keys: K, ``[B, N, W]``.
        scale: multiplies every score (``1 / sqrt(W)`` for scaled dot-product attention).

    Returns:
        ``[B, h, N]``.

    >>> dot_product_scores(torch.ones(1, 1, 4), torch.ones(1, 3, 4), scale=0.5)
    tensor([[[2., 2., 2.]]])
    """
    return torch.bmm(queries, keys.mT) * scale  # q K^T: [B, h, W] @ [B, W, N] -> [B, h, N]


def attention_weights(scores: Tensor, mask: Tensor | None) -> Tensor:
    """``softmax_n(s)``, with exactly zero weight where ``mask`` (bool ``[B, N]``) is False.

    Args:
        scores: ``[B, h, N]``.
        mask: bool ``[B, N]`` or None (every slot in use).

    Returns:
        ``[B, h, N]``, each row summing to 1 (a row with no slot in use is all zeros).
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    return masked_softmax(scores, mask)


@register
class ScaledDotProductAddressing(Addressing):
    """Softmax attention over the memory rows: ``w = softmax_n(q . M[n] / sqrt(W))``.

    P = W: each head's raw parameters are its query q, used as is (no activation). Unlike
    :class:`~mannkit.nn.ContentAddressing` (cosine similarity and a key strength) the score
    grows with the norms of the query and the rows, so the head sets its own sharpness
    through the size of q. No parameters, no state. :meth:`scores` gives the raw scores, so a
    MemN2N hop in linear-start mode can use this addressing too.

    Args:
        scale: divide the scores by sqrt(W) (Vaswani et al. 2017); false gives the plain dot
            product ``softmax_n(q . M[n])`` that MemN2N uses.
    """

    def __init__(self, scale: bool = True) -> None:
        super().__init__()
        check_bool("ScaledDotProductAddressing", "scale", scale)
        self.scale = scale

    def param_size(self, memory: Memory) -> int:
        return memory.word_size

    def scores(self, params: Tensor, memory_state) -> Tensor:  # noqa: ANN001
        """The raw scores ``q . M[n] (/ sqrt(W))``, ``[B, h, N]``, before the softmax (MemN2N's linear start uses them)."""
        keys = memory_state.memory  # K, [B, N, W]
        B, _, W = keys.shape
        check_shape(params, (B, "h", W), "ScaledDotProductAddressing params", "each head's query is W numbers")
        return dot_product_scores(params, keys, 1 / math.sqrt(W) if self.scale else 1.0)  # [B, h, N]

    def forward(self, params: Tensor, memory_state, state):  # noqa: ANN001
        """``params [B, h, W]`` (the queries), keys ``memory_state.memory [B, N, W]`` -> ``(weights [B, h, N], state)``."""
        return attention_weights(self.scores(params, memory_state), slot_mask(memory_state)), state
