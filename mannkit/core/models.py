"""The interfaces of whole models: sequence models (recurrent cells, wrappers) and question-answering models.

Shape letters: B batch, T time, I input width, O output width; for QA models N story sentences,
L words per sentence, Q question words, V vocabulary, A answer classes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from mannkit.core.component import Component, State

__all__ = [
    "SequenceModel",
    "SequenceOutput",
    "RecurrentCell",
    "QAModel",
    "QAOutput",
    "NOT_AN_ANSWER",
    "stack_steps",
]


class SequenceOutput(NamedTuple):
    """Output of a sequence model."""

    logits: Tensor
    """``[B, T, O]``, before the loss's sigmoid or softmax."""
    trace: dict[str, Tensor] | None
    """Recorded internals, each ``[B, T, ...]`` (only when asked to record)."""
    losses: dict[str, Tensor] | None = None
    """Loss terms of the model's own, each a weighted scalar (ACT's ponder cost ``tau * sum_t (N(t) + R(t))``):
    ``SequenceSystem`` adds each to the training loss and logs it as ``train/loss_<name>``; None for none."""
    stats: dict[str, Tensor] | None = None
    """Scalars to log beside the loss, never added to it (ACT's ``ponder_mean``, ``ponder_max``):
    ``SequenceSystem`` logs each as ``train/<name>`` and ``val/<name>``; None for none."""


class SequenceModel(Component, ABC):
    """Any model mapping ``x [B, T, I]`` to logits ``[B, T, O]``: a recurrent cell, a wrapper (ACT), ..."""

    registry_kind = "model"

    @abstractmethod
    def bind(self, input_size: int, output_size: int) -> None:
        """Create the layers for I inputs and O outputs per step."""

    @abstractmethod
    def forward(self, x: Tensor, record: bool = False) -> SequenceOutput:
        """``x [B, T, I]`` -> :class:`SequenceOutput` with logits ``[B, T, O]``."""


class RecurrentCell(SequenceModel):
    """A sequence model that is one step unrolled over time; the time loop is the only Python loop."""

    @abstractmethod
    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State: ...

    @abstractmethod
    def step(self, x: Tensor, state: State, record: bool = False) -> tuple[Tensor, State, dict[str, Tensor]]:
        """``x [B, I]`` -> ``(y [B, O], state, trace)``."""

    def forward(self, x: Tensor, record: bool = False) -> SequenceOutput:
        B, T, _ = x.shape
        state = self.initial_state(B, x.device, x.dtype)
        outputs: list[Tensor] = []
        traces: list[dict[str, Tensor]] = []
        for t in range(T):
            y, state, trace = self.step(x[:, t], state, record)
            outputs.append(y)
            if record:
                traces.append(trace)
        stacked = None
        if record and traces:
            stacked = {k: stack_steps([tr[k] for tr in traces]) for k in traces[0]}  # [B, T, ...]
        return SequenceOutput(torch.stack(outputs, dim=1), stacked)


def stack_steps(values: Sequence[Tensor]) -> Tensor:
    """Stack T per-step tensors ``[B, ...]`` to ``[B, T, ...]``, zero-padding entries that grow.

    Entries of one shape are stacked as they are. An entry whose size changes from step to step
    (the state of a growing memory, a weighting over its rows) is padded with zeros after its last
    element along each axis, up to the largest size at any step; all steps must have the same rank.

    >>> stack_steps([torch.ones(2, 1), torch.ones(2, 3)])[0]
    tensor([[1., 0., 0.],
            [1., 1., 1.]])
    """
    shape = values[0].shape
    if all(v.shape == shape for v in values):
        return torch.stack(list(values), dim=1)
    ranks = {v.dim() for v in values}
    if len(ranks) != 1:
        raise ValueError(f"stack_steps: per-step entries must keep their rank, got shapes {[list(v.shape) for v in values]}.")
    size = [max(v.shape[d] for v in values) for d in range(values[0].dim())]
    padded = []
    for v in values:
        pad: list[int] = []
        for d in reversed(range(v.dim())):  # F.pad takes (before, after) pairs from the last axis backwards
            pad += [0, size[d] - v.shape[d]]
        padded.append(nn.functional.pad(v, pad))
    return torch.stack(padded, dim=1)  # T x [B, ...max] -> [B, T, ...max]


#: What a QA system writes as the prediction when a model's scores outside the answer classes win
#: (:attr:`QAOutput.rest`).
NOT_AN_ANSWER = "<not an answer>"


class QAOutput(NamedTuple):
    """Output of a question-answering model."""

    logits: Tensor
    """``[B, A]`` scores over the A answer classes (before the softmax)."""
    trace: dict[str, Tensor] | None
    """Recorded internals (only when asked), e.g. ``{"attention": [B, hops, N]}`` over story sentences."""
    rest: Tensor | None = None
    """Optional ``[B]``: the log of the summed exponentiated scores of outputs that are no answer class (e.g. the
    other words of the vocabulary when the model's softmax covers the whole vocabulary, as MemN2N's original
    code does). The loss then normalises over them too, and a row where they outweigh every class is wrong."""

    def scores(self) -> Tensor:
        """The scores the loss and the metrics use: ``logits [B, A]``, or ``[B, A + 1]`` with ``rest`` as the last
        column (a class no answer has, so it only ever counts as a wrong prediction).

        >>> import torch
        >>> QAOutput(torch.zeros(2, 3), None, torch.ones(2)).scores().shape
        torch.Size([2, 4])
        """
        if self.rest is None:
            return self.logits
        return torch.cat([self.logits, self.rest.unsqueeze(-1)], dim=-1)  # [B, A] + [B, 1] -> [B, A + 1]


class QAModel(Component, ABC):
    """Story + question -> answer: a model that reads a whole story into memory and attends over it.

    Shape letters: N sentences in the story (memory slots), L words per sentence, Q words in
    the question, V words in the vocabulary (id 0 is padding), A answer classes.

    A story is ``[B, N, L]`` word ids in story order, oldest sentence first; sentences are
    right-padded with 0 and unused sentence slots (after the last one) are all 0. The
    question is ``[B, Q]``. The assembling system calls ``bind`` once with sizes read from
    the data.
    """

    registry_kind = "model"

    @abstractmethod
    def bind(self, vocab_size: int, answer_size: int, max_sentences: int, sentence_length: int, question_length: int) -> None:
        """Create the layers for a vocabulary of V words, A answers and stories of N x L words.

        A model may accept one more keyword, ``answer_words`` (int64 ``[A]``: the word id of each
        one-word answer, 0 for others); ``QASystem`` passes it when ``bind`` takes it (MemN2N ties
        its answer matrix to its last output embedding with it)."""

    @abstractmethod
    def forward(self, story: Tensor, question: Tensor, record: bool = False) -> QAOutput:
        """``story [B, N, L]``, ``question [B, Q]`` (int64) -> :class:`QAOutput` with logits ``[B, A]``."""
