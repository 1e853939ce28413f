"""Content and dot-product addressing: cosine similarity with a key strength (NTM eq. 5-6, DNC's C(M, k, beta)), and softmax attention (MemN2N eq. 1)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Addressing, Memory, slot_mask
from mannkit.core.shapes import check_shape
from mannkit.core.registry import register
from mannkit.nn.memory import outer_sum

__all__ = [
    "ContentAddressing",
    "cosine_similarity",
    "cosine_similarity_parts",
    "cosine_similarity_vjp",
    "content_weights",
    "masked_softmax",
    "DotProductAddressing",
    "dot_product_scores",
    "attention_weights",
    "EPS",
]

#: Added under square roots and to denominators so all-zero memories and keys give no NaN.
EPS = 1e-6


def cosine_similarity_parts(keys: Tensor, memory: Tensor, eps: float = EPS) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The cosine similarity and the pieces :func:`cosine_similarity_vjp` needs.

    Args:
        keys: k, ``[B, h, W]``.
        memory: M, ``[B, N, W]``.

    Returns:
        ``K [B, h, N]``; ``|k|^2 + eps [B, h, 1]``; ``|M[n]|^2 + eps [B, 1, N]``; and
        ``1 / (|k| |M[n]|) [B, h, N]`` (each norm with ``eps`` under its root).
    """
    dots = torch.bmm(keys, memory.mT)  # k . M[n]: [B, h, W] @ [B, W, N] -> [B, h, N]
    key_sq = (keys * keys).sum(-1, keepdim=True) + eps  # |k|^2 + eps, [B, h, 1]
    mem_sq = torch.linalg.vecdot(memory, memory).unsqueeze(1) + eps  # |M[n]|^2 + eps, [B, N] -> [B, 1, N]
    scale = torch.rsqrt(key_sq) * torch.rsqrt(mem_sq)  # 1 / (|k| |M[n]|), [B, h, N]
    return dots * scale, key_sq, mem_sq, scale


