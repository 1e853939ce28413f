"""Linformer attention (Wang et al. 2020) as an addressing: attend over k projected slots, map back to N.

Shape letters: B batch, h heads of one bank, N memory slots, W word size, k projected slots.

Linformer projects the N keys to k << N rows with a learned ``E [k, N]`` and attends over
those: ``p = softmax(q (E K)^T / sqrt(W))``. Here every row of E is a distribution over the
slots (``E = softmax(L)`` row by row, L learned), so each projected key is a convex mixture of
memory rows and ``w = E^T p`` is a weighting over the N real slots: ``sum_n w_n = sum_j p_j = 1``.
Reading with w is Linformer's value projection with the value matrix shared with the keys
(``F = E``, the paper's key-value sharing): ``w M = p (E M)``.

Masked slots are dropped from every row of E (each row renormalised over the slots in use), and
a row left with no slot in use is dropped from p, so masked slots get exactly zero weight. With
``E = I`` (``projection: identity``, k = N) this is exactly softmax attention over the slots.

>>> import torch
>>> keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # [B=1, N=3, W=2]
>>> E = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])          # k=2 rows: mean of slots 0 and 1, slot 2
>>> linformer_weights(torch.zeros(1, 1, 2), keys, E, None)        # p uniform over k: w = E^T p
tensor([[[0.2500, 0.2500, 0.5000]]])
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.interfaces import Addressing, Memory, slot_mask
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit_attention._checks import check_bound, check_positive_int, memory_slots
from mannkit_attention.dot_product import attention_weights, dot_product_scores

__all__ = ["LinformerAddressing", "linformer_weights", "mask_projection"]


def mask_projection(projection: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Drop masked slots from each row of E and renormalise; say which rows still hold a slot in use.

    Args:
        projection: E, ``[k, N]``, rows non-negative and summing to 1.
        mask: bool ``[B, N]``, True where a slot is in use.

    Returns:
        ``E_b [B, k, N]`` (rows summing to 1, or all zero) and ``valid [B, k]`` (bool).

    >>> E, valid = mask_projection(torch.tensor([[0.5, 0.5], [0.0, 1.0]]), torch.tensor([[True, False]]))
    >>> E, valid
    (tensor([[[1., 0.],
             [0., 0.]]]), tensor([[ True, False]]))
    """
    kept = projection * mask.unsqueeze(1).to(projection.dtype)  # E[j, n] where slot n is in use: [k, N] * [B, 1, N]
    support = kept.sum(-1, keepdim=True)  # mass left in each row: [B, k, 1]
    valid = support.squeeze(-1) > 0  # [B, k]
    return kept / support.clamp_min(torch.finfo(kept.dtype).tiny), valid


def linformer_weights(queries: Tensor, keys: Tensor, projection: Tensor, mask: Tensor | None) -> Tensor:
    """``p = softmax_j(q . (E K)_j / sqrt(W))``, ``w = E^T p``.

    Args:
        queries: q, ``[B, h, W]``.
        keys: K, ``[B, N, W]``.
        projection: E, ``[k, N]``, each row non-negative and summing to 1.
        mask: bool ``[B, N]`` or None; masked slots get exactly zero weight.

    Returns:
        w, ``[B, h, N]``, summing to 1 over N (all zeros for an example with no slot in use).
    """
    W = keys.shape[-1]
    if mask is None:
        projected = torch.matmul(projection, keys)  # E K: [k, N] @ [B, N, W] -> [B, k, W]
        p = torch.softmax(dot_product_scores(queries, projected, 1 / math.sqrt(W)), dim=-1)  # p, [B, h, k]
        return torch.matmul(p, projection)  # w = E^T p per head: [B, h, k] @ [k, N] -> [B, h, N]
    masked, valid = mask_projection(projection, mask)  # E_b [B, k, N], [B, k]
    projected = torch.bmm(masked, keys)  # E_b K: [B, k, N] @ [B, N, W] -> [B, k, W]
    p = attention_weights(dot_product_scores(queries, projected, 1 / math.sqrt(W)), valid)  # p, [B, h, k]
    return torch.bmm(p, masked)  # w = E_b^T p: [B, h, k] @ [B, k, N] -> [B, h, N]


