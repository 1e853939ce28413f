"""Dynamic N-grams (Graves, Wayne and Danihelka, 2014, sec. 4.4): predict each next bit of a random N-gram sequence.

Shape letters: B batch, T time, L bits per sequence, n the N of the N-grams.

>>> from mannkit.tasks import DynamicNGramsTask
>>> DynamicNGramsTask(n=3, length=20, test_lengths=[20, 50]).test_set_names
['len20', 'len50']
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.tasks.base import Batch, SequenceTask
from mannkit.tasks.difficulty import Difficulty, check_at_least

__all__ = ["DynamicNGramsTask", "ngram_bayes_optimal_bits"]


def ngram_bayes_optimal_bits(bits: Tensor, n: int) -> Tensor:
    """Cost in bits of the optimal Bayesian predictor of bits ``1..L-1`` of each sequence.

    The sequence's first ``n-1`` bits are fair coin flips; every later bit t is 1 with a
    probability that depends only on its context c (the ``n-1`` bits before it), drawn once
    per sequence from Beta(1/2, 1/2). The predictor that knows this, having seen the
    sequence up to bit t-1, predicts ``P(bit t = 1) = (N1(c) + 1/2) / (N0(c) + N1(c) + 1)``,
    where N0(c) and N1(c) count earlier bits s >= n-1 with context c that were 0 and 1 (the
    Beta posterior mean); for t < n-1 it predicts 1/2 (one bit each). Bit 0 is not scored.

    Args:
        bits: ``[B, L]`` 0/1 values (any dtype).
        n: the N of the N-grams (contexts are ``n-1`` bits long).

    Returns:
        ``[B]`` float64: the summed ``-log2 P(bit t)`` over t = 1..L-1.

    >>> ngram_bayes_optimal_bits(torch.tensor([[0, 1, 1, 1]]), n=2)  # P(bit) = 1/2, 1/2, then 3/4
    tensor([2.4150], dtype=torch.float64)
    """
    check_shape(bits, ("B", "L"), "bits")
    if n < 1:
        raise ConfigError(f"ngram_bayes_optimal_bits: n ({n}) must be at least 1; pass the N of the N-grams.")
    B, L = bits.shape
    m = n - 1  # context length
    b = bits.long()
    # ctx[:, t] = bits t-m..t-1 as an integer, the newest bit least significant (for t >= m).
    ctx = torch.zeros(B, L, dtype=torch.long)
    for j in range(m):
        ctx[:, m:] |= b[:, m - 1 - j : L - 1 - j] << j
    # One-hot of (context, bit) per step, only for steps drawn from the table (t >= m).
    onehot = torch.zeros(B, L, 2 ** (m + 1), dtype=torch.float64)
    onehot.scatter_(2, (2 * ctx + b).unsqueeze(2), 1.0)
    onehot[:, :m] = 0.0
    seen = onehot.cumsum(dim=1) - onehot  # counts strictly before step t: [B, L, 2^n]
    n0 = seen.gather(2, (2 * ctx).unsqueeze(2)).squeeze(2)  # N0(c_t): [B, L]
    n1 = seen.gather(2, (2 * ctx + 1).unsqueeze(2)).squeeze(2)  # N1(c_t)
    p1 = (n1 + 0.5) / (n0 + n1 + 1.0)  # Beta(1/2, 1/2) posterior mean
    p1[:, :m] = 0.5  # no full context yet: the bit is a fair coin
    p = torch.where(b.bool(), p1, 1.0 - p1)
    cost = -torch.log2(p)
    return cost[:, 1:].sum(dim=1)


@register(kind="task")
class DynamicNGramsTask(SequenceTask):
    """Dynamic N-grams: predict each next bit of a sequence drawn from a random N-gram table.

    Per sequence, a table of ``2^(n-1)`` probabilities ``P(next bit = 1 | previous n-1 bits)``
    is drawn from Beta(1/2, 1/2) (as ``sin(pi u / 2)^2`` with u uniform, its inverse CDF);
    the first ``n-1`` bits are fair coin flips and the rest follow the table. With a sequence
    of ``length`` bits, T = length - 1: the input at step t is bit t (I = 1) and the target is
    bit t+1 (O = 1). Every step is scored, including the first ``n-1`` whose context is
    incomplete; ``"reference_bits"`` ``[B]`` holds the cost of the optimal Bayesian predictor
    on the same targets (see :func:`ngram_bayes_optimal_bits`), so a model's bits per
    sequence minus it is its excess cost.

    Args:
        n: the N of the N-grams (contexts of ``n-1`` bits); 1 to 16.
        length: bits per training sequence (T = length - 1); at least ``max(2, n)``.
        test_lengths: one test set per sequence length (named ``"len{length}"``).
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.

    >>> batch = DynamicNGramsTask(n=3, length=10).example_batch(batch_size=2)
    >>> batch["input"].shape, batch["reference_bits"].shape
    (torch.Size([2, 9, 1]), torch.Size([2]))
    """

    difficulty = (Difficulty("length", tag="len", tests="test_lengths", low=2, ranged=False),)

    def __init__(
        self,
        n: int = 6,
        length: int = 200,
        test_lengths: list[int] = [200, 1000],  # noqa: B006  (copied, never mutated)
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        check_at_least("DynamicNGramsTask", "n", n, 1)
        if n > 16:
            raise ConfigError(
                f"DynamicNGramsTask: n ({n}) must be at most 16 (the table has 2^(n-1) entries); lower n."
            )
        self.n = n
        self.set_difficulty(length=length, test_lengths=test_lengths)
        for value in self.test_lengths:
            self._check_length(value, "test_lengths")
        self.input_size, self.output_size = 1, 1

    def check_difficulty(self, difficulty: dict[str, Any]) -> None:
        """The declared checks, and a length of at least ``n`` (one full context)."""
        super().check_difficulty(difficulty)
        if "length" in difficulty:
            self._check_length(difficulty["length"], "length")

    def _check_length(self, length: int, name: str) -> None:
        low = max(2, self.n)
        if length < low:
            raise ConfigError(
                f"DynamicNGramsTask: {name} ({length}) must be at least max(2, n) = {low}; raise {name} or lower n."
            )

    def generate(self, generator: torch.Generator, batch_size: int, length: int = 200) -> Batch:
        """One batch: input and target ``[B, length-1, 1]``, mask ``[B, length-1]``, reference_bits ``[B]``."""
        B, m = batch_size, self.n - 1
        contexts = 2**m
        table = torch.sin(0.5 * math.pi * torch.rand(B, contexts, generator=generator)) ** 2  # Beta(1/2,1/2): [B, 2^m]
        draws = torch.rand(B, length, generator=generator)  # one uniform per bit: [B, length]
        bits = torch.zeros(B, length)
        bits[:, :m] = (draws[:, :m] < 0.5).float()  # the first n-1 bits are fair
        ctx = torch.zeros(B, dtype=torch.long)  # previous m bits, newest least significant
        for j in range(m):
            ctx = (ctx << 1) | bits[:, j].long()
        for t in range(m, length):  # the time loop; vectorised over the batch
            bit = draws[:, t] < table.gather(1, ctx.unsqueeze(1)).squeeze(1)
            bits[:, t] = bit.float()
            ctx = ((ctx << 1) | bit.long()) & (contexts - 1)
        return {
            "input": bits[:, :-1].unsqueeze(2),
            "target": bits[:, 1:].unsqueeze(2),
            "mask": torch.ones(B, length - 1),
            "reference_bits": ngram_bayes_optimal_bits(bits, self.n).float(),
        }
