"""The tasks of the MANN and plasticity papers: sequential Omniglot (Santoro et al. 2016) and pattern
memorisation and completion (Miconi et al. 2018), with accuracy by the n-th presentation of a class.

Shape letters: B batch, T time, C classes of an episode, P pixels (side x side) or pattern bits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn.functional import one_hot
from torchmetrics import Metric

from mannkit.core.registry import register
from mannkit.tasks.base import Batch, SequenceTask, make_generator
from mannkit.tasks.difficulty import check_at_least
from mannkit.tasks.omniglot import OmniglotSplits

__all__ = ["SequentialOmniglotTask", "PatternCompletionTask", "presentations", "accuracy_by_presentation", "PresentationAccuracy"]


def presentations(target: Tensor) -> Tensor:
    """``n[b, t]``: how many times ``target[b, t]``'s class has been shown up to and including step t (1 = first).

    >>> presentations(torch.tensor([[2, 0, 2, 2, 0]]))
    tensor([[1, 1, 2, 3, 2]])
    """
    same = target.unsqueeze(2) == target.unsqueeze(1)  # [B, T, T]: class at t equals class at s
    earlier = torch.ones(target.shape[1], target.shape[1], dtype=torch.bool, device=target.device).tril()  # s <= t
    return (same & earlier).sum(-1)


def accuracy_by_presentation(logits: Tensor, target: Tensor, max_presentation: int = 10) -> tuple[Tensor, Tensor]:
    """Correct predictions and counts at the 1st .. ``max_presentation``-th presentation: two ``[max_presentation]``.

    Args:
        logits: ``[B, T, C]``.
        target: ``[B, T]`` class ids.
    """
    n = presentations(target).flatten()  # [B*T]
    correct = (logits.argmax(-1) == target).flatten().to(torch.float64)
    keep = n <= max_presentation
    hits = torch.zeros(max_presentation, dtype=torch.float64, device=logits.device).index_add_(0, n[keep] - 1, correct[keep])
    counts = torch.zeros(max_presentation, dtype=torch.float64, device=logits.device).index_add_(0, n[keep] - 1, torch.ones_like(correct[keep]))
    return hits, counts


class PresentationAccuracy(Metric):
    """Accuracy at the n-th presentation of a class, n = 1 .. ``max_presentation`` (Santoro et al. 2016, table 1).

    >>> metric = PresentationAccuracy(3)
    >>> logits = torch.nn.functional.one_hot(torch.tensor([[1, 0, 0, 0]]), 2).float()  # predicts 1, 0, 0, 0
    >>> metric.update(logits, torch.tensor([[0, 0, 1, 0]]))
    >>> metric.compute()
    tensor([0., 1., 1.])
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, max_presentation: int = 10) -> None:
        super().__init__()
        self.max_presentation = max_presentation
        self.add_state("hits", torch.zeros(max_presentation, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", torch.zeros(max_presentation, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        hits, counts = accuracy_by_presentation(logits, target, self.max_presentation)
        self.hits += hits
        self.counts += counts

    def compute(self) -> Tensor:
        return (self.hits / self.counts.clamp_min(1)).float()


@register(kind="task")
class SequentialOmniglotTask(SequenceTask):
    """Episodes of Omniglot images whose label comes one step late (Santoro et al. 2016, section 4.1).

    An episode draws ``classes`` classes of its split (characters at 0/90/180/270 degrees) and ``samples``
    images of each, shuffled into T = classes x samples steps (50); labels 0..C-1 are assigned per episode.
    Step t's input is the image ``[P]`` and the one-hot label of step t-1 (zero at t = 0): ``[P + C]``; the
    target is step t's label (``ce``), scored at every step. Accuracy by presentation: ``PresentationAccuracy``.
    Training episodes come from the first ``train_characters`` characters; validation and test from the
    characters after them (see :class:`mannkit.tasks.OmniglotTask`).

    Args:
        data_dir: folder holding Omniglot's ``images_background`` and ``images_evaluation`` PNG folders.
        classes: C, classes per episode (5).
        samples: images per class in an episode (10).
        side: images are resized to side x side (20 in the paper).
        train_characters: characters of the training split (1200).
        val_characters: characters of the validation split; the rest test.
        batch_size: episodes per batch (B, 16 in the paper).
        train_batches: batches per training epoch.
        val_batches: batches in the fixed validation set.
        test_batches: batches in the fixed test set.
        seed: seed of every episode.
    """

    loss = "ce"

    def __init__(self, data_dir: str, classes: int = 5, samples: int = 10, side: int = 20, train_characters: int = 1200,
                 val_characters: int = 100, batch_size: int = 16, train_batches: int = 1000, val_batches: int = 8,
                 test_batches: int = 16, seed: int = 0) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        for name, value, low in (("classes", classes, 2), ("samples", samples, 1), ("side", side, 4)):
            check_at_least("SequentialOmniglotTask", name, value, low)
        self.classes, self.samples, self.side = classes, samples, side
        self.splits = OmniglotSplits(data_dir, train_characters, val_characters, side, samples, "SequentialOmniglotTask")
        for split in ("train", "val", "test"):
            self.splits.check_ways(split, classes)
        self.input_size, self.output_size = side * side + classes, classes

    def episodes(self, generator: torch.Generator, batch_size: int, split: str) -> Batch:
        pool = self.splits.classes(split)
        C, K = self.classes, self.samples
        T = C * K
        images, labels = [], []
        for _ in range(batch_size):
            chosen = torch.randperm(len(pool), generator=generator)[:C].tolist()
            drawn = torch.cat([pool[c][torch.randperm(pool[c].shape[0], generator=generator)[:K]] for c in chosen])  # [T, s, s]
            ids = torch.arange(C).repeat_interleave(K)  # [T]
            order = torch.randperm(T, generator=generator)
            images.append(drawn[order].flatten(1))  # [T, P]
            labels.append(ids[order])
        x, y = torch.stack(images), torch.stack(labels)  # [B, T, P], [B, T]
        previous = torch.cat([torch.zeros(batch_size, 1, C), one_hot(y[:, :-1], C).float()], dim=1)  # y_{t-1}: [B, T, C]
        return {"input": torch.cat([x, previous], dim=-1), "target": y, "mask": torch.ones(batch_size, T)}

    def generate(self, generator: torch.Generator, batch_size: int, **difficulty: Any) -> Batch:
        """Training episodes."""
        return self.episodes(generator, batch_size, "train")

    def _fixed_set(self, tag: str, count: int, difficulty: dict[str, Any]) -> list[Batch]:
        generator = make_generator(self.seed, tag)  # validation and test episodes come from their own characters
        split = "val" if tag == "val" else "test"
        return [self.episodes(generator, self.batch_size, split) for _ in range(count)]


@register(kind="task")
class PatternCompletionTask(SequenceTask):
    """Memorise a few binary patterns, then complete a degraded one (Miconi et al. 2018, section 4.1).

    Each episode draws ``patterns`` random patterns of ``bits`` values in {-1, +1}; each is shown for
    ``presentation`` steps followed by ``gap`` steps of zeros, the whole sequence ``cycles`` times (pattern
    order shuffled per cycle); then one of them, with ``bits // 2`` values set to 0, is shown for
    ``presentation`` steps. The target on those last steps is the whole pattern (``mse``; other steps unscored).
    I = bits + 1 (a constant bias input), O = bits.

    Args:
        bits: pattern size (50 in the paper's run).
        patterns: patterns per episode (2).
        presentation: steps each pattern is shown (3).
        gap: zero steps after each presentation (1).
        cycles: how many times the patterns are shown (1).
        batch_size: episodes per batch.
        train_batches: batches per training epoch.
        val_batches: batches in the fixed validation set.
        test_batches: batches in the fixed test set.
        seed: seed of every episode.
    """

    loss = "mse"

    def __init__(self, bits: int = 50, patterns: int = 2, presentation: int = 3, gap: int = 1, cycles: int = 1,
                 batch_size: int = 16, train_batches: int = 1000, val_batches: int = 8, test_batches: int = 8, seed: int = 0) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        for name, value, low in (("bits", bits, 2), ("patterns", patterns, 1), ("presentation", presentation, 1),
                                 ("gap", gap, 0), ("cycles", cycles, 1)):
            check_at_least("PatternCompletionTask", name, value, low)
        self.bits, self.patterns, self.presentation, self.gap, self.cycles = bits, patterns, presentation, gap, cycles
        self.input_size, self.output_size = bits + 1, bits

    def generate(self, generator: torch.Generator, batch_size: int, **difficulty: Any) -> Batch:
        B, P, n, s, g = batch_size, self.bits, self.patterns, self.presentation, self.gap
        pats = torch.randint(0, 2, (B, n, P), generator=generator).float() * 2 - 1  # [B, n, P] in {-1, +1}
        steps = []
        for _ in range(self.cycles):
            order = torch.randperm(n, generator=generator)
            for i in order.tolist():
                steps += [pats[:, i]] * s + [torch.zeros(B, P)] * g
        probe = torch.randint(0, n, (B,), generator=generator)
        wanted = pats[torch.arange(B), probe]  # [B, P]
        hidden = torch.rand(B, P, generator=generator).argsort(-1)[:, : P // 2]  # half the bits, per episode
        degraded = wanted.scatter(1, hidden, 0.0)
        steps += [degraded] * s
        x = torch.stack(steps, dim=1)  # [B, T, P]
        T = x.shape[1]
        x = torch.cat([x, torch.ones(B, T, 1)], dim=-1)  # the bias input
        target = torch.zeros(B, T, P)
        target[:, -s:] = wanted.unsqueeze(1)
        mask = torch.zeros(B, T)
        mask[:, -s:] = 1.0
        return {"input": x, "target": target, "mask": mask}
