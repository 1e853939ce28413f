"""The attention-based GRU of DMN+ (Xiong et al. 2016, sec. 3.3) as a head: a soft-gated sequential read.

Shape letters: B batch, h heads of one bank, N facts (memory slots), W fact width,
C the GRU's hidden width (the width of what one head reads, the episode's context vector).

A plain GRU's update gate ``u_i`` decides how much of each input enters the state; the
attention GRU replaces it by the attention gate ``g_i`` of fact ``i`` (a weighting over
facts from any addressing), so a fact with gate 0 leaves the state unchanged and a fact
with gate 1 replaces it by the candidate. Unlike a weighted sum of the facts ("soft
attention"), the read keeps the order of the facts. For each fact ``f_i`` in story order:

- ``r_i = sigmoid(W^(r) f_i + U^(r) h_{i-1} + b^(r))`` (eq. 11, the reset gate),
- ``h~_i = tanh(W f_i + r_i * U h_{i-1} + b^(h))`` (eq. 12, the candidate),
- ``h_i = g_i h~_i + (1 - g_i) h_{i-1}`` (eq. 13),

starting from ``h_0 = 0``; the final state ``h_N`` is the episode's context vector ``c``.

>>> import torch
>>> previous, candidate = torch.zeros(1, 1, 2), torch.ones(1, 1, 2)
>>> attention_gru_update(previous, candidate, torch.tensor([[[0.25]]])).tolist()
[[[0.25, 0.25]]]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Addressing, Head, HeadOutput, Memory, State, slot_mask
from mannkit.core.registry import register
from mannkit_dmn._util import optional_positive_int, positive_int, xavier_

__all__ = ["AttentionGRUHead", "attention_gru", "attention_gru_update", "steps_in_use"]


def attention_gru_update(previous: Tensor, candidate: Tensor, gate: Tensor) -> Tensor:
    """``h_i = g_i h~_i + (1 - g_i) h_{i-1}`` (DMN+ eq. 13): the attention gate in place of the update gate.

    Args:
        previous: h_{i-1}, ``[B, h, C]``.
        candidate: h~_i, ``[B, h, C]``.
        gate: g_i, ``[B, h, 1]`` (one scalar per head, shared by the C units).

    Returns:
        h_i, ``[B, h, C]``.
    """
    return torch.lerp(previous, candidate, gate)  # h_{i-1} + g_i (h~_i - h_{i-1})


def attention_gru(
    reset_inputs: Tensor, candidate_inputs: Tensor, gates: Tensor, recurrent: Tensor, steps: int | None = None
) -> Tensor:
    """Run the attention GRU over the facts (DMN+ eq. 11-13) and return its final state, the context ``c``.

    The input terms are computed for all facts at once by the caller; only the recurrence loops.

    Args:
        reset_inputs: ``W^(r) f_i + b^(r)`` for every fact, ``[B, N, C]``.
        candidate_inputs: ``W f_i + b^(h)`` for every fact, ``[B, N, C]``.
        gates: g, the attention over facts, ``[B, h, N]``.
        recurrent: ``[U^(r); U]`` stacked, ``[2C, C]``.
        steps: run over the first ``steps`` facts only (exact when the later facts have gate 0,
            which leaves the state unchanged); None for all N.

    Returns:
        c = h_N, ``[B, h, C]``.
    """
    B, N, C = reset_inputs.shape
    steps = N if steps is None else steps
    h = reset_inputs.new_zeros(B, gates.shape[1], C)  # h_0 = 0
    if steps == 0:
        return h
    # one view per fact, split once: indexing inside the loop would cost a full-size gradient buffer per step
    reset_steps = reset_inputs[:, :steps].unsqueeze(2).unbind(1)  # [B, N, C] -> steps x [B, 1, C], broadcast over heads
    candidate_steps = candidate_inputs[:, :steps].unsqueeze(2).unbind(1)  # steps x [B, 1, C]
    gate_steps = gates[:, :, :steps].unsqueeze(-1).unbind(2)  # [B, h, N] -> steps x [B, h, 1]
    for x_reset, x_candidate, gate in zip(reset_steps, candidate_steps, gate_steps):
        hidden_reset, hidden_candidate = F.linear(h, recurrent).chunk(2, dim=-1)  # U^(r) h, U h: [B, h, 2C] -> 2 x [B, h, C]
        r = torch.sigmoid(x_reset + hidden_reset)  # r_i (eq. 11)
        candidate = torch.tanh(x_candidate + r * hidden_candidate)  # h~_i (eq. 12)
        h = attention_gru_update(h, candidate, gate)  # h_i (eq. 13), g_i [B, h, 1]
    return h


def steps_in_use(mask: Tensor | None, slots: int) -> int:
    """How many leading slots hold every slot in use: one past the last True of any row (0 for none in use).

    >>> steps_in_use(torch.tensor([[True, False, False], [True, True, False]]), 3)
    2
    """
    if mask is None:
        return slots
    position = torch.arange(1, slots + 1, device=mask.device)  # [N], 1-based slot numbers
    return int((mask * position).amax()) if mask.numel() else 0  # the last slot in use, over the batch


@register
class AttentionGRUHead(Head):
    """A bank of ``count`` attention-GRU read heads: any addressing's weighting gates a GRU run over the memory rows.

    The addressing gives each head a weighting ``g [B, count, N]`` over the rows of the memory
    state's ``memory`` field (DMN+'s facts, or any matrix memory); the head runs the
    attention GRU (eq. 11-13) over the rows in order, each row's update gated by its weight,
    and reads the final state: a soft-gated *sequential* read of width C. Rows past the last
    slot in use (the state's ``mask``) have weight 0 and are skipped, which changes nothing.

    Shapes: params ``[B, count, P]`` (P is the addressing's) -> reads ``[B, count, C]``.

    Args:
        addressing: gives the gates, e.g. InteractionAddressing (DMN+), or any other addressing.
        count: the number of heads in the bank (each with its own gates, sharing the GRU weights).
        hidden_size: C, the GRU's hidden width (the read width); null for the memory's word size
            (the paper's choice).
    """

    stage = 1
    needs = ("read",)  # it runs over the rows of the state's ``memory`` field, which a memory with read holds as a tensor

    def __init__(self, addressing: Addressing, count: int = 1, hidden_size: int | None = None) -> None:
        super().__init__()
        positive_int("AttentionGRUHead", "count", count)
        optional_positive_int("AttentionGRUHead", "hidden_size", hidden_size, "the memory's word size")
        if not isinstance(addressing, Addressing):
            raise ConfigError(
                f"AttentionGRUHead: addressing must be an Addressing component, got {type(addressing).__name__}; "
                "give a class_path such as InteractionAddressing."
            )
        self.addressing = addressing
        self._count = count
        self.hidden_size = hidden_size
        self.inputs: nn.Linear | None = None  # [W^(r); W], [b^(r); b^(h)]
        self.recurrent: nn.Linear | None = None  # [U^(r); U], no bias

    @property
    def count(self) -> int:
        return self._count

    def _width(self, memory: Memory) -> int:
        return self.hidden_size or memory.word_size

    def bind(self, memory: Memory) -> None:
        """Create the GRU for rows of width ``memory.word_size`` and bind the addressing."""
        W = memory.word_size
        if self._bind_once(word_size=W):
            C = self._width(memory)
            self.inputs = nn.Linear(W, 2 * C)
            self.recurrent = nn.Linear(C, 2 * C, bias=False)
            for layer in (self.inputs, self.recurrent):  # Xavier per gate block, zero biases
                for block in layer.weight.data.chunk(2, dim=0):  # [2C, .] -> reset block, candidate block
                    nn.init.xavier_uniform_(block)
            nn.init.zeros_(self.inputs.bias)
        self.addressing.bind(memory)

    def param_size(self, memory: Memory) -> int:
        return self.addressing.param_size(memory)

    def read_size(self, memory: Memory) -> int:
        return self._width(memory)

    def initial_state(self, batch_size: int, memory: Memory, device: torch.device, dtype: torch.dtype) -> State:
        return self.addressing.initial_state(batch_size, self._count, memory, device, dtype)

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, count, P]`` -> reads ``[B, count, C]`` (the context vectors); trace ``read_weights [B, count, N]``."""
        if self.inputs is None or self.recurrent is None:
            raise ConfigError("AttentionGRUHead is not built yet; call head.bind(memory) (MemoryCell and DMNPlus do this).")
        gates, state = self.addressing(params, memory_state, state)  # g, [B, count, N]
        rows = memory_state.memory  # the facts F, [B, N, W]
        reset_inputs, candidate_inputs = self.inputs(rows).chunk(2, dim=-1)  # W^(r) f + b^(r), W f + b^(h): [B, N, C] each
        steps = steps_in_use(slot_mask(memory_state), rows.shape[1])
        context = attention_gru(reset_inputs, candidate_inputs, gates, self.recurrent.weight, steps)  # c, [B, count, C]
        return HeadOutput(context, memory_state, state, {"read_weights": gates} if record else {})
