"""The base of every generated sequence task: a seeded, deterministic ``LightningDataModule``.

Shape letters: B batch, T time, I input width, O output width (or classes, for ``loss == "ce"``).

A batch is a :class:`Batch`, a dict of tensors, all sequences of one batch sharing one length T
(``input [B, T, I]``, ``target``, ``mask [B, T]``, optionally ``reference_bits [B]``); what
``target`` holds follows the task's ``loss`` (``"bce"``, ``"ce"`` or ``"mse"``, see :class:`Batch`).

Training batches are generated afresh, epoch after epoch, from a ``torch.Generator`` seeded
by ``(seed, global rank, epoch counter)``: DDP ranks see different data and a run is
reproducible. The validation set and the test sets are fixed lists of batches, each
generated once from its own seed. A subclass declares its difficulty axes once, in
``difficulty`` (see :mod:`mannkit.tasks.difficulty`); the attributes they name are read each
time a training batch is generated, so a curriculum callback may change them during training;
``state_dict`` saves them.

>>> from mannkit.tasks import CopyTask
>>> task = CopyTask(bits=3, max_length=4, batch_size=2)
>>> batch = next(iter(task.train_dataloader()))
>>> sorted(batch), batch["input"].shape[-1], batch["target"].shape[-1]
(['input', 'mask', 'target'], 4, 3)
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, Literal, TypedDict

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from mannkit.core.errors import ConfigError
from mannkit.tasks.difficulty import (
    Difficulty,
    check_at_least,
    check_difficulty,
    check_list,
    check_order,
    check_tests,
    difficulties_of_test_sets,
)

__all__ = ["SequenceTask", "Batch", "Difficulty", "LOSSES", "seed_from", "check_at_least", "check_order", "check_list"]

#: The losses a task may declare (``SequenceTask.loss``); the sequence system follows it.
LOSSES = ("bce", "ce", "mse")


class _Scored(TypedDict):
    """The keys every batch has (see :class:`Batch`)."""

    input: Tensor
    target: Tensor
    mask: Tensor


class Batch(_Scored, total=False):
    """One batch of a sequence task: a plain ``dict`` of tensors, every sequence of it T steps long.

    Keys (B batch, T time, I input width, O output width):

    - ``"input"``: float32 ``[B, T, I]``.
    - ``"target"``: what the model's output ``[B, T, O]`` is scored against; its form is the task's
      ``loss``:

      - ``"bce"``: float32 ``[B, T, O]`` of 0/1 bits (binary cross-entropy; bits per sequence);
      - ``"ce"``: int64 ``[B, T]`` of class ids in ``0..O-1`` (cross-entropy per step over O classes;
        at unscored steps any id, e.g. 0 or -1);
      - ``"mse"``: float32 ``[B, T, O]`` of real values (mean squared error).
    - ``"mask"``: float32 ``[B, T]``, 1.0 where the output at that step is scored and 0.0 elsewhere.
    - ``"reference_bits"`` (optional): float32 ``[B]``, the cost in bits of an optimal reference
      predictor on each sequence (only tasks that know one give it, e.g. dynamic N-grams).
    - ``"aux"`` (optional, training batches of :class:`~mannkit.tasks.MultiTask` only): one batch
      per auxiliary task, by name, each with a scalar ``"weight"``.

    >>> sorted(Batch.__required_keys__), sorted(Batch.__optional_keys__)
    (['input', 'mask', 'target'], ['aux', 'reference_bits'])
    """

    reference_bits: Tensor
    aux: dict[str, Any]


def seed_from(*parts: int | str) -> int:
    """A 63-bit seed that depends on every part (stable across runs and machines, unlike ``hash``).

    >>> seed_from(0, "train", 1, 2) == seed_from(0, "train", 1, 2) != seed_from(0, "train", 2, 1)
    True
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def make_generator(*parts: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded by :func:`seed_from` of ``parts``."""
    generator = torch.Generator()
    generator.manual_seed(seed_from(*parts))
    return generator


# -- datasets ------------------------------------------------------------------------------


class _TrainStream(IterableDataset):
    """Yields ``task.train_batches`` fresh batches per pass, seeded by (seed, rank, pass counter)."""

    def __init__(self, task: SequenceTask) -> None:
        super().__init__()
        self.task = task

    def __iter__(self) -> Iterator[Batch]:
        task = self.task
        epoch = task.train_epoch
        task.train_epoch += 1  # the next pass (epoch) draws other batches
        generator = make_generator(task.seed, "train", task.global_rank, epoch)
        coins = make_generator(task.seed, "train/mixed", task.global_rank, epoch)  # own seed: unmixed runs are unchanged
        for _ in range(task.train_batches):
            # Difficulty is read now, per batch, so that a curriculum takes effect at once.
            difficulty = task.train_difficulty()
            for name, (probability, value) in task.mixed_difficulty.items():
                if float(torch.rand((), generator=coins)) < probability:
                    difficulty[name] = value  # this batch at the curriculum's highest level
            yield task.make_batch(generator, task.batch_size, **difficulty)


class SequenceTask(pl.LightningDataModule, ABC):
    """Base of the generated sequence tasks (abstract).

    A subclass is its generator and its docstring: it declares its difficulty axes in
    ``difficulty`` (one :class:`~mannkit.tasks.difficulty.Difficulty` each), its ``loss`` if not
    ``"bce"``, sets ``input_size`` and ``output_size`` in its constructor, hands its difficulty
    attributes and test lists to :meth:`set_difficulty`, and implements :meth:`generate`. The
    checks, ``difficulty_attributes``, :meth:`train_difficulty`, :meth:`test_difficulties` and the
    generalisation axes follow from the declaration (a task may still override the last two).

    Args:
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data (training, validation, test sets and the example batch).

    Attributes:
        input_size: I, the width of ``batch["input"]``.
        output_size: O, the width of ``batch["target"]`` (and of the model's output).
        loss: the loss the target is meant for, one of :data:`LOSSES`: ``"bce"`` (0/1 bits, binary
            cross-entropy), ``"ce"`` (class ids, cross-entropy per step) or ``"mse"`` (real values);
            :class:`~mannkit.systems.SequenceSystem` follows it (see :class:`Batch`).
        test_set_names: one name per test dataloader, in order (e.g. ``["len20", "len40"]``).
        train_epoch: how many training passes have started (part of the training seed; saved).
    """

    #: The difficulty axes, declared once by each task (see :mod:`mannkit.tasks.difficulty`).
    difficulty: ClassVar[tuple[Difficulty, ...]] = ()
    #: Names of the attributes that set the training difficulty (derived from ``difficulty``); a
    #: curriculum may change them, and ``state_dict`` saves them.
    difficulty_attributes: ClassVar[tuple[str, ...]] = ()
    #: The loss the targets are made for; the sequence system reads it at setup.
    loss: ClassVar[Literal["bce", "ce", "mse"]] = "bce"

    input_size: int
    output_size: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "difficulty" in cls.__dict__:
            cls.difficulty_attributes = tuple(a for axis in cls.difficulty for a in axis.attributes)
        if cls.loss not in LOSSES:
            raise ConfigError(f"{cls.__name__}.loss is {cls.loss!r}; declare one of {list(LOSSES)}.")

    def __init__(
        self,
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        for name, value in (
            ("batch_size", batch_size),
            ("train_batches", train_batches),
            ("val_batches", val_batches),
            ("test_batches", test_batches),
        ):
            check_at_least(owner, name, value, 1)
        self.batch_size = batch_size
        self.train_batches = train_batches
        self.val_batches = val_batches
        self.test_batches = test_batches
        self.seed = seed
        self.train_epoch = 0
        #: ``{attribute: (probability, value)}``: a training batch takes ``value`` for ``attribute`` with that
        #: probability (set by ``Curriculum(mix=...)``; the validation and test sets are never mixed).
        self.mixed_difficulty: dict[str, tuple[float, Any]] = {}
        self._val_set: list[Batch] | None = None
        self._test_sets: list[list[Batch]] | None = None

    # -- the contract of a subclass ----------------------------------------------------------
    @abstractmethod
    def generate(self, generator: torch.Generator, batch_size: int, **difficulty: Any) -> Batch:
        """Generate one batch of ``batch_size`` sequences (one shared length T), vectorised over B.

        ``difficulty`` holds the keyword arguments returned by :meth:`train_difficulty` or by
        one entry of :meth:`test_difficulties`. All randomness comes from ``generator``, so the
        same generator state gives identical tensors.
        """

    def set_difficulty(self, **values: Any) -> None:
        """Set the difficulty attributes and test lists (lists are copied), then check them against ``difficulty``.

        A subclass's constructor calls it once, e.g. ``self.set_difficulty(min_length=min_length,
        max_length=max_length, test_lengths=test_lengths)``, after setting any attribute an axis's
        ``at_most`` names.
        """
        known = {*self.difficulty_attributes, *(a.tests for a in self.difficulty if a.tests)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"{type(self).__name__}.set_difficulty: {unknown} are not declared in difficulty.")
        for name, value in values.items():
            setattr(self, name, list(value) if isinstance(value, (list, tuple)) else value)
        self.check_difficulty(self.train_difficulty())
        check_tests(type(self).__name__, self.difficulty, self)

    def check_difficulty(self, difficulty: dict[str, Any]) -> None:
        """Raise :class:`ConfigError` unless ``difficulty`` fits the declared axes (a task may add checks)."""
        check_difficulty(type(self).__name__, self.difficulty, difficulty, self)

    def make_batch(self, generator: torch.Generator, batch_size: int, **difficulty: Any) -> Batch:
        """:meth:`generate`, after :meth:`check_difficulty` (every batch the task serves is made here)."""
        self.check_difficulty(difficulty)
        return self.generate(generator, batch_size, **difficulty)

    def train_difficulty(self) -> dict[str, Any]:
        """The difficulty of training batches, read from the difficulty attributes now."""
        return {name: getattr(self, name) for name in self.difficulty_attributes}

    def test_difficulties(self) -> list[tuple[str, dict[str, Any]]]:
        """``(name, difficulty)`` per test set, in the order of the test dataloaders.

        Built from the declared axes (entry i of every axis's test list, named by the axes' tags);
        without test lists, one set ``"test"`` at the training difficulty.
        """
        return difficulties_of_test_sets(self.difficulty, self) or [("test", self.train_difficulty())]

    def test_axes(self) -> list[tuple[str, list[int]]]:
        """The axes the generalisation pictures draw: ``(axis name, one value per test set)``.

        Only plotted axes whose values differ between the test sets (in the order declared).
        """
        tested = [axis for axis in self.difficulty if axis.tests is not None and axis.plotted]
        sets = self.test_difficulties()
        axes = [(axis.name, [d[axis.attributes[0]] for _, d in sets]) for axis in tested]
        return [(name, values) for name, values in axes if len(set(values)) > 1]

    # -- derived attributes --------------------------------------------------------------------
    @property
    def test_set_names(self) -> list[str]:
        """One name per test dataloader, in order."""
        return [name for name, _ in self.test_difficulties()]

    @property
    def global_rank(self) -> int:
        """The trainer's global rank (0 without a trainer); part of the training seed."""
        trainer = getattr(self, "trainer", None)
        return int(getattr(trainer, "global_rank", 0) or 0)

    # -- fixed sets ---------------------------------------------------------------------------
    def _fixed_set(self, tag: str, count: int, difficulty: dict[str, Any]) -> list[Batch]:
        generator = make_generator(self.seed, tag)
        return [self.make_batch(generator, self.batch_size, **difficulty) for _ in range(count)]

    @property
    def val_set(self) -> list[Batch]:
        """The fixed validation batches (generated once, at the training difficulty of that moment)."""
        if self._val_set is None:
            self._val_set = self._fixed_set("val", self.val_batches, self.train_difficulty())
        return self._val_set

    def refresh_val_set(self) -> None:
        """Regenerate the validation batches at the current training difficulty (same seed, same count).

        The list is refilled in place, so a dataloader a running trainer already holds yields the
        new batches at the next validation (a curriculum calls this after raising the difficulty).
        """
        if self._val_set is None:
            return
        self._val_set[:] = self._fixed_set("val", self.val_batches, self.train_difficulty())

    @property
    def test_sets(self) -> list[list[Batch]]:
        """One fixed list of batches per entry of :meth:`test_difficulties` (generated once)."""
        if self._test_sets is None:
            self._test_sets = [
                self._fixed_set(f"test/{name}", self.test_batches, difficulty)
                for name, difficulty in self.test_difficulties()
            ]
        return self._test_sets

    def example_batch(self, batch_size: int = 1) -> Batch:
        """A small fixed batch (seeded by ``seed`` alone) at the current training difficulty, for pictures."""
        check_at_least(type(self).__name__, "batch_size", batch_size, 1)
        return self.make_batch(make_generator(self.seed, "example"), batch_size, **self.train_difficulty())

    # -- LightningDataModule hooks ------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Generate the fixed sets a stage needs: validation for fit/validate, the test sets for test/predict."""
        if stage in ("fit", "validate"):
            _ = self.val_set
        if stage in ("test", "predict"):
            _ = self.test_sets

    def train_dataloader(self) -> DataLoader:
        """``train_batches`` freshly generated batches per epoch (one process, batches made by the task)."""
        return DataLoader(_TrainStream(self), batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        """The fixed validation set."""
        return _fixed_loader(self.val_set)

    def test_dataloader(self) -> list[DataLoader]:
        """One dataloader per test set, named by :attr:`test_set_names`."""
        return [_fixed_loader(batches) for batches in self.test_sets]

    def predict_dataloader(self) -> DataLoader:
        """The first test set."""
        return _fixed_loader(self.test_sets[0])

    def state_dict(self) -> dict[str, Any]:
        """The difficulty attributes and the training-epoch counter."""
        state = {name: getattr(self, name) for name in self.difficulty_attributes}
        state["train_epoch"] = self.train_epoch
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved; unknown keys are an error."""
        known = {*self.difficulty_attributes, "train_epoch"}
        unknown = sorted(set(state_dict) - known)
        if unknown:
            raise ConfigError(
                f"{type(self).__name__}.load_state_dict: unknown keys {unknown}; "
                f"the checkpoint was saved by another task (expected keys {sorted(known)})."
            )
        before = self.train_difficulty()
        for name, value in state_dict.items():
            setattr(self, name, value)
        if self.train_difficulty() != before:
            self.refresh_val_set()  # validation follows the restored difficulty (a resumed curriculum)


def _first(items: list[Batch]) -> Batch:
    """Collate for loaders whose items already are whole batches: a "batch" of one item is that item."""
    return items[0]


def _fixed_loader(batches: list[Batch]) -> DataLoader:
    # Each list item is already a whole batch. batch_size=1 (not None) keeps a batch sampler,
    # which Lightning's prediction loop needs to report batch indices; _first unwraps the item.
    return DataLoader(batches, batch_size=1, shuffle=False, num_workers=0, collate_fn=_first)
