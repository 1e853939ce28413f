"""The Relational Memory Core (Santoro et al. 2018, "Relational recurrent neural networks") as a Controller.

Shape letters: B batch, I input width, N memory slots, W word size (the memory width), A attention
heads, D = W / A the value width of one head, K the query/key width of one head, G gate width
(W for unit gating, 1 for memory gating).

One step, ``(x [B, I], M [B, N, W]) -> (h [B, N*W], M' [B, N, W])``:

1. the input is projected to one more row, ``x' = Linear(x) [B, 1, W]``, and appended: ``[M; x']``;
2. ``blocks`` attention blocks over the N+1 rows, each (sec. 3.1, fig. 1)
   ``A = MHDPA([M; x'])`` (queries, keys and values from every row; per-row LayerNorm on them),
   ``M~ = LN(M + A)``, ``M~ = LN(M~ + g_psi(M~))`` with ``g_psi`` a row-wise MLP shared by the blocks;
3. the input row is dropped, and the slots are gated like an LSTM (sec. 3.2):
   ``i = sigmoid(W_i x + U_i tanh(M) + b_i)``, ``f = sigmoid(W_f x + U_f tanh(M) + b_f)``,
   ``M' = i * tanh(M~) + f * M``, with one gate per slot and unit (``unit``), one per slot
   (``memory``) or no gating (``none``: ``M' = M~``);
4. the output is the new memory, flattened: ``h = M'.reshape(B, N*W)``.

The memory starts as the identity matrix, padded with zeros or cut to ``[N, W]``.

>>> import torch
>>> core = RelationalMemoryCore(slots=3, word_size=8, num_heads=2)
>>> core.bind(input_size=5)
>>> h, state = core(torch.zeros(4, 5), core.initial_state(4, torch.device("cpu"), torch.float32))
>>> h.shape, state.shape, core.output_size
(torch.Size([4, 24]), torch.Size([4, 3, 8]), 24)
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Controller
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.nn.attention import attend

__all__ = ["RelationalMemoryCore", "AttentionBlock", "gated_update", "initial_memory", "GATE_STYLES"]

GATE_STYLES = ("unit", "memory", "none")


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"RelationalMemoryCore: {name} must be a positive integer, got {value!r}; set {name} to 1 or more.")


def initial_memory(slots: int, word_size: int, batch_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The identity matrix, padded with zero columns or cut to ``[N, W]``, for every example: ``[B, N, W]``.

    >>> initial_memory(2, 3, 1, torch.device("cpu"), torch.float32)[0]
    tensor([[1., 0., 0.],
            [0., 1., 0.]])
    """
    eye = torch.eye(slots, word_size, device=device, dtype=dtype)  # [N, W], padded or cut
    return eye.expand(batch_size, slots, word_size)  # [N, W] -> [B, N, W]


def gated_update(memory: Tensor, candidate: Tensor, input_logits: Tensor, forget_logits: Tensor) -> Tensor:
    """``M' = sigmoid(i) * tanh(M~) + sigmoid(f) * M`` (sec. 3.2, the LSTM-style slot update).

    Args:
        memory: M, ``[B, N, W]``.
        candidate: M~, the attended memory, ``[B, N, W]``.
        input_logits: the input gate before its sigmoid (biases included), ``[B, N, G]`` with G = W or 1.
        forget_logits: the forget gate before its sigmoid (biases included), ``[B, N, G]``.

    Returns:
        ``[B, N, W]``.

    >>> m, c = torch.ones(1, 1, 2), torch.full((1, 1, 2), 5.0)
    >>> gated_update(m, c, torch.full((1, 1, 1), -1e4), torch.full((1, 1, 1), 1e4))  # input shut, forget open
    tensor([[[1., 1.]]])
    """
    return torch.sigmoid(input_logits) * torch.tanh(candidate) + torch.sigmoid(forget_logits) * memory


class AttentionBlock(nn.Module):
    """One attention block over rows: ``M~ = LN(M + MHDPA(M))``, then ``LN(M~ + g_psi(M~))``.

    The queries, keys and values come from one linear map of each row, LayerNorm'ed per row
    (every row is a memory slot or the input); queries are scaled by ``K^-1/2`` inside
    :func:`mannkit.nn.attention.attend`. ``mlp`` is ``g_psi``, passed in so that blocks share it.

    Args:
        word_size: W.
        num_heads: A.
        key_size: K, the query/key width of one head.
        mlp: the row-wise MLP ``[.., W] -> [.., W]``.
    """

    def __init__(self, word_size: int, num_heads: int, key_size: int, mlp: nn.Module) -> None:
        super().__init__()
        self.num_heads, self.key_size, self.value_size = num_heads, key_size, word_size // num_heads
        width = num_heads * (2 * key_size + self.value_size)  # A (K + K + D)
        self.qkv = nn.Linear(word_size, width, bias=False)
        self.qkv_norm = nn.LayerNorm(width)
        self.norm_attention = nn.LayerNorm(word_size)
        self.norm_mlp = nn.LayerNorm(word_size)
        self.mlp = mlp

    def forward(self, rows: Tensor) -> Tensor:
        """``rows [B, N+1, W]`` -> ``[B, N+1, W]``."""
        B, R, W = rows.shape
        A, K, D = self.num_heads, self.key_size, self.value_size
        qkv = self.qkv_norm(self.qkv(rows)).view(B, R, A, 2 * K + D)  # [B, R, A*(2K+D)] -> [B, R, A, 2K+D]
        q, k, v = qkv.split([K, K, D], dim=-1)  # [B, R, A, K], [B, R, A, K], [B, R, A, D]
        attended = attend(q, k, v, None).reshape(B, R, W)  # softmax(q k^T / sqrt(K)) v per head, heads concatenated
        rows = self.norm_attention(rows + attended)  # residual + LayerNorm
        return self.norm_mlp(rows + self.mlp(rows))  # g_psi row-wise, residual + LayerNorm


