"""DMN+'s input fusion layer (Xiong et al. 2016, sec. 3.1) as a memory of facts loaded from a story.

Shape letters: B batch, N sentences (facts, memory slots), W fact width.

The sentence encodings (e.g. position-encoded word embeddings, :func:`mannkit.nn.encode_sentences`)
go through a bidirectional GRU over the sentences, and each fact is the sum of the two
directions, so a fact knows about the sentences both before and after it:

- ``f->_i = GRU_fwd(s_i, f->_{i-1})``, ``f<-_i = GRU_bwd(s_i, f<-_{i+1})`` (eq. 5, 6),
- ``f_i = f->_i + f<-_i`` (eq. 7).

Padded sentence slots (after the last real one) are skipped by both directions and hold
zero facts; the state's ``mask`` marks the facts in use, so every addressing gives them zero weight.
The backward direction runs on each story reversed within its own length
(:func:`reverse_within`), so it starts at the story's last real sentence; the two directions are
two ``nn.GRU`` layers on padded batches (packed sequences would cost a full-size gradient buffer
per sentence on CPU, quadratic in N).

>>> import torch
>>> facts = FactMemory(word_size=4, dropout=0.0).load(torch.randn(2, 3, 4), torch.tensor([[True, True, False]] * 2))
>>> facts.memory.shape, facts.memory[:, 2].abs().sum().item()
(torch.Size([2, 3, 4]), 0.0)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mannkit.core.errors import ShapeError
from mannkit.core.interfaces import Memory
from mannkit.core.registry import register
from mannkit.nn.memory import read
from mannkit_dmn._util import positive_int, probability, xavier_gru_

__all__ = ["FactMemory", "FactState", "fuse_directions", "reverse_within", "story_lengths"]


class FactState(NamedTuple):
    """The facts of one batch of stories."""

    memory: Tensor  # F, [B, N, W]; zero at padded slots
    mask: Tensor  # bool [B, N], True at the facts in use


def fuse_directions(forward: Tensor, backward: Tensor) -> Tensor:
    """``f_i = f->_i + f<-_i`` (DMN+ eq. 7): sum the two directions of the fusion GRU.

    Args:
        forward: f->, ``[B, N, W]``.
        backward: f<-, ``[B, N, W]``, in story order.

    Returns:
        ``[B, N, W]``.

    >>> fuse_directions(torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[10.0, 20.0]]])).tolist()
    [[[11.0, 22.0]]]
    """
    return forward + backward


def reverse_within(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence's first ``lengths[b]`` steps, leaving the padding after them in place (an involution).

    Args:
        x: ``[B, N, ...]``.
        lengths: ``[B]`` int64, each at most N.

    Returns:
        ``[B, N, ...]``.

    >>> reverse_within(torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]]), torch.tensor([3, 2])).tolist()
    [[3, 2, 1, 0], [5, 4, 0, 0]]
    """
    N = x.shape[1]
    step = torch.arange(N, device=x.device)  # [N]
    index = torch.where(step < lengths.unsqueeze(-1), lengths.unsqueeze(-1) - 1 - step, step)  # [B, N]
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)  # [B, N] -> [B, N, ...]
    return x.gather(1, index)


def story_lengths(mask: Tensor) -> Tensor:
    """One past the last slot in use in each story (real sentences come first), ``[B]`` int64.

    >>> story_lengths(torch.tensor([[True, True, False], [False, False, False]])).tolist()
    [2, 0]
    """
    position = torch.arange(1, mask.shape[-1] + 1, device=mask.device)  # [N], 1-based
    return (mask * position).amax(-1) if mask.shape[-1] else mask.new_zeros(mask.shape[0], dtype=torch.long)


@register
class FactMemory(Memory):
    """The facts of a story: sentence encodings fused by a bidirectional GRU (DMN+'s input fusion layer).

    The memory is filled once per story with :meth:`load` and then only read (by an
    :class:`AttentionGRUHead`, or as a soft-attention weighted sum with :meth:`read`). Its state
    is a :class:`FactState` with fields ``memory`` (the facts ``[B, N, W]``) and ``mask``
    (``[B, N]``); before a story is loaded it holds no facts (``N = 0``).

    Args:
        word_size: W, the width of the sentence encodings and of the facts (DMN+ uses 80; a model
            built on this memory, such as DMNPlus, takes its embedding width from here).
        dropout: dropout probability on the sentence encodings before the fusion layer, in training
            only (DMN+ sec. 4.2 keeps inputs with probability 0.9); 0 for none.
    """

    def __init__(self, word_size: int = 80, dropout: float = 0.1) -> None:
        super().__init__()
        positive_int("FactMemory", "word_size", word_size)
        probability("FactMemory", "dropout", dropout)
        self._word_size, self.dropout = word_size, dropout
        self.forward_gru = xavier_gru_(nn.GRU(word_size, word_size, batch_first=True))  # f->
        self.backward_gru = xavier_gru_(nn.GRU(word_size, word_size, batch_first=True))  # f<-

    @property
    def word_size(self) -> int:
        return self._word_size

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> FactState:
        """An empty story: no facts, ``[B, 0, W]``."""
        return FactState(
            torch.zeros(batch_size, 0, self._word_size, device=device, dtype=dtype),
            torch.zeros(batch_size, 0, dtype=torch.bool, device=device),
        )

    def load(self, sentences: Tensor, mask: Tensor) -> FactState:
        """Fuse a batch of stories' sentence encodings into facts.

        Args:
            sentences: ``[B, N, W]`` sentence encodings, oldest first.
            mask: bool ``[B, N]``, True at real sentences (which come before the padded slots).

        Returns:
            :class:`FactState` with facts ``[B, N, W]`` (zero at padded slots) and a mask that marks
            every slot up to each story's last real sentence.
        """
        if sentences.dim() != 3 or sentences.shape[-1] != self._word_size or tuple(mask.shape) != tuple(sentences.shape[:2]):
            raise ShapeError(
                f"FactMemory.load: sentences have shape {list(sentences.shape)} and mask {list(mask.shape)} but "
                f"[B, N, W] = [B, N, {self._word_size}] and [B, N] were expected; the sentence encoder's width must "
                "be the memory's word_size."
            )
        B, N, W = sentences.shape
        lengths = story_lengths(mask)  # [B]
        in_use = torch.arange(N, device=mask.device) < lengths.unsqueeze(-1)  # [B, N], real sentences come first
        if N == 0:
            return FactState(sentences, in_use)
        sentences = F.dropout(sentences, self.dropout, self.training)
        forward, _ = self.forward_gru(sentences)  # f->_i (eq. 5), [B, N, W]; padding comes after, so changes nothing before it
        backward, _ = self.backward_gru(reverse_within(sentences, lengths))  # eq. 6 from each story's last sentence
        facts = fuse_directions(forward, reverse_within(backward, lengths))  # f_i (eq. 7), back in story order
        facts = facts * in_use.unsqueeze(-1).to(facts.dtype)  # zero at padded slots (and for an empty story)
        return FactState(facts, in_use)

    def read(self, weights: Tensor, state: FactState) -> Tensor:
        """Soft attention, ``c = sum_i g_i f_i`` (DMN+ sec. 3.3's simpler alternative to the attention GRU).

        Args:
            weights: g, ``[B, h, N]``.

        Returns:
            ``[B, h, W]``.
        """
        return read(weights, state.memory)

    def describe(self, state: FactState) -> dict[str, Tensor]:
        return {"memory": state.memory}
