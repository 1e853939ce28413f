"""A small sequence model around a :class:`FactMemory`, so the conformance kit can check the memory.

The kit checks a memory inside a sequence model (``x [B, T, I]`` -> logits ``[B, T, O]``). A
fact memory is loaded from a whole story at once rather than written step by step, so it does
not fit the kit's default ``MemoryCell``; :class:`FactTagger` is its harness instead (registered
with :func:`mannkit.testing.register_example` on import). It is not registered as a model.

>>> import torch
>>> from mannkit_dmn import AttentionGRUHead, FactMemory, InteractionAddressing
>>> tagger = FactTagger(FactMemory(word_size=6), AttentionGRUHead(InteractionAddressing()))
>>> tagger.bind(input_size=3, output_size=2)
>>> tagger(torch.randn(4, 5, 3)).logits.shape
torch.Size([4, 5, 2])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Head, SequenceModel, SequenceOutput
from mannkit.testing.defaults import register_example
from mannkit_dmn.addressing import InteractionAddressing
from mannkit_dmn.episode import AttentionGRUHead
from mannkit_dmn.memory import FactMemory

__all__ = ["FactTagger"]


class FactTagger(SequenceModel):
    """Reads ``x [B, T, I]`` as a story of T sentences into a :class:`FactMemory`, then tags each step.

    Step t encodes ``s_t = E x_t``; the memory fuses all T encodings into facts; the head reads
    the facts with parameters ``P_t = Q s_t``; the logits are ``O [s_t; read_t]``. Every output
    depends on every input through the fused facts.

    Args:
        memory: the fact memory under test.
        head: a head that reads the facts (e.g. AttentionGRUHead).
    """

    def __init__(self, memory: FactMemory, head: Head) -> None:
        super().__init__()
        if not callable(getattr(memory, "load", None)):
            raise ConfigError(f"FactTagger: memory must be a FactMemory, got {type(memory).__name__}; use class_path FactMemory.")
        self.memory, self.head = memory, head
        self.encode: nn.Linear | None = None
        self.query: nn.Linear | None = None
        self.output: nn.Linear | None = None

    def bind(self, input_size: int, output_size: int) -> None:
        if not self._bind_once(input_size=input_size, output_size=output_size):
            return
        W = self.memory.word_size
        self.head.bind(self.memory)
        count = self.head.count
        self._param_size = self.head.param_size(self.memory)
        self.encode = nn.Linear(input_size, W)
        self.query = nn.Linear(W, count * self._param_size)
        self.output = nn.Linear(W + count * self.head.read_size(self.memory), output_size)

    def forward(self, x: Tensor, record: bool = False) -> SequenceOutput:
        """``x [B, T, I]`` -> logits ``[B, T, O]``; trace ``read_weights [B, T, count, T]`` when recording."""
        B, T, _ = x.shape
        sentences = self.encode(x)  # s, [B, T, W]
        facts = self.memory.load(sentences, torch.ones(B, T, dtype=torch.bool, device=x.device))
        state = self.head.initial_state(B, self.memory, x.device, x.dtype)
        logits, weights = [], []
        for t in range(T):
            params = self.query(sentences[:, t]).view(B, self.head.count, self._param_size)  # [B, count * P] -> [B, count, P]
            out = self.head(params, self.memory, facts, state, record)
            state = out.state
            logits.append(self.output(torch.cat([sentences[:, t], out.reads.reshape(B, -1)], dim=-1)))  # [B, O]
            if record and "read_weights" in out.trace:
                weights.append(out.trace["read_weights"])
        trace = {"read_weights": torch.stack(weights, dim=1)} if weights else None  # [B, T, count, T]
        return SequenceOutput(torch.stack(logits, dim=1), trace)


register_example(
    FactMemory,
    lambda: FactMemory(word_size=11, dropout=0.0),
    harness=lambda memory: FactTagger(memory, AttentionGRUHead(InteractionAddressing())),
)