@register
class LinformerAddressing(Addressing):
    """Scaled dot-product attention over k learned mixtures of the N slots, mapped back to a weighting over N.

    P = W: each head's raw parameters are its query. ``bind`` reads N from the memory's
    ``slots`` and creates E; a memory without ``slots`` is refused. A memory state with fewer
    rows than ``slots`` (a MemN2N story shorter than the memory) is attended as if the missing
    rows were masked slots. Scores cost O(h k W) after
    the O(k N W) projection of the keys (O(h N W) for plain softmax attention); the weighting
    over N costs O(h k N). The saving is Linformer's when many queries share one projected
    memory (k << N); one query per step saves nothing.

    Args:
        projected: k, the number of projected slots (rows of E); a k of N or more is allowed
            but saves nothing.
        projection: ``learned``: ``E = softmax(L)`` row by row, L a learned ``[k, N]`` matrix
            drawn from a standard normal (from torch's global generator); ``identity``: E = I,
            fixed, which needs k = N and is exactly softmax attention (a reference to compare with).
    """

    def __init__(self, projected: int = 32, projection: Literal["learned", "identity"] = "learned") -> None:
        super().__init__()
        check_positive_int("LinformerAddressing", "projected", projected)
        if projection not in ("learned", "identity"):
            raise ConfigError(
                f"LinformerAddressing: projection must be learned or identity, got {projection!r}; pick one of those."
            )
        self.projected, self.projection = projected, projection
        self.num_slots: int | None = None  # N, set by bind

    def bind(self, memory: Memory) -> None:
        N = memory_slots("LinformerAddressing", memory, "to project its N slots to projected rows")
        if self.projection == "identity" and self.projected != N:
            raise ConfigError(
                f"LinformerAddressing: projection identity needs projected equal to the memory's N={N}, got "
                f"projected={self.projected}; set projected to {N} or use projection learned."
            )
        if not self._bind_once(slots=N):
            return
        self.num_slots = N
        if self.projection == "learned":
            self.logits = nn.Parameter(torch.randn(self.projected, N))  # L, E = softmax(L) row by row: [k, N]
        else:
            self.register_buffer("identity", torch.eye(N))  # E = I: [N, N]

    def projection_matrix(self) -> Tensor:
        """E, ``[k, N]``: each row a distribution over the slots."""
        check_bound("LinformerAddressing", self)
        if self.projection == "identity":
            return self.identity
        return torch.softmax(self.logits, dim=-1)  # E = softmax(L) over N, row by row

    def param_size(self, memory: Memory) -> int:
        return memory.word_size

    def forward(self, params: Tensor, memory_state, state):  # noqa: ANN001
        """``params [B, h, W]`` (the queries), keys ``[B, N, W]`` -> ``(weights [B, h, N], state)``."""
        check_bound("LinformerAddressing", self)
        keys = memory_state.memory  # K, [B, N, W]
        B, N, W = keys.shape
        if N > self.num_slots:
            raise ShapeError(
                f"LinformerAddressing was built for N={self.num_slots} slots but the memory has N={N}; "
                "bind a fresh addressing to a memory of this size."
            )
        check_shape(params, (B, "h", W), "LinformerAddressing params", "each head's query is W numbers")
        projection, mask = self.projection_matrix(), slot_mask(memory_state)
        if N < self.num_slots:  # a shorter story (MemN2N): the slots past N count as masked
            projection = projection[:, :N]  # [k, slots] -> [k, N], renormalised through the mask
            mask = torch.ones(B, N, dtype=torch.bool, device=keys.device) if mask is None else mask
        return linformer_weights(params, keys, projection, mask), state
