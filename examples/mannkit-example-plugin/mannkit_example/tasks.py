"""A generated task: majority vote over a sequence of bit vectors.

Shape letters: B batch, T time, L sequence length, W bits per vector.

>>> batch = MajorityTask(bits=3, min_length=3, max_length=3).example_batch(2)
>>> tuple(batch["input"].shape), tuple(batch["target"].shape), batch["mask"][0].tolist()
((2, 5, 4), (2, 5, 3), [0.0, 0.0, 0.0, 0.0, 1.0])
"""

from __future__ import annotations

import torch

from mannkit import ConfigError, register
from mannkit.tasks import Batch, Difficulty, SequenceTask

__all__ = ["MajorityTask", "majority"]


def majority(bits: torch.Tensor) -> torch.Tensor:
    """Each bit's majority over the sequence: ``bits [B, L, W]`` (0/1) -> ``[B, W]``, 1 where more than half are 1."""
    return (2 * bits.sum(dim=1) > bits.shape[1]).to(bits.dtype)  # a tie (even L) gives 0


@register
class MajorityTask(SequenceTask):
    """Majority vote: read L random bit vectors, then a delimiter; answer each bit's majority over the L vectors.

    Input ``[B, T, W + 1]`` (the last channel is the delimiter), target ``[B, T, W]`` with the
    answer at the last step only, which is the only scored step (``mask [B, T]``); T = L + 2. L is
    drawn per batch between ``min_length`` and ``max_length``; a tie (even L) answers 0. The model
    must count along the sequence, so a memory helps as L grows. Binary cross-entropy (the default
    ``loss``); one test set per entry of ``test_lengths``, named ``len{L}``.

    Args:
        bits: W, bits per vector.
        min_length: shortest training sequence.
        max_length: longest training sequence.
        test_lengths: one test set per length.
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.
    """

    difficulty = (Difficulty("length", tag="len", tests="test_lengths"),)

    def __init__(
        self,
        bits: int = 6,
        min_length: int = 1,
        max_length: int = 9,
        test_lengths: list[int] = [9, 19],  # noqa: B006  (the CLI reads defaults from the signature)
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
            raise ConfigError(f"MajorityTask: bits must be a positive integer, got {bits!r}; set bits to 1 or more.")
        self.bits = bits
        self.input_size, self.output_size = bits + 1, bits
        self.set_difficulty(min_length=min_length, max_length=max_length, test_lengths=test_lengths)

    def generate(self, generator: torch.Generator, batch_size: int, min_length: int = 1, max_length: int = 9) -> Batch:
        """One batch of ``batch_size`` sequences of one length L, drawn from ``generator`` only."""
        B, W = batch_size, self.bits
        L = int(torch.randint(min_length, max_length + 1, (1,), generator=generator))
        bits = torch.randint(0, 2, (B, L, W), generator=generator).float()  # [B, L, W]
        x = torch.zeros(B, L + 2, W + 1)
        x[:, :L, :W] = bits
        x[:, L, W] = 1.0  # the delimiter
        target = torch.zeros(B, L + 2, W)
        target[:, L + 1] = majority(bits)  # the answer step
        mask = torch.zeros(B, L + 2)
        mask[:, L + 1] = 1.0
        return {"input": x, "target": target, "mask": mask}
