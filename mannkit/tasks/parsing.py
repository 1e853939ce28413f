"""Recognising a context-free language: Dyck words (balanced brackets of 1 to n kinds), predicted step by step.

Shape letters: B batch, T time (the string's length, even), n bracket kinds.

A string of ``2m`` brackets is read one bracket per step (one-hot over ``2n`` characters: opening
bracket k on channel k, closing bracket k on channel n + k). After each step the model predicts,
as ``n + 1`` bits (``loss = "bce"``), which closing bracket may come next (bit k: the innermost
open bracket is of kind k, so only its closing bracket is allowed) and whether the string read so
far is complete (bit n: nothing is open). Every step of the string is scored; the per-sequence
accuracy is the share of strings with every bit of every step right. The set of allowed next
characters is then "any opening bracket, plus the closing bracket the bits name" (Suzgun et al.
2019's formulation; a stack solves it exactly, a counter does not for n > 1).

Lengths are drawn per string (even, uniformly in ``[min_length, max_length]``, an odd bound is
rounded towards the inside); shorter strings of a batch are padded with unscored steps. The
nesting depth never exceeds ``depth``: a string opens a bracket with probability
``open_probability`` while the depth and the steps left allow it. Longer test strings with a
larger ``depth`` bound nest deeper than any training string.

>>> task = DyckTask(kinds=2, min_length=4, max_length=4, depth=2, batch_size=1)
>>> batch = task.example_batch(1)
>>> batch["input"].shape, batch["target"].shape, bool(batch["target"][0, -1, -1])   # complete at the end
(torch.Size([1, 4, 4]), torch.Size([1, 4, 3]), True)
"""

from __future__ import annotations

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.registry import register
from mannkit.tasks.base import Batch, SequenceTask
from mannkit.tasks.difficulty import Difficulty, check_at_least

__all__ = ["DyckTask", "dyck_targets"]


def dyck_targets(characters: Tensor, kinds: int) -> Tensor:
    """The bits to predict after each character: ``characters [B, T]`` (0..2n-1) -> ``[B, T, n + 1]`` float.

    Bit k (< n): the innermost open bracket is of kind k; bit n: nothing is open. A stack of kinds,
    run over time, vectorised over B.

    >>> dyck_targets(torch.tensor([[0, 1, 3, 2]]), kinds=2).tolist()   # ( [ ] )
    [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]
    """
    B, T = characters.shape
    stack = torch.zeros(B, T + 1, dtype=torch.long)  # open kinds, bottom first
    depth = torch.zeros(B, dtype=torch.long)
    rows = torch.arange(B)
    bits = torch.zeros(B, T, kinds + 1)
    for t in range(T):  # time, not batch
        c = characters[:, t]
        opening = c < kinds
        stack[rows, depth] = torch.where(opening, c, stack[rows, depth])
        depth = depth + opening.long() - (~opening).long()
        depth = depth.clamp(min=0)
        top = stack[rows, (depth - 1).clamp(min=0)]
        bits[:, t] = torch.where((depth > 0).unsqueeze(1), torch.nn.functional.one_hot(top, kinds + 1).float(), 0.0)
        bits[:, t, kinds] = (depth == 0).float()
    return bits


@register(kind="task")
class DyckTask(SequenceTask):
    """Dyck-n recognition: predict the allowed closing bracket and completeness after each bracket (see the module).

    I = 2n, O = n + 1 bits; training lengths up to 50, test up to 100 with a deeper bound.

    Args:
        kinds: n, the bracket kinds (Dyck-1 is balanced parentheses).
        min_length: shortest training string (at least 2).
        max_length: longest training string.
        depth: the deepest nesting a training string may reach.
        test_lengths: the length of each test set's strings (one entry per test set).
        test_depths: the nesting bound of each test set (one entry per test set, like ``test_lengths``).
        open_probability: the chance of opening a bracket when both opening and closing are allowed.
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.
    """

    difficulty = (
        Difficulty("length", tag="len", tests="test_lengths", low=2),
        Difficulty("depth", tag="depth", tests="test_depths", ranged=False),
    )

    def __init__(self, kinds: int = 2, min_length: int = 2, max_length: int = 50, depth: int = 10,
                 test_lengths: list[int] = [50, 76, 100], test_depths: list[int] = [10, 15, 20],
                 open_probability: float = 0.5, batch_size: int = 16, train_batches: int = 1000,
                 val_batches: int = 8, test_batches: int = 8, seed: int = 0) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        check_at_least("DyckTask", "kinds", kinds, 1)
        if not 0.0 < open_probability < 1.0:
            raise ConfigError(
                f"DyckTask: open_probability must be between 0 and 1 (exclusive), got {open_probability!r}; use e.g. 0.5."
            )
        self.kinds, self.open_probability = kinds, open_probability
        self.set_difficulty(min_length=min_length, max_length=max_length, depth=depth,
                            test_lengths=test_lengths, test_depths=test_depths)
        self.input_size, self.output_size = 2 * kinds, kinds + 1

    def generate(self, generator: torch.Generator, batch_size: int, min_length: int = 2, max_length: int = 50,
                 depth: int = 10) -> Batch:
        low, high = (min_length + 1) // 2, max(max_length // 2, (min_length + 1) // 2)
        lengths = 2 * torch.randint(low, high + 1, (batch_size,), generator=generator)  # even, [B]
        T = int(lengths.max())
        opens = torch.rand(batch_size, T, generator=generator) < self.open_probability  # [B, T]
        kinds = torch.randint(0, self.kinds, (batch_size, T), generator=generator)  # kind of each opening
        stack = torch.zeros(batch_size, T + 1, dtype=torch.long)
        level = torch.zeros(batch_size, dtype=torch.long)
        rows = torch.arange(batch_size)
        characters = torch.zeros(batch_size, T, dtype=torch.long)
        for t in range(T):  # a random walk that returns to 0 at each string's end; time, not batch
            left = lengths - t  # steps left, including this one
            can_open = (level < depth) & (level + 1 <= left - 1)
            open_now = can_open & ((level == 0) | opens[:, t])
            stack[rows, level] = torch.where(open_now, kinds[:, t], stack[rows, level])
            top = stack[rows, (level - 1).clamp(min=0)]
            characters[:, t] = torch.where(open_now, kinds[:, t], self.kinds + top)
            level = torch.where(open_now, level + 1, (level - 1).clamp(min=0))
        scored = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
        characters = torch.where(scored, characters, torch.zeros_like(characters))
        x = torch.nn.functional.one_hot(characters, 2 * self.kinds).float() * scored.unsqueeze(-1)
        return {"input": x, "target": dyck_targets(characters, self.kinds) * scored.unsqueeze(-1), "mask": scored.float()}
