"""Multi-head attention as an addressing: A learned query/key projections, one weighting per head of the bank.

Shape letters: B batch, h heads of one bank, N memory slots, W word size, A attention heads,
D the query/key width of one attention head.

The :class:`~mannkit.core.interfaces.Addressing` contract returns one weighting over N per
head of the bank, so the A attention heads must be combined into one weighting. Here they
are mixed: ``w = sum_a pi_a softmax_n(q_a . k_{a,n} / sqrt(D))`` with mixture weights
``pi = softmax(G x + g)`` computed from the head's query x. A convex mixture of weightings is a
weighting, and the read of the mixture is the same mixture of the A per-attention-head reads.

Relation to transformer multi-head attention, where head a outputs ``o_a = softmax(...) V W_a^V``
and the outputs are concatenated and projected by ``W^O``: reading memory with this weighting
gives ``r = sum_a pi_a softmax_a(...) M``, i.e. transformer multi-head attention with identity
value projections and an output projection that is ``pi_a I`` for head a (a query-dependent gate
per head instead of a learned ``W^O`` over the concatenation). To get the concatenated outputs
instead, use a bank of R read heads (``ReadHead(count=R)``): the cell concatenates their R read
vectors, and each may use :class:`~mannkit_attention.dot_product.ScaledDotProductAddressing`.

>>> import torch
>>> per_head_keys = torch.eye(2).view(1, 2, 1, 2).expand(1, 2, 2, 2)  # [B=1, N=2, A=2, D=2]
>>> queries = torch.tensor([[[[9.0, 0.0], [0.0, 9.0]]]])            # [B=1, h=1, A=2, D=2]
>>> multi_head_weights(queries, per_head_keys, torch.tensor([[[0.5, 0.5]]]), None).round(decimals=3)
tensor([[[0.5000, 0.5000]]])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Addressing, Memory, slot_mask
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.nn.attention import per_head_weights
from mannkit_attention._checks import check_bound, check_positive_int

__all__ = ["MultiHeadAddressing", "multi_head_weights"]


def multi_head_weights(queries: Tensor, keys: Tensor, mixture: Tensor, mask: Tensor | None) -> Tensor:
    """``w[n] = sum_a pi_a softmax_n(q_a . k_{a,n} / sqrt(D))``.

    Args:
        queries: q_a, ``[B, h, A, D]``.
        keys: k_{a,n}, ``[B, N, A, D]``.
        mixture: pi, ``[B, h, A]``, non-negative and summing to 1 over A.
        mask: bool ``[B, N]`` or None; masked slots get exactly zero weight in every attention head.

    Returns:
        ``[B, h, N]``.
    """
    per_head = per_head_weights(queries, keys, mask)  # softmax_n(q_a . k_{a,n} / sqrt(D)): [B, h, A, N] (mannkit.nn.attention)
    return torch.einsum("bha,bhan->bhn", mixture, per_head)  # sum_a pi_a w_a: [B, h, N]


@register
class MultiHeadAddressing(Addressing):
    """A learned query/key projections per attention head, mixed into one weighting per head of the bank.

    P = W: each head's raw parameters are a query x in the memory's word space. Attention head
    a projects it and the memory rows: ``q_a = Q_a x``, ``k_{a,n} = K_a M[n]`` (``D`` numbers
    each), scores ``q_a . k_{a,n} / sqrt(D)``; the mixture ``pi = softmax(G x + g)`` combines the
    A softmax weightings (see the module docstring for the relation to transformer multi-head
    attention). ``Q``, ``K`` (``W x A*D``, no bias, normal with std ``1/sqrt(W)``) and the gate
    ``G, g`` (zero at the start, so the heads start equally mixed; none for A = 1) are created in ``bind`` from W.

    Args:
        num_heads: A, the number of attention heads mixed into each weighting.
        head_size: D, the query/key width of one attention head; null gives ``max(1, W // num_heads)``.
    """

    def __init__(self, num_heads: int = 4, head_size: int | None = None) -> None:
        super().__init__()
        check_positive_int("MultiHeadAddressing", "num_heads", num_heads)
        if head_size is not None:
            check_positive_int("MultiHeadAddressing", "head_size", head_size)
        self.num_heads, self.head_size = num_heads, head_size
        self.head_dim: int | None = None  # D, set by bind

    def bind(self, memory: Memory) -> None:
        W = memory.word_size
        if not self._bind_once(word_size=W):
            return
        A = self.num_heads
        D = self.head_size if self.head_size is not None else max(1, W // A)
        self.head_dim = D
        self.query = nn.Linear(W, A * D, bias=False)  # Q_a for every a, stacked
        self.key = nn.Linear(W, A * D, bias=False)  # K_a for every a, stacked
        for projection in (self.query, self.key):
            nn.init.normal_(projection.weight, std=1 / math.sqrt(W))
        self.gate = nn.Linear(W, A) if A > 1 else None  # G, g: the mixture logits from the query (pi = 1 for A = 1)
        if self.gate is not None:
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)

    def param_size(self, memory: Memory) -> int:
        return memory.word_size

    def forward(self, params: Tensor, memory_state, state):  # noqa: ANN001
        """``params [B, h, W]`` (the queries), memory ``[B, N, W]`` -> ``(weights [B, h, N], state)``."""
        check_bound("MultiHeadAddressing", self)
        memory = memory_state.memory  # M, [B, N, W]
        B, N, W = memory.shape
        if W != self.query.in_features:
            raise ConfigError(
                f"MultiHeadAddressing was built for words of W={self.query.in_features} but the memory has W={W}; "
                "use a fresh addressing for this memory."
            )
        check_shape(params, (B, "h", W), "MultiHeadAddressing params", "each head's query is W numbers")
        h, A, D = params.shape[1], self.num_heads, self.head_dim
        queries = self.query(params).view(B, h, A, D)  # Q_a x: [B, h, A*D] -> [B, h, A, D]
        keys = self.key(memory).view(B, N, A, D)  # K_a M[n]: [B, N, A*D] -> [B, N, A, D]
        if self.gate is None:  # one attention head: pi = 1
            mixture = params.new_ones(B, h, 1)  # [B, h, A=1]
        else:
            mixture = torch.softmax(self.gate(params), dim=-1)  # pi = softmax(G x + g): [B, h, A]
        return multi_head_weights(queries, keys, mixture, slot_mask(memory_state)), state
