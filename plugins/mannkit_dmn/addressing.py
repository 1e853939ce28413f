"""DMN+ attention gates (Xiong et al. 2016, sec. 3.3): interaction features and a 2-layer tanh scorer.

Shape letters: B batch, h heads of one bank, N facts (memory slots), W fact width, D scorer width.

For fact ``f_i``, question ``q`` and previous episodic memory ``m``:

- ``z_i = [f_i * q; f_i * m; |f_i - q|; |f_i - m|]`` (eq. 8, the interaction features),
- ``Z_i = W2 tanh(W1 z_i + b1) + b2`` (eq. 9, a scalar score per fact),
- ``g_i = exp(Z_i) / sum_k exp(Z_k)`` (eq. 10), over the facts in use only.

>>> import torch
>>> facts = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])       # [B=1, N=2, W=2]
>>> q = m = torch.tensor([[[1.0, 0.0]]])                    # [B=1, h=1, W=2]
>>> interaction_features(facts, q, m)[0, 0, 0].tolist()     # fact 0 equals q and m: no difference terms
[1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.interfaces import Addressing, Memory, State, slot_mask
from mannkit.core.registry import register
from mannkit.nn.addressing import masked_softmax
from mannkit_dmn._util import optional_positive_int, xavier_

__all__ = ["InteractionAddressing", "interaction_features", "gate_scores", "attention_gates"]


def interaction_features(facts: Tensor, question: Tensor, memory: Tensor) -> Tensor:
    """``z_i = [f_i * q; f_i * m; |f_i - q|; |f_i - m|]`` (DMN+ eq. 8), for every fact and head.

    Args:
        facts: F, ``[B, N, W]``.
        question: q, one per head, ``[B, h, W]``.
        memory: m (the previous episodic memory), one per head, ``[B, h, W]``.

    Returns:
        z, ``[B, h, N, 4W]``.
    """
    f = facts.unsqueeze(1)  # [B, N, W] -> [B, 1, N, W], broadcast over heads
    q = question.unsqueeze(2)  # [B, h, W] -> [B, h, 1, W], broadcast over facts
    m = memory.unsqueeze(2)  # [B, h, W] -> [B, h, 1, W]
    return torch.cat([f * q, f * m, (f - q).abs(), (f - m).abs()], dim=-1)  # z: 4 x [B, h, N, W]


def gate_scores(z: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """``Z_i = W2 tanh(W1 z_i + b1) + b2`` (DMN+ eq. 9), one score per fact.

    Args:
        z: interaction features, ``[B, h, N, 4W]``.
        w1: W1, ``[D, 4W]``; b1: ``[D]``.
        w2: W2, ``[1, D]``; b2: ``[1]``.

    Returns:
        Z, ``[B, h, N]``.
    """
    hidden = torch.tanh(F.linear(z, w1, b1))  # tanh(W1 z + b1), [B, h, N, D]
    return F.linear(hidden, w2, b2).squeeze(-1)  # Z = W2 (.) + b2: [B, h, N, 1] -> [B, h, N]


def attention_gates(scores: Tensor, mask: Tensor | None = None) -> Tensor:
    """``g_i = exp(Z_i) / sum_k exp(Z_k)`` over the facts in use (DMN+ eq. 10); exactly 0 at padded facts.

    Args:
        scores: Z, ``[B, h, N]``.
        mask: bool ``[B, N]``, True at facts in use, or None when all are.

    Returns:
        g, ``[B, h, N]``, summing to 1 over N (all zeros for a story with no fact in use).

    >>> attention_gates(torch.zeros(1, 1, 3), torch.tensor([[True, True, False]]))
    tensor([[[0.5000, 0.5000, 0.0000]]])
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    return masked_softmax(scores, mask)


@register
class InteractionAddressing(Addressing):
    """DMN+'s attention over facts: interaction features, a 2-layer tanh scorer and a softmax over facts.

    Each head's parameters are the question and the previous episodic memory side by side,
    ``[q; m]`` (P = 2W, used as they are: no activation), and the memory state's ``memory``
    field holds the facts ``F [B, N, W]`` (its ``mask`` field, if any, marks the facts in use,
    which alone receive weight). No state is kept between calls.

    Shapes: params ``[B, h, 2W]`` and facts ``[B, N, W]`` -> gates ``[B, h, N]``.

    Args:
        hidden_size: D, the width of the scorer's tanh layer; null for the fact width W
            (the paper's choice).
    """

    def __init__(self, hidden_size: int | None = None) -> None:
        super().__init__()
        optional_positive_int("InteractionAddressing", "hidden_size", hidden_size, "the fact width")
        self.hidden_size = hidden_size
        self.hidden: nn.Linear | None = None  # W1, b1
        self.score: nn.Linear | None = None  # W2, b2

    def bind(self, memory: Memory) -> None:
        """Create the scorer for facts of width ``memory.word_size``."""
        W = memory.word_size
        if self._bind_once(word_size=W):
            D = self.hidden_size or W
            self.hidden = xavier_(nn.Linear(4 * W, D))
            self.score = xavier_(nn.Linear(D, 1))

    def param_size(self, memory: Memory) -> int:
        return 2 * memory.word_size

    def forward(self, params: Tensor, memory_state: State, state: State) -> tuple[Tensor, State]:
        """``params [B, h, 2W]`` (``[q; m]`` per head) -> ``(gates [B, h, N], state)``."""
        if self.hidden is None or self.score is None:
            raise ConfigError(
                "InteractionAddressing is not built yet; its head calls bind(memory) (MemoryCell and DMNPlus do this), "
                "or call addressing.bind(memory) yourself."
            )
        facts = memory_state.memory  # F, [B, N, W]
        W = facts.shape[-1]
        if params.dim() != 3 or params.shape[-1] != 2 * W:
            raise ShapeError(
                f"InteractionAddressing: params have shape {list(params.shape)} but [B, h, 2W] = [B, h, {2 * W}] was "
                "expected (the question and the memory, each as wide as a fact)."
            )
        question, memory = params.split(W, dim=-1)  # q, m: [B, h, W] each
        z = interaction_features(facts, question, memory)  # [B, h, N, 4W]
        scores = gate_scores(z, self.hidden.weight, self.hidden.bias, self.score.weight, self.score.bias)  # Z, [B, h, N]
        return attention_gates(scores, slot_mask(memory_state)), state