def cosine_similarity_vjp(
    grad: Tensor, keys: Tensor, memory: Tensor, sims: Tensor, key_sq: Tensor, mem_sq: Tensor, scale: Tensor,
    need_keys: bool = True, need_memory: bool = True,
) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of :func:`cosine_similarity` for ``grad = dL/dK [B, h, N]``, given its parts.

    With ``K = k . M[n] / (|k| |M[n]|)`` and ``G = grad / (|k| |M[n]|)``:
    ``dk = G M - k sum_n(grad K) / |k|^2`` and ``dM = G^T k - M sum_h(grad K) / |M[n]|^2``.

    Returns:
        ``dk [B, h, W]`` and ``dM [B, N, W]`` (None where not needed).
    """
    scaled = grad * scale  # G = d(dots), [B, h, N]
    weighted = grad * sims  # grad K, [B, h, N]
    d_keys = d_memory = None
    if need_keys:  # G M - k c with c = sum_n(grad K) / |k|^2
        d_keys = torch.baddbmm(keys * (weighted.sum(-1, keepdim=True) / key_sq), scaled, memory, beta=-1)
    if need_memory:  # G^T k - M c with c = sum_h(grad K) / |M[n]|^2, [B, N, 1]
        mem_coef = (weighted / mem_sq).mT if weighted.shape[1] == 1 else (weighted / mem_sq).sum(1).unsqueeze(-1)
        d_memory = torch.addcmul(outer_sum(scaled, keys), memory, mem_coef, value=-1)
    return d_keys, d_memory


class _CosineSimilarity(torch.autograd.Function):
    """:func:`cosine_similarity` with a hand-written backward (no k=1 ``bmm``, few ``[B, N, W]`` passes)."""

    @staticmethod
    def forward(ctx, keys: Tensor, memory: Tensor, eps: float) -> Tensor:  # noqa: ANN001
        sims, key_sq, mem_sq, scale = cosine_similarity_parts(keys, memory, eps)
        ctx.eps = eps
        ctx.save_for_backward(keys, memory, sims, key_sq, mem_sq, scale)
        return sims

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN205, ANN001
        need_keys, need_memory, eps = *ctx.needs_input_grad[:2], ctx.eps
        keys, memory, *parts = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward: rebuild the parts as functions of the inputs
            parts = cosine_similarity_parts(keys, memory, eps)
        d_keys, d_memory = cosine_similarity_vjp(grad, keys, memory, *parts, need_keys=need_keys, need_memory=need_memory)
        return d_keys, d_memory, None


def cosine_similarity(keys: Tensor, memory: Tensor, eps: float = EPS) -> Tensor:
    """``K(k, M[n]) = k . M[n] / (|k| |M[n]|)``, safe at zero.

    Args:
        keys: ``[B, h, W]``.
        memory: ``[B, N, W]``.

    Returns:
        ``[B, h, N]`` in [-1, 1] (0 where a key or a row is all zero).
    """
    return _CosineSimilarity.apply(keys, memory, eps)


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis that gives exactly zero weight where ``mask`` is False.

    Args:
        scores: ``[B, h, N]``.
        mask: bool ``[B, N]``, True where a slot is in use (a row with no slot in use gets all zeros).

    Returns:
        ``[B, h, N]``.

    >>> masked_softmax(torch.zeros(1, 1, 3), torch.tensor([[True, True, False]]))
    tensor([[[0.5000, 0.5000, 0.0000]]])
    """
    keep = mask.unsqueeze(1)  # [B, 1, N]
    scores = scores.masked_fill(~keep, float("-inf"))
    peak = scores.amax(-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).min)  # finite even for an empty row
    e = torch.exp(scores - peak)  # 0 at masked slots
    return e / e.sum(-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)


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
        mask = slot_mask(memory_state)
        if mask is None:
            return content_weights(keys, F.softplus(raw_strength), memory_state.memory), state
        scores = F.softplus(raw_strength).unsqueeze(-1) * cosine_similarity(keys, memory_state.memory)  # [B, h, N]
        return masked_softmax(scores, mask), state


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
    scores = torch.bmm(queries, keys.mT)  # q K^T: [B, h, W] @ [B, W, N] -> [B, h, N]
    return scores if scale == 1.0 else scores * scale


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
class DotProductAddressing(Addressing):
    """Dot-product attention over the memory rows: ``w = softmax_n(q . M[n])`` (MemN2N eq. 1).

    P = W: each head's raw parameters are its query q, used as is. Unlike
    :class:`ContentAddressing` (cosine similarity and a key strength) the score grows with the
    norms of the query and the rows, so the head sets its own sharpness through the size of q.
    No parameters, no state; slots outside the state's ``mask`` get exactly zero weight.
    :meth:`scores` gives the raw scores (MemN2N's linear start uses them). The attention plugin's
    ``ScaledDotProductAddressing`` is this with ``scale: true``.

    Args:
        scale: divide the scores by sqrt(W) (Vaswani et al. 2017); false (default) is the plain
            dot product that MemN2N uses.

    >>> from mannkit.nn import MatrixState
    >>> keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # [B=1, N=2, W=2]
    >>> DotProductAddressing()(torch.tensor([[[2.0, 0.0]]]), MatrixState(keys), ())[0]  # softmax([2, 0])
    tensor([[[0.8808, 0.1192]]])
    """

    def __init__(self, scale: bool = False) -> None:
        super().__init__()
        if not isinstance(scale, bool):
            raise ConfigError(f"{type(self).__name__}: scale must be true or false, got {scale!r}; set scale: true or false.")
        self.scale = scale

    def param_size(self, memory: Memory) -> int:
        return memory.word_size

    def scores(self, params: Tensor, memory_state) -> Tensor:  # noqa: ANN001
        """The raw scores ``q . M[n]`` (divided by sqrt(W) with ``scale``), ``[B, h, N]``, before the softmax."""
        keys = memory_state.memory  # K, [B, N, W]
        B, _, W = keys.shape
        check_shape(params, (B, "h", W), f"{type(self).__name__} params", "each head's query is W numbers")
        return dot_product_scores(params, keys, 1 / math.sqrt(W) if self.scale else 1.0)  # [B, h, N]

    def forward(self, params: Tensor, memory_state, state):  # noqa: ANN001
        """``params [B, h, W]`` (the queries), keys ``memory_state.memory [B, N, W]`` -> ``(weights [B, h, N], state)``."""
        return attention_weights(self.scores(params, memory_state), slot_mask(memory_state)), state
