"""Episodic (few-shot) tasks for :class:`~mannkit.systems.MetaSystem`: the base class and sinusoid regression.

Shape letters: E tasks in a meta-batch, S support examples (K shots, times N ways for classification),
Q query examples, I input width, O outputs, L steps of a sequence example.

A batch is a dict of one meta-batch of E tasks::

    support_x [E, S, I]   support_y [E, S, O] floats (mse) or [E, S] int64 class ids (ce)
    query_x   [E, Q, I]   query_y   [E, Q, O]                 or [E, Q]

(with a time axis after S or Q for sequence examples). Training draws fresh tasks each epoch from a
generator seeded by (seed, "train", epoch); the validation and test tasks are fixed lists seeded by
(seed, "val") and (seed, "test"), so every run and every checkpoint sees the same ones.

>>> task = SinusoidTask(shots=5, queries=7, meta_batch=3)
>>> batch = task.val_set[0]
>>> batch["support_x"].shape, batch["query_y"].shape
(torch.Size([3, 5, 1]), torch.Size([3, 7, 1]))
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from mannkit.core.errors import ConfigError
from mannkit.core.registry import register
from mannkit.tasks.base import make_generator

__all__ = ["Episode", "EpisodicTask", "SinusoidTask", "check_count"]

Episode = dict[str, Tensor]
"""One task (``support_x [S, ...]``, ...) or, stacked, a meta-batch (``support_x [E, S, ...]``, ...)."""


def check_count(owner: str, name: str, value: Any, at_least: int = 1) -> None:
    """A one-sentence :class:`ConfigError` unless ``value`` is an integer of at least ``at_least``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        raise ConfigError(f"{owner}: {name} must be an integer of at least {at_least}, got {value!r}; set {name} to {at_least} or more.")


class _Stream(IterableDataset):
    """``train_batches`` fresh meta-batches per pass, seeded by (seed, "train", pass counter)."""

    def __init__(self, task: EpisodicTask) -> None:
        super().__init__()
        self.task = task

    def __iter__(self) -> Iterator[Episode]:
        task = self.task
        generator = make_generator(task.seed, "train", task.train_epoch)
        task.train_epoch += 1
        for _ in range(task.train_batches):
            yield task.make_batch(generator, "train")


def _first(items: list[Episode]) -> Episode:
    return items[0]


