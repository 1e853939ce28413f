"""The sparse DNC's mechanisms (SAM and SDNC, Rae et al. 2016) as pure functions over K selected slots.

Shape letters: B batch, N memory slots, W word size, h heads, K sparse neighbours.
:class:`mannkit_dnc.sparse.SparseDNCMemory` composes them; each is checked on its own in the tests.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mannkit.nn.addressing import EPS, cosine_similarity
from mannkit_dnc.sparse_ops import top_k_union

__all__ = ["top_k_search", "sparse_content_weights", "least_used", "sparse_write_weights", "erase_add_rows", "mix_read_weights"]

@torch.no_grad()
def top_k_search(memory: Tensor, norms: Tensor, keys: Tensor, k: int, exclude: Tensor | None = None) -> Tensor:
    """The K rows of highest cosine similarity to each key (SAM's exact nearest-neighbour search).

    One ``bmm`` pass over the memory; the key's own norm does not change the ranking.

    Args:
        memory: M, ``[B, N, W]``.
        norms: ``|M[n]|`` (any positive stand-in at zero rows), ``[B, N]``.
        keys: k, ``[B, h, W]``.
        k: K.
        exclude: int64 ``[B, E]``, slots never to choose (fewer than N - K + 1), or None.

    Returns:
        int64 ``[B, h, K]``, distinct slots per head, in no particular order.

    >>> m = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]])
    >>> top_k_search(m, m.norm(dim=-1), torch.tensor([[[0.0, 1.0]]]), 1)
    tensor([[[1]]])
    """
    scores = torch.bmm(keys, memory.mT)  # k . M[n]: [B, h, W] @ [B, W, N] -> [B, h, N]
    scores.div_(norms.clamp_min(EPS).unsqueeze(1))  # / |M[n]|, [B, 1, N]
    if exclude is not None:
        scores.scatter_(2, exclude.unsqueeze(1).expand(-1, scores.shape[1], -1), float("-inf"))
    return scores.topk(k, dim=-1, sorted=False).indices


def sparse_content_weights(keys: Tensor, rows: Tensor, strengths: Tensor) -> Tensor:
    """``c_k = softmax_k(beta cos(key, M[i_k]))`` over each head's K gathered rows (DNC's C(M, k, beta)).

    Args:
        keys: k, ``[B, h, W]``.
        rows: the rows ``M[i_k]``, ``[B, h, K, W]``.
        strengths: beta >= 1, ``[B, h]``.

    Returns:
        ``[B, h, K]``, each head's weights summing to 1.
    """
    B, h, K, W = rows.shape
    sims = cosine_similarity(keys.reshape(B * h, 1, W), rows.reshape(B * h, K, W))  # [B h, 1, W] x [B h, K, W] -> [B h, 1, K]
    return torch.softmax(strengths.unsqueeze(-1) * sims.view(B, h, K), dim=-1)  # [B h, 1, K] -> [B, h, K]


@torch.no_grad()
def least_used(usage: Tensor) -> Tensor:
    """The least-used slot (SAM's least-recently-used allocation; ties: the lowest slot).

    Args:
        usage: u, ``[B, N]``.

    Returns:
        int64 ``[B, 1]``.

    >>> least_used(torch.tensor([[0.5, 0.0, 0.25, 0.0]]))
    tensor([[1]])
    """
    return usage.argmin(1, keepdim=True)


def sparse_write_weights(content: Tensor, allocation_gate: Tensor, write_gate: Tensor) -> Tensor:
    """``w = g_w [(1 - g_a) c, g_a]`` over the content top-K then the allocated slot (DNC write weighting).

    Args:
        content: c, ``[B, K]``.
        allocation_gate: g_a in [0, 1], ``[B, 1]``.
        write_gate: g_w in [0, 1], ``[B, 1]``.

    Returns:
        ``[B, K + 1]``, summing to ``g_w`` at most.

    >>> sparse_write_weights(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.5]]), torch.tensor([[1.0]]))
    tensor([[0.2500, 0.2500, 0.5000]])
    """
    return write_gate * torch.cat([(1 - allocation_gate) * content, allocation_gate], dim=-1)  # w^w


def erase_add_rows(rows: Tensor, weights: Tensor, erase: Tensor, vector: Tensor) -> Tensor:
    """``M[i] (1 - w_i e) + w_i v`` at the written rows only (DNC's erase then add).

    Args:
        rows: ``M[i_s]``, ``[B, S, W]``.
        weights: w, ``[B, S]``.
        erase: e in [0, 1], ``[B, 1, W]``.
        vector: v, ``[B, 1, W]``.

    Returns:
        The new rows, ``[B, S, W]``.
    """
    w = weights.unsqueeze(-1)  # [B, S, 1]
    return rows * (1 - w * erase) + w * vector


def mix_read_weights(
    backward: tuple[Tensor, Tensor], content: tuple[Tensor, Tensor], forward: tuple[Tensor, Tensor], modes: Tensor, k: int,
) -> tuple[Tensor, Tensor]:
    """``w^r = pi_b b + pi_c c + pi_f f`` over the union of the three supports, cut to its K largest slots.

    Args:
        backward, content, forward: ``(index [B, R, U_x], values [B, R, U_x])`` each.
        modes: pi = (backward, content, forward), ``[B, R, 3]``, each row summing to 1.
        k: K.

    Returns:
        ``index [B, R, K]`` and ``weights [B, R, K]`` (non-negative, summing to at most 1).
    """
    index = torch.cat([backward[0], content[0], forward[0]], dim=-1)  # [B, R, U]
    values = torch.cat([modes[..., 0:1] * backward[1], modes[..., 1:2] * content[1], modes[..., 2:3] * forward[1]], -1)
    index, weights = top_k_union(index, values, k)
    return index, weights / weights.sum(-1, keepdim=True).clamp_min(1.0)  # sparse links may drift above 1
