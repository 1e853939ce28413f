"""N-th farthest (Santoro et al. 2018, sec. 4.1): which vector is the n-th farthest from vector m?

Shape letters: B batch, T time (= K objects), I input width, O output width (classes), K objects of
a sequence, S label space (the widest one-hot of a label, n or m), d vector dimensions.

A sequence shows K labelled vectors, one per step; every step also carries the question (n and m),
as in the paper. After the last step the model names the label of the vector that is the n-th
farthest from the vector labelled m, by Euclidean distance (n = 1 the farthest, n = K the vector m
itself, at distance 0). Object t is labelled t.

Step t's input is ``[v_t (d); one_hot(t) (S); one_hot(n - 1) (S); one_hot(m) (S)]``: I = d + 3S.
The target is a class id in ``0..S-1`` at the last step (``loss = "ce"``), the only scored step.

A note on the public dataset generator that came with the paper's Sonnet example: it sorts the
distances in ascending order and indexes that order with n, so its n = 0 answer is the reference
vector itself and its labels ask for the n-th *nearest* vector. Here the distances are sorted in
descending order and n counts from 1, so the answer is the n-th farthest, as the paper states.

>>> task = NthFarthestTask(label_space=4, dims=4, min_objects=4, max_objects=4, test_objects=[4])
>>> batch = task.example_batch(batch_size=2)
>>> batch["input"].shape, batch["target"].shape, batch["mask"][0].tolist(), task.output_size
(torch.Size([2, 4, 16]), torch.Size([2, 4]), [0.0, 0.0, 0.0, 1.0], 4)
"""

from __future__ import annotations

import torch
from torch.nn.functional import one_hot

from mannkit.core.registry import register
from mannkit.tasks.base import Batch, SequenceTask
from mannkit.tasks.difficulty import Difficulty, check_at_least

__all__ = ["NthFarthestTask", "nth_farthest"]


def nth_farthest(vectors: torch.Tensor, n: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The index of the n-th farthest vector from vector m, for each sequence.

    Args:
        vectors: ``[B, K, d]``.
        n: int64 ``[B]`` in ``1..K`` (1: the farthest, K: m itself).
        m: int64 ``[B]`` in ``0..K-1``.

    Returns:
        int64 ``[B]``.

    >>> v = torch.tensor([[[0.0], [3.0], [1.0], [-2.0]]])  # distances from v_0: 0, 3, 1, 2
    >>> [nth_farthest(v, torch.tensor([n]), torch.tensor([0])).item() for n in (1, 2, 3, 4)]
    [1, 3, 2, 0]
    """
    reference = vectors.gather(1, m.view(-1, 1, 1).expand(-1, 1, vectors.shape[-1]))  # v_m: [B, 1, d]
    distances = (vectors - reference).norm(dim=-1)  # ||v_i - v_m||: [B, K]
    order = distances.argsort(dim=-1, descending=True)  # farthest first: [B, K]
    return order.gather(1, (n - 1).unsqueeze(1)).squeeze(1)  # the n-th entry, n from 1: [B]


@register(kind="task")
class NthFarthestTask(SequenceTask):
    """N-th farthest: K labelled d-dimensional vectors, then the label of the n-th farthest from vector m.

    Vectors are uniform in ``[-1, 1]^d``; n is uniform in ``1..K`` and m in ``0..K-1``, per sequence;
    K is drawn per batch, uniform in ``[min_objects, max_objects]``. T = K; only the last step is
    scored, with a categorical loss over the S labels. The paper's setting is 8 vectors of 16
    dimensions; 4 vectors of 4 dimensions is a size that trains on a CPU.

    Args:
        label_space: S, the width of the label, n and m one-hots (and the number of classes); at least
            ``max_objects`` and every test size.
        dims: d, the dimensions of a vector.
        min_objects: fewest vectors of a training sequence (at least 2).
        max_objects: most vectors of a training sequence; a curriculum may raise it.
        test_objects: one test set per number of vectors (named ``obj{K}``).
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.
    """

    loss = "ce"
    difficulty = (Difficulty("objects", tag="obj", tests="test_objects", low=2, at_most="label_space"),)

    def __init__(
        self,
        label_space: int = 8,
        dims: int = 16,
        min_objects: int = 8,
        max_objects: int = 8,
        test_objects: list[int] = [8],  # noqa: B006  (copied, never mutated)
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        check_at_least("NthFarthestTask", "label_space", label_space, 2)
        check_at_least("NthFarthestTask", "dims", dims, 1)
        self.label_space, self.dims = label_space, dims
        self.set_difficulty(min_objects=min_objects, max_objects=max_objects, test_objects=test_objects)
        self.input_size, self.output_size = dims + 3 * label_space, label_space

    def generate(self, generator: torch.Generator, batch_size: int, min_objects: int = 8, max_objects: int = 8) -> Batch:
        """One batch of K vectors per sequence, K drawn once for the batch."""
        B, S, d = batch_size, self.label_space, self.dims
        K = int(torch.randint(min_objects, max_objects + 1, (1,), generator=generator))
        vectors = torch.rand(B, K, d, generator=generator) * 2 - 1  # uniform in [-1, 1]: [B, K, d]
        n = torch.randint(1, K + 1, (B,), generator=generator)  # [B], 1..K
        m = torch.randint(0, K, (B,), generator=generator)  # [B], 0..K-1
        labels = one_hot(torch.arange(K), S).float().expand(B, K, S)  # object t labelled t: [B, K, S]
        question = torch.cat([one_hot(n - 1, S), one_hot(m, S)], dim=-1).float()  # [B, 2S]
        x = torch.cat([vectors, labels, question.unsqueeze(1).expand(B, K, 2 * S)], dim=-1)  # [B, T=K, d + 3S]
        target = torch.zeros(B, K, dtype=torch.long)  # class ids [B, T]; only the last step is scored
        target[:, -1] = nth_farthest(vectors, n, m)
        mask = torch.zeros(B, K)
        mask[:, -1] = 1.0
        return {"input": x, "target": target, "mask": mask}