class EpisodicTask(pl.LightningDataModule, ABC):
    """A seeded source of few-shot tasks; subclasses draw one task in :meth:`episode`.

    Subclasses set ``loss`` (``"mse"`` or ``"ce"``), ``input_size`` (I) and ``output_size`` (O, or C ways).

    Args:
        meta_batch: E, tasks per batch.
        train_batches: meta-batches per training epoch.
        val_batches: meta-batches in the fixed validation set.
        test_batches: meta-batches in the fixed test set.
        seed: seed of every drawn task.
    """

    loss: ClassVar[str] = "mse"
    input_size: int
    output_size: int

    def __init__(self, meta_batch: int = 25, train_batches: int = 1000, val_batches: int = 4,
                 test_batches: int = 24, seed: int = 0) -> None:
        super().__init__()
        owner = type(self).__name__
        for name, value in (("meta_batch", meta_batch), ("train_batches", train_batches),
                            ("val_batches", val_batches), ("test_batches", test_batches)):
            check_count(owner, name, value)
        self.meta_batch, self.train_batches = meta_batch, train_batches
        self.val_batches, self.test_batches, self.seed = val_batches, test_batches, seed
        self.train_epoch = 0
        self._fixed: dict[str, list[Episode]] = {}

    @abstractmethod
    def episode(self, generator: torch.Generator, split: str) -> Episode:
        """One task of ``split`` (``train``, ``val`` or ``test``), drawn from ``generator`` alone."""

    def make_batch(self, generator: torch.Generator, split: str) -> Episode:
        """E tasks stacked: every ``[S, ...]`` becomes ``[E, S, ...]``."""
        tasks = [self.episode(generator, split) for _ in range(self.meta_batch)]
        return {key: torch.stack([t[key] for t in tasks]) for key in tasks[0]}

    def _fixed_set(self, split: str, count: int) -> list[Episode]:
        if split not in self._fixed:
            generator = make_generator(self.seed, split)
            self._fixed[split] = [self.make_batch(generator, split) for _ in range(count)]
        return self._fixed[split]

    @property
    def val_set(self) -> list[Episode]:
        """The fixed validation meta-batches."""
        return self._fixed_set("val", self.val_batches)

    @property
    def test_set(self) -> list[Episode]:
        """The fixed test meta-batches."""
        return self._fixed_set("test", self.test_batches)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Stream(self), batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=1, collate_fn=_first, num_workers=0)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=1, collate_fn=_first, num_workers=0)

    def state_dict(self) -> dict[str, Any]:
        """The training-epoch counter (resuming draws the tasks a fresh run would)."""
        return {"train_epoch": self.train_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_epoch = int(state_dict.get("train_epoch", 0))


@register(kind="task")
class SinusoidTask(EpisodicTask):
    """Sinusoid regression (MAML, Finn et al. 2017, section 5.1): ``y = A sin(x - phi)`` per task.

    ``A ~ U[amplitude_min, amplitude_max]`` (0.1 .. 5), ``phi ~ U[0, pi]``, ``x ~ U[-5, 5]``; K = ``shots``
    support points and ``queries`` query points per task; I = O = 1, MSE.

    With ``sequence_length`` L > 0 each example is instead a sequence of L points of the task, the input at
    step t being ``[x_t, y_{t-1}]`` (``y_0 = 0``; I = 2) and the target ``y_t``: a recurrent or memory model
    (a ``MemoryCell``) can then also infer the task in context, and MetaSystem adapts it on top (MAML with
    memory). Shapes then gain the time axis: ``support_x [S, L, 2]``, ``support_y [S, L, 1]``.

    Args:
        shots: K, support points per task.
        queries: query points per task.
        amplitude_min: smallest amplitude A.
        amplitude_max: largest amplitude A.
        sequence_length: L; 0 for independent points.
        meta_batch: E, tasks per batch.
        train_batches: meta-batches per training epoch.
        val_batches: meta-batches in the fixed validation set.
        test_batches: meta-batches in the fixed test set (24 x 25 = 600 tasks by default).
        seed: seed of every drawn task.
    """

    loss = "mse"

    def __init__(self, shots: int = 5, queries: int = 10, amplitude_min: float = 0.1, amplitude_max: float = 5.0,
                 sequence_length: int = 0, meta_batch: int = 25, train_batches: int = 1000, val_batches: int = 4,
                 test_batches: int = 24, seed: int = 0) -> None:
        super().__init__(meta_batch, train_batches, val_batches, test_batches, seed)
        check_count("SinusoidTask", "shots", shots)
        check_count("SinusoidTask", "queries", queries)
        check_count("SinusoidTask", "sequence_length", sequence_length, 0)
        if not 0 <= amplitude_min <= amplitude_max:
            raise ConfigError(f"SinusoidTask: amplitudes must satisfy 0 <= amplitude_min <= amplitude_max, got "
                              f"{amplitude_min!r} and {amplitude_max!r}; use e.g. 0.1 and 5.")
        self.shots, self.queries, self.sequence_length = shots, queries, sequence_length
        self.amplitude_min, self.amplitude_max = float(amplitude_min), float(amplitude_max)
        self.input_size, self.output_size = (2 if sequence_length else 1), 1

    def episode(self, generator: torch.Generator, split: str) -> Episode:
        amplitude = self.amplitude_min + (self.amplitude_max - self.amplitude_min) * torch.rand((), generator=generator)
        phase = math.pi * torch.rand((), generator=generator)
        L = max(self.sequence_length, 1)
        x = 10.0 * torch.rand(self.shots + self.queries, L, 1, generator=generator) - 5.0  # [S+Q, L, 1] in [-5, 5]
        y = amplitude * torch.sin(x - phase)  # y = A sin(x - phi)
        if self.sequence_length:
            previous = torch.cat([torch.zeros_like(y[:, :1]), y[:, :-1]], dim=1)  # y_{t-1}, [S+Q, L, 1]
            x = torch.cat([x, previous], dim=-1)  # [S+Q, L, 2]
        else:
            x, y = x[:, 0], y[:, 0]  # [S+Q, 1]
        K = self.shots
        return {"support_x": x[:K], "support_y": y[:K], "query_x": x[K:], "query_y": y[K:]}
