"""Multi-head scaled dot-product attention, the maths shared by attention addressings and relational memory.

Shape letters: B batch, q queries (heads of a bank, or memory rows), N keys (memory slots),
A attention heads, D query/key width of one attention head, V value width of one attention head.

Vaswani et al. 2017, eq. 1, per attention head a: ``softmax_n(q_a . k_{a,n} / sqrt(D)) v_{a,n}``.
The attention plugin's multi-head addressing mixes the A weightings into one (its
``multi_head_weights``); the relational memory core (Santoro et al. 2018) reads the values with
them and concatenates the A outputs. Both call :func:`per_head_weights`.

>>> import torch
>>> keys = torch.eye(2).view(1, 2, 1, 2)                  # [B=1, N=2, A=1, D=2]
>>> queries = torch.tensor([[[[9.0, 0.0]]]])               # [B=1, q=1, A=1, D=2]
>>> per_head_weights(queries, keys, None).round(decimals=3)
tensor([[[[0.9980, 0.0020]]]])
>>> values = torch.tensor([[[[1.0]], [[-1.0]]]])           # [B=1, N=2, A=1, V=1]
>>> attend(queries, keys, values, None).round(decimals=3)
tensor([[[[0.9970]]]])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mannkit.nn.addressing import attention_weights

__all__ = ["per_head_weights", "attend"]


def per_head_weights(queries: Tensor, keys: Tensor, mask: Tensor | None) -> Tensor:
    """``w_a[n] = softmax_n(q_a . k_{a,n} / sqrt(D))`` for every query and attention head.

    Args:
        queries: q, ``[B, q, A, D]``.
        keys: k, ``[B, N, A, D]``.
        mask: bool ``[B, N]`` or None; masked slots get exactly zero weight in every attention head.

    Returns:
        ``[B, q, A, N]``, each row summing to 1 over N (a row with no slot in use is all zeros).
    """
    B, q, A, D = queries.shape
    N = keys.shape[1]
    scores = torch.einsum("bqad,bnad->bqan", queries, keys) / math.sqrt(D)  # q_a . k_{a,n} / sqrt(D): [B, q, A, N]
    weights = attention_weights(scores.reshape(B, q * A, N), mask)  # [B, q, A, N] -> [B, q*A, N]: the mask is [B, 1, N]
    return weights.view(B, q, A, N)  # [B, q*A, N] -> [B, q, A, N]


def attend(queries: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None) -> Tensor:
    """``o_a = sum_n w_a[n] v_{a,n}`` with ``w_a`` from :func:`per_head_weights`.

    Args:
        queries: q, ``[B, q, A, D]``.
        keys: k, ``[B, N, A, D]``.
        values: v, ``[B, N, A, V]``.
        mask: bool ``[B, N]`` or None.

    Returns:
        ``[B, q, A, V]``, one output per query and attention head (concatenate the A axis to get
        transformer multi-head attention before its output projection).
    """
    weights = per_head_weights(queries, keys, mask)  # [B, q, A, N]
    return torch.einsum("bqan,bnav->bqav", weights, values)  # sum_n w_a[n] v_{a,n}: [B, q, A, V]
