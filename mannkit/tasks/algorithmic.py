"""The five algorithmic tasks of the Neural Turing Machine paper (Graves, Wayne and Danihelka, 2014).

Shape letters: B batch, T time, I input width, O output width, W bits per vector
(``bits``), L sequence length, K items or outputs.

Each task is a :class:`~mannkit.tasks.base.SequenceTask`: batches are dicts with ``"input"``
``[B, T, I]``, ``"target"`` ``[B, T, O]`` (0/1 bits), ``"mask"`` ``[B, T]`` and, for dynamic
N-grams only, ``"reference_bits"`` ``[B]``. Lengths, repeats and item counts are drawn once
per batch, so every sequence of a batch has the same T. Test sets run at longer lengths (or
more repeats, items, inputs) than training to measure generalisation.

>>> from mannkit.tasks import PrioritySortTask
>>> task = PrioritySortTask(bits=3, num_inputs=5, num_outputs=4, test_inputs=[5, 10])
>>> task.input_size, task.output_size, task.test_set_names
(5, 3, ['in5_out4', 'in10_out8'])
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.registry import register
from mannkit.tasks.base import Batch, SequenceTask
from mannkit.tasks.difficulty import Difficulty, check_at_least
from mannkit.tasks.ngrams import DynamicNGramsTask, ngram_bayes_optimal_bits  # task 4 lives in its own module

__all__ = [
    "CopyTask",
    "RepeatCopyTask",
    "AssociativeRecallTask",
    "DynamicNGramsTask",
    "PrioritySortTask",
    "ngram_bayes_optimal_bits",
]


def _draw_int(generator: torch.Generator, low: int, high: int) -> int:
    """One integer uniform in ``[low, high]`` (both included)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


def _random_bits(generator: torch.Generator, *shape: int) -> Tensor:
    """Independent fair 0/1 bits as float32."""
    return torch.randint(0, 2, shape, generator=generator).float()


# -- 1. copy ---------------------------------------------------------------------------------