@register
class RelationalMemoryCore(Controller):
    """The Relational Memory Core: N slots updated by attention over the slots and the input, then gated.

    Usable as the controller of any ``MemoryCell`` (its output ``h`` is the new memory flattened,
    ``H = N * W``) and, wrapped by :class:`~mannkit_relational.RelationalMemoryModel`, as a recurrent
    model whose memory is its whole state. The state is the memory ``[B, N, W]``.

    Args:
        slots: N, the number of memory slots (rows).
        word_size: W, the width of a slot; ``num_heads`` must divide it (each head gives W / A values).
        num_heads: A, the attention heads.
        key_size: K, the query/key width of one head; null gives W / A (the head size).
        blocks: attention blocks per step (each with its own attention and LayerNorms, one shared MLP).
        mlp_layers: layers of the row-wise MLP ``g_psi`` (W units each, ReLU between).
        gate_style: ``unit`` (a gate per slot and unit), ``memory`` (a gate per slot) or ``none``.
        input_bias: added to the input gate's logits.
        forget_bias: added to the forget gate's logits (1 keeps the memory at first).
    """

    def __init__(
        self,
        slots: int = 4,
        word_size: int = 16,
        num_heads: int = 2,
        key_size: int | None = None,
        blocks: int = 1,
        mlp_layers: int = 2,
        gate_style: Literal["unit", "memory", "none"] = "unit",
        input_bias: float = 0.0,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        for name, value in (("slots", slots), ("word_size", word_size), ("num_heads", num_heads), ("blocks", blocks),
                            ("mlp_layers", mlp_layers)):
            _positive(name, value)
        if key_size is not None:
            _positive("key_size", key_size)
        if word_size % num_heads:
            raise ConfigError(
                f"RelationalMemoryCore: num_heads ({num_heads}) must divide word_size ({word_size}); set word_size to a "
                f"multiple of {num_heads}, e.g. {num_heads * max(1, round(word_size / num_heads))}."
            )
        if gate_style not in GATE_STYLES:
            raise ConfigError(f"RelationalMemoryCore: gate_style must be unit, memory or none, got {gate_style!r}; pick one of those.")
        self.slots, self.word_size, self.num_heads, self.blocks = slots, word_size, num_heads, blocks
        self.key_size = key_size if key_size is not None else word_size // num_heads
        self.gate_style, self.input_bias, self.forget_bias = gate_style, float(input_bias), float(forget_bias)
        layers: list[nn.Module] = []
        for i in range(mlp_layers):
            layers += [nn.ReLU()] if i else []
            layers.append(nn.Linear(word_size, word_size))
        self.mlp = nn.Sequential(*layers)  # g_psi, shared by the blocks
        self.attention = nn.ModuleList(AttentionBlock(word_size, num_heads, self.key_size, self.mlp) for _ in range(blocks))
        gate = {"unit": word_size, "memory": 1, "none": 0}[gate_style]  # G
        self.gate_size = gate
        self.gate_memory = nn.Linear(word_size, 2 * gate) if gate else None  # U_i, U_f (and b_i, b_f)
        self.input_projection: nn.Linear | None = None
        self.gate_input: nn.Linear | None = None

    @property
    def output_size(self) -> int:
        return self.slots * self.word_size

    def bind(self, input_size: int) -> None:
        """Create the input projection ``x -> x' [W]`` and the gates' input weights ``W_i, W_f``."""
        if not self._bind_once(input_size=input_size):
            return
        _positive("input_size", input_size)
        self.input_projection = nn.Linear(input_size, self.word_size)
        self.gate_input = nn.Linear(self.word_size, 2 * self.gate_size, bias=False) if self.gate_size else None

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The identity memory ``[B, N, W]`` (:func:`initial_memory`)."""
        return initial_memory(self.slots, self.word_size, batch_size, device, dtype)

    def attend_over_memory(self, memory: Tensor, row: Tensor) -> Tensor:
        """``M [B, N, W]`` and the projected input ``x' [B, 1, W]`` -> the attended slots ``M~ [B, N, W]``."""
        rows = torch.cat([memory, row], dim=1)  # [M; x']: [B, N+1, W]
        for block in self.attention:
            rows = block(rows)
        return rows[:, : self.slots]  # the input row is dropped: [B, N, W]

    def gate_logits(self, row: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
        """The input and forget gates' logits ``[B, N, G]``: ``W x' + U tanh(M) + b`` (+ the configured biases)."""
        logits = self.gate_input(row) + self.gate_memory(torch.tanh(memory))  # [B, 1, 2G] + [B, N, 2G]
        i, f = logits.split(self.gate_size, dim=-1)  # [B, N, G] each
        return i + self.input_bias, f + self.forget_bias

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """``x [B, I]``, ``M [B, N, W]`` -> ``(h [B, N*W], M' [B, N, W])``."""
        if self.input_projection is None:
            raise ConfigError("RelationalMemoryCore is not built yet; call bind(input_size) first (MemoryCell does this).")
        B = x.shape[0]
        check_shape(state, (B, self.slots, self.word_size), "RelationalMemoryCore memory", "the state must be [B, N, W]")
        row = self.input_projection(x).unsqueeze(1)  # x': [B, I] -> [B, 1, W]
        candidate = self.attend_over_memory(state, row)  # M~: [B, N, W]
        if self.gate_size:
            memory = gated_update(state, candidate, *self.gate_logits(row, state))
        else:
            memory = candidate
        return memory.reshape(B, self.output_size), memory  # h: [B, N, W] -> [B, N*W]
