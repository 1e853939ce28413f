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

from mannkit.core.registry import register
from mannkit.nn.addressing import DotProductAddressing, attention_weights, dot_product_scores
from mannkit_attention._checks import check_bool

__all__ = ["ScaledDotProductAddressing", "dot_product_scores", "attention_weights"]


@register
class ScaledDotProductAddressing(DotProductAddressing):
    """Softmax attention over the memory rows: ``w = softmax_n(q . M[n] / sqrt(W))``.

    The core :class:`~mannkit.nn.DotProductAddressing` with the transformer's scaling on by
    default (its scores, masking and ``scores()`` are the core's). P = W: each head's raw
    parameters are its query q, used as is. No parameters, no state.

    Args:
        scale: divide the scores by sqrt(W) (Vaswani et al. 2017); false gives the plain dot
            product ``softmax_n(q . M[n])`` that MemN2N uses.
    """

    def __init__(self, scale: bool = True) -> None:
        check_bool("ScaledDotProductAddressing", "scale", scale)
        super().__init__(scale)