@register(kind="task")
class CopyTask(SequenceTask):
    """Copy: read L random bit vectors and a delimiter, then write the L vectors back.

    Step layout (T = 2L + 1): steps ``0..L-1`` hold the vectors on channels ``0..W-1``;
    step ``L`` holds the delimiter on channel ``W``; steps ``L+1..2L`` are blank inputs
    whose targets are the vectors, in order. Only those last L steps are scored.
    I = W + 1, O = W.

    Args:
        bits: W, bits per vector.
        min_length: shortest training sequence (L is uniform in ``[min_length, max_length]`` per batch).
        max_length: longest training sequence; a curriculum may raise it during training.
        test_lengths: one test set per length (named ``"len{L}"``).
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.

    >>> batch = CopyTask(bits=4, min_length=3, max_length=3).example_batch()
    >>> batch["input"].shape, batch["target"].shape, batch["mask"][0].tolist()
    (torch.Size([1, 7, 5]), torch.Size([1, 7, 4]), [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    """

    difficulty = (Difficulty("length", tag="len", tests="test_lengths"),)

    def __init__(
        self,
        bits: int = 8,
        min_length: int = 1,
        max_length: int = 20,
        test_lengths: list[int] = [20, 40, 80, 120],  # noqa: B006  (copied, never mutated)
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        check_at_least("CopyTask", "bits", bits, 1)
        self.bits = bits
        self.set_difficulty(min_length=min_length, max_length=max_length, test_lengths=test_lengths)
        self.input_size, self.output_size = bits + 1, bits

    def generate(self, generator: torch.Generator, batch_size: int, min_length: int = 1, max_length: int = 20) -> Batch:
        """One batch, L uniform in ``[min_length, max_length]``: input ``[B, 2L+1, W+1]``, target ``[B, 2L+1, W]``."""
        B, W = batch_size, self.bits
        L = _draw_int(generator, min_length, max_length)
        T = 2 * L + 1
        seq = _random_bits(generator, B, L, W)  # [B, L, W]
        x = torch.zeros(B, T, W + 1)
        x[:, :L, :W] = seq
        x[:, L, W] = 1.0  # delimiter
        y = torch.zeros(B, T, W)
        y[:, L + 1 :] = seq
        mask = torch.zeros(B, T)
        mask[:, L + 1 :] = 1.0
        return {"input": x, "target": y, "mask": mask}


# -- 2. repeat copy --------------------------------------------------------------------------


@register(kind="task")
class RepeatCopyTask(SequenceTask):
    """Repeat copy: read L vectors and a repeat count R, then write the vectors R times and an end marker.

    Step layout (T = L + 1 + L*R + 1): steps ``0..L-1`` hold the vectors on channels
    ``0..W-1``; step ``L`` holds a delimiter (1.0) on channel ``W`` and the normalised repeat
    count ``R / repeat_scale`` on channel ``W+1``; the remaining ``L*R + 1`` steps are blank
    inputs and are scored: their targets are the vectors repeated R times, then one step
    with only the end marker (channel ``W`` of the output) set. I = W + 2, O = W + 1.

    ``repeat_scale`` is fixed at construction (default: the constructor's ``max_repeats``), so
    the encoding of R does not move when a curriculum raises ``max_repeats``; test sets with
    more repeats than training give values above 1.

    Args:
        bits: W, bits per vector.
        min_length: shortest training sequence (L is uniform per batch).
        max_length: longest training sequence.
        min_repeats: fewest training repeats (R is uniform in ``[min_repeats, max_repeats]`` per batch).
        max_repeats: most training repeats.
        repeat_scale: the repeat count is given to the model as ``R / repeat_scale``; None means ``max_repeats``.
        test_lengths: test set lengths, paired with ``test_repeats`` (named ``"len{L}_rep{R}"``).
        test_repeats: test set repeat counts, one per entry of ``test_lengths``.
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.

    >>> batch = RepeatCopyTask(bits=2, min_length=2, max_length=2, min_repeats=3, max_repeats=3).example_batch()
    >>> batch["input"].shape, batch["target"].shape, batch["input"][0, 2].tolist()
    (torch.Size([1, 10, 4]), torch.Size([1, 10, 3]), [0.0, 0.0, 1.0, 1.0])
    """

    difficulty = (
        Difficulty("length", tag="len", tests="test_lengths"),
        Difficulty("repeats", tag="rep", tests="test_repeats"),
    )

    def __init__(
        self,
        bits: int = 8,
        min_length: int = 1,
        max_length: int = 10,
        min_repeats: int = 1,
        max_repeats: int = 10,
        repeat_scale: Optional[float] = None,
        test_lengths: list[int] = [10, 20, 10],  # noqa: B006  (copied, never mutated)
        test_repeats: list[int] = [10, 10, 20],  # noqa: B006
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        check_at_least("RepeatCopyTask", "bits", bits, 1)
        self.bits = bits
        self.set_difficulty(
            min_length=min_length, max_length=max_length, min_repeats=min_repeats, max_repeats=max_repeats,
            test_lengths=test_lengths, test_repeats=test_repeats,
        )
        if repeat_scale is not None and repeat_scale <= 0:
            raise ConfigError(
                f"RepeatCopyTask: repeat_scale ({repeat_scale}) must be positive; "
                "set it to the largest training repeat count or leave it None."
            )
        self.repeat_scale = float(max_repeats if repeat_scale is None else repeat_scale)
        self.input_size, self.output_size = bits + 2, bits + 1

    def generate(
        self,
        generator: torch.Generator,
        batch_size: int,
        min_length: int = 1,
        max_length: int = 10,
        min_repeats: int = 1,
        max_repeats: int = 10,
    ) -> Batch:
        """One batch with L and R drawn per batch: input ``[B, T, W+2]``, target ``[B, T, W+1]``, T = L(R+1) + 2."""
        B, W = batch_size, self.bits
        L = _draw_int(generator, min_length, max_length)
        R = _draw_int(generator, min_repeats, max_repeats)
        T = L + 1 + L * R + 1
        seq = _random_bits(generator, B, L, W)  # [B, L, W]
        x = torch.zeros(B, T, W + 2)
        x[:, :L, :W] = seq
        x[:, L, W] = 1.0  # delimiter
        x[:, L, W + 1] = R / self.repeat_scale  # normalised repeat count
        y = torch.zeros(B, T, W + 1)
        y[:, L + 1 : T - 1, :W] = seq.repeat(1, R, 1)  # [B, L*R, W]: the L vectors, R times over
        y[:, T - 1, W] = 1.0  # end marker
        mask = torch.zeros(B, T)
        mask[:, L + 1 :] = 1.0
        return {"input": x, "target": y, "mask": mask}


# -- 3. associative recall -------------------------------------------------------------------


@register(kind="task")
class AssociativeRecallTask(SequenceTask):
    """Associative recall: after K items, given one item (the query), write the item that followed it.

    An item is ``item_length`` vectors of W bits. Step layout: K blocks of one item-delimiter
    step (channel ``W``) followed by the item's vectors; one query-delimiter step (channel
    ``W+1``); the query item (a copy of item q, q uniform in ``0..K-2`` per sequence); one
    query-delimiter step; ``item_length`` blank output steps, scored, whose target is item
    ``q+1``. T = K (item_length + 1) + 2 item_length + 2. I = W + 2, O = W. Items are drawn
    independently, so two may coincide (with probability about ``K^2 2^-(W item_length)``).

    Args:
        bits: W, bits per vector.
        item_length: vectors per item.
        min_items: fewest training items (K is uniform in ``[min_items, max_items]`` per batch); at least 2.
        max_items: most training items.
        test_items: one test set per item count (named ``"items{K}"``).
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.

    >>> batch = AssociativeRecallTask(bits=2, item_length=1, min_items=2, max_items=2).example_batch()
    >>> batch["input"].shape, batch["mask"][0].tolist()
    (torch.Size([1, 8, 4]), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    """

    difficulty = (Difficulty("items", tag="items", tests="test_items", low=2),)

    def __init__(
        self,
        bits: int = 6,
        item_length: int = 3,
        min_items: int = 2,
        max_items: int = 6,
        test_items: list[int] = [6, 12, 20],  # noqa: B006  (copied, never mutated)
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        check_at_least("AssociativeRecallTask", "bits", bits, 1)
        check_at_least("AssociativeRecallTask", "item_length", item_length, 1)
        self.bits, self.item_length = bits, item_length
        self.set_difficulty(min_items=min_items, max_items=max_items, test_items=test_items)
        self.input_size, self.output_size = bits + 2, bits

    def generate(self, generator: torch.Generator, batch_size: int, min_items: int = 2, max_items: int = 6) -> Batch:
        """One batch with K drawn per batch: input ``[B, T, W+2]``, target ``[B, T, W]``."""
        B, W, S = batch_size, self.bits, self.item_length
        K = _draw_int(generator, min_items, max_items)
        items = _random_bits(generator, B, K, S, W)  # [B, K, S, W]
        q = torch.randint(0, K - 1, (B,), generator=generator)  # query item index, 0..K-2
        rows = torch.arange(B)
        query, answer = items[rows, q], items[rows, q + 1]  # [B, S, W] each

        blocks = torch.zeros(B, K, S + 1, W + 2)
        blocks[:, :, 0, W] = 1.0  # item delimiter before each item
        blocks[:, :, 1:, :W] = items
        story = blocks.reshape(B, K * (S + 1), W + 2)  # [B, K, S+1, I] -> [B, K(S+1), I], items in order
        start = K * (S + 1)  # first query-delimiter step
        out = start + S + 2  # first output step
        T = out + S
        x = torch.zeros(B, T, W + 2)
        x[:, :start] = story
        x[:, start, W + 1] = 1.0
        x[:, start + 1 : start + 1 + S, :W] = query
        x[:, start + 1 + S, W + 1] = 1.0
        y = torch.zeros(B, T, W)
        y[:, out:] = answer
        mask = torch.zeros(B, T)
        mask[:, out:] = 1.0
        return {"input": x, "target": y, "mask": mask}


# -- 5. priority sort (4, dynamic N-grams, is in mannkit.tasks.ngrams) ------------------------------------------------------------------------


@register(kind="task")
class PrioritySortTask(SequenceTask):
    """Priority sort: read vectors with scalar priorities, then write the highest-priority ones in order.

    Step layout (T = N + 1 + K): steps ``0..N-1`` hold a random vector on channels
    ``0..W-1`` and its priority, uniform in [-1, 1], on channel ``W``; step ``N`` holds the
    delimiter on channel ``W+1``; the K remaining steps are blank, scored, and their targets
    are the K highest-priority vectors from highest priority down. I = W + 2, O = W.

    A test set with ``n`` inputs keeps the training ratio of outputs to inputs:
    ``K = max(1, n * num_outputs // num_inputs)`` (so 40 inputs give 32 outputs with the
    defaults); it is fixed at construction and named ``"in{n}_out{K}"``.

    Args:
        bits: W, bits per vector.
        num_inputs: N, vectors to read in training.
        num_outputs: K, vectors to write in training; at most ``num_inputs``.
        test_inputs: one test set per input count.
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.
    """

    difficulty = (
        Difficulty("num_inputs", tag="in", tests="test_inputs", ranged=False),
        Difficulty("num_outputs", tag="out", tests="test_outputs", at_most="num_inputs", ranged=False, plotted=False),
    )

    def __init__(
        self,
        bits: int = 8,
        num_inputs: int = 20,
        num_outputs: int = 16,
        test_inputs: list[int] = [20, 40],  # noqa: B006  (copied, never mutated)
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        check_at_least("PrioritySortTask", "bits", bits, 1)
        self.bits = bits
        # the test sets keep the training ratio of outputs to inputs
        test_outputs = [max(1, n * num_outputs // max(1, num_inputs)) for n in test_inputs]
        self.set_difficulty(
            num_inputs=num_inputs, num_outputs=num_outputs, test_inputs=test_inputs, test_outputs=test_outputs
        )
        self.input_size, self.output_size = bits + 2, bits

    def generate(
        self, generator: torch.Generator, batch_size: int, num_inputs: int = 20, num_outputs: int = 16
    ) -> Batch:
        """One batch: input ``[B, N+1+K, W+2]``, target ``[B, N+1+K, W]``."""
        B, W, N, K = batch_size, self.bits, num_inputs, num_outputs
        vectors = _random_bits(generator, B, N, W)  # [B, N, W]
        priority = torch.rand(B, N, generator=generator) * 2.0 - 1.0  # uniform in [-1, 1]: [B, N]
        top = priority.argsort(dim=1, descending=True)[:, :K]  # indices of the K highest: [B, K]
        ranked = vectors.gather(1, top.unsqueeze(2).expand(B, K, W))  # [B, K, W]
        T = N + 1 + K
        x = torch.zeros(B, T, W + 2)
        x[:, :N, :W] = vectors
        x[:, :N, W] = priority
        x[:, N, W + 1] = 1.0  # delimiter
        y = torch.zeros(B, T, W)
        y[:, N + 1 :] = ranked
        mask = torch.zeros(B, T)
        mask[:, N + 1 :] = 1.0
        return {"input": x, "target": y, "mask": mask}
