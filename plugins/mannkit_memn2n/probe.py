"""A small sequence model around a :class:`StoryMemory`, so the conformance kit can check the memory in a model.

Shape letters: B batch, T time, I input width (the probe's vocabulary), O output width,
N memory slots, D word size.

The kit checks memories inside a ``SequenceModel`` (``x [B, T, I]`` -> ``[B, T, O]``) whose outputs
depend on the memory; a matrix memory gets a ``MemoryCell``, which a story memory does not fit
(it is loaded whole and only read). :class:`StoryProbe` is the causal one-hop memory network over a
stream: at step t the story is the last N inputs as one-word sentences whose words are the
distributions ``softmax(x_s)`` over I (soft one-hot words, so gradients reach the inputs), the
question is ``x_t``, and the output is ``Linear(o_t)``. It is registered with the kit through
:func:`mannkit.testing.register_example`, not in the registry.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mannkit.core.interfaces import Head, SequenceModel, SequenceOutput
from mannkit_memn2n.hop import HopReadHead
from mannkit_memn2n.memory import StoryMemory

__all__ = ["StoryProbe"]


class StoryProbe(SequenceModel):
    """Causal attention over the last N inputs held in a :class:`StoryMemory` (a conformance harness).

    Args:
        memory: the story memory under test (its ``slots`` is N).
        head: the read head (default a :class:`HopReadHead` with dot-product addressing); one head, ``count`` 1.
    """

    def __init__(self, memory: StoryMemory, head: Head | None = None) -> None:
        super().__init__()
        self.memory = memory
        self.head = HopReadHead() if head is None else head

    @property
    def heads(self) -> list[Head]:
        """The head bank, for the kit's direct head checks against this memory."""
        return [self.head]

    def bind(self, input_size: int, output_size: int) -> None:
        if self._bind_once(input_size=input_size, output_size=output_size):
            self.memory.bind(vocab_size=input_size)
            self.head.bind(self.memory)
            self.query = nn.Linear(input_size, self.head.param_size(self.memory))
            self.output = nn.Linear(self.memory.word_size, output_size)

    def forward(self, x: Tensor, record: bool = False) -> SequenceOutput:
        """``x [B, T, I]`` -> logits ``[B, T, O]``; the trace holds ``attention [B, T, N]``."""
        N = self.memory.slots
        words = F.softmax(x, dim=-1).unsqueeze(2)  # one soft word per sentence: [B, T, I] -> [B, T, 1, I]
        outputs, weights = [], []
        for t in range(x.shape[1]):
            window = words[:, max(0, t + 1 - N): t + 1]  # the last n <= N inputs, [B, n, 1, I]
            story = F.pad(window, (0, 0, 0, 0, 0, N - window.shape[1]))  # empty slots after them: [B, N, 1, I]
            state = self.memory.load(story)
            read = self.head(self.query(x[:, t]).unsqueeze(1), self.memory, state, (), record)  # [B, 1, D]
            outputs.append(self.output(read.reads[:, 0]))  # [B, O]
            if record:
                weights.append(read.trace["read_weights"][:, 0])  # [B, N]
        trace = {"attention": torch.stack(weights, dim=1)} if record else None  # T x [B, N] -> [B, T, N]
        return SequenceOutput(torch.stack(outputs, dim=1), trace)  # T x [B, O] -> [B, T, O]
