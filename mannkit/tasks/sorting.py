"""Sorting: read vectors with distinct keys, then write every one of them back in ascending key order.

Shape letters: B batch, T time, I input width, O output width, W bits per vector (``bits``),
N items.

Unlike :class:`~mannkit.tasks.PrioritySortTask`, which writes only the K highest-priority vectors
from a scalar priority, :class:`SortTask` writes all N vectors, and its keys are distinct integers
(given on one scalar channel), so the order is always defined and neighbouring keys differ by a
known margin.

>>> from mannkit.tasks import SortTask
>>> task = SortTask(bits=4, min_items=2, max_items=5, key_space=16, test_items=[8, 12])
>>> task.input_size, task.output_size, task.test_set_names
(6, 4, ['items8', 'items12'])
"""

from __future__ import annotations

import torch
from torch import Tensor

from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.tasks.base import Batch, SequenceTask
from mannkit.tasks.difficulty import Difficulty, check_at_least

__all__ = ["SortTask", "sort_by_key"]


def sort_by_key(vectors: Tensor, keys: Tensor) -> Tensor:
    """The vectors of each sequence in ascending order of their keys.

    Args:
        vectors: ``[B, N, W]``.
        keys: ``[B, N]`` distinct per sequence (ties would keep no defined order).

    Returns:
        ``[B, N, W]``: row i of sequence b is the vector with the i-th smallest key.

    >>> sort_by_key(torch.tensor([[[1., 0], [0, 1], [1, 1]]]), torch.tensor([[2, 0, 1]])).tolist()
    [[[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]]
    """
    check_shape(vectors, ("B", "N", "W"), "vectors")
    B, N, W = vectors.shape
    check_shape(keys, (B, N), "keys", fix="keys must be [B, N], one key per vector")
    order = keys.argsort(dim=1)  # [B, N]: the index of the i-th smallest key
    return vectors.gather(1, order.unsqueeze(2).expand(B, N, W))


@register(kind="task")
class SortTask(SequenceTask):
    """Sort: read N vectors, each with a distinct integer key, then write all N in ascending key order.

    The keys of a sequence are N distinct integers drawn uniformly from ``0..key_space-1``; key k
    is given as ``(k + 1) / key_space`` (in ``(0, 1]``, neighbours at least ``1 / key_space``
    apart, and never 0, the value of a blank channel). Step layout (T = 2N + 1): steps ``0..N-1``
    hold a random vector on channels ``0..W-1`` and its key on channel ``W``; step ``N`` holds the
    delimiter on channel ``W+1``; the N remaining steps are blank, scored, and their targets are
    the N vectors in ascending key order (:func:`sort_by_key`). I = W + 2, O = W. N is drawn per
    batch, uniform in ``[min_items, max_items]``.

    Args:
        bits: W, bits per vector.
        min_items: fewest items in training (N is uniform in ``[min_items, max_items]`` per batch).
        max_items: most items in training; a curriculum may raise it (up to ``key_space``).
        key_space: keys are distinct integers below this; at least ``max_items`` and every test size.
        test_items: one test set per item count (named ``"items{N}"``).
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.

    >>> batch = SortTask(bits=3, min_items=4, max_items=4).example_batch(batch_size=2)
    >>> batch["input"].shape, batch["target"].shape, batch["mask"][0].tolist()
    (torch.Size([2, 9, 5]), torch.Size([2, 9, 3]), [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    """

    difficulty = (Difficulty("items", tag="items", tests="test_items", at_most="key_space"),)

    def __init__(
        self,
        bits: int = 8,
        min_items: int = 2,
        max_items: int = 8,
        key_space: int = 32,
        test_items: list[int] = [8, 16, 24],  # noqa: B006  (copied, never mutated)
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        check_at_least("SortTask", "bits", bits, 1)
        check_at_least("SortTask", "key_space", key_space, 1)
        self.bits, self.key_space = bits, key_space
        self.set_difficulty(min_items=min_items, max_items=max_items, test_items=test_items)
        self.input_size, self.output_size = bits + 2, bits

    def generate(self, generator: torch.Generator, batch_size: int, min_items: int = 2, max_items: int = 8) -> Batch:
        """One batch with N drawn per batch: input ``[B, 2N+1, W+2]``, target ``[B, 2N+1, W]``."""
        B, W = batch_size, self.bits
        N = int(torch.randint(min_items, max_items + 1, (1,), generator=generator).item())
        keys = torch.rand(B, self.key_space, generator=generator).argsort(dim=1)[:, :N]  # N distinct keys: [B, N]
        vectors = torch.randint(0, 2, (B, N, W), generator=generator).float()  # [B, N, W]
        T = 2 * N + 1
        x = torch.zeros(B, T, W + 2)
        x[:, :N, :W] = vectors
        x[:, :N, W] = (keys.float() + 1.0) / self.key_space  # key k as (k + 1) / key_space
        x[:, N, W + 1] = 1.0  # delimiter
        y = torch.zeros(B, T, W)
        y[:, N + 1 :] = sort_by_key(vectors, keys)
        mask = torch.zeros(B, T)
        mask[:, N + 1 :] = 1.0
        return {"input": x, "target": y, "mask": mask}
