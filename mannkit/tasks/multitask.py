"""Auxiliary objectives: train on a main task while also scoring one or more auxiliary tasks.

Shape letters: B batch, T time, I input width, O output width, K tasks (main + auxiliaries).

:class:`MultiTask` wraps a main task and auxiliary tasks into one datamodule. One model sees
every task, so their widths are reconciled:

- inputs are zero-padded to the widest task input and followed by K task-identity channels
  (a one-hot of the task, main first, set at every step): ``I = max_k I_k + K``;
- outputs must already agree (``O`` is the same for every task; choose the tasks' ``bits``
  so): the logits of one model are scored against every task's targets.

A training batch is the main task's batch (padded) plus, under ``"aux"``, one padded batch per
auxiliary task with its weight: ``{"input", "target", "mask", "aux": {name: {"input",
"target", "mask", "weight": []}}}``. :class:`~mannkit.systems.SequenceSystem` adds
``weight * loss`` of each to the training loss and logs it as ``train/loss_aux_<name>``.
Validation, test and predict use the main task only, so every ``val/...`` and ``test/...``
number is the main task's.

>>> from mannkit.tasks import AssociativeRecallTask, CopyTask
>>> multi = MultiTask(AssociativeRecallTask(bits=4, max_items=3), [CopyTask(bits=4, max_length=3)], [0.5])
>>> multi.input_size, multi.output_size, multi.names   # I = max(6, 5) + 2 task channels
(8, 4, ['copy'])
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from mannkit.core.errors import ConfigError
from mannkit.core.registry import register
from mannkit.tasks.base import Batch, SequenceTask, _fixed_loader

__all__ = ["MultiTask", "pad_input"]


def pad_input(batch: Batch, width: int, task_index: int, tasks: int) -> Batch:
    """Zero-pad ``input [B, T, I_k]`` to ``width`` channels and append a one-hot of ``task_index`` over ``tasks``.

    Returns a new batch with ``input [B, T, width + tasks]``; the other entries are shared.

    >>> b = pad_input({"input": torch.ones(1, 2, 1)}, width=3, task_index=1, tasks=2)
    >>> b["input"][0, 0].tolist()
    [1.0, 0.0, 0.0, 0.0, 1.0]
    """
    x = batch["input"]
    B, T, I = x.shape
    if I > width:
        raise ConfigError(f"pad_input: the input has {I} channels, more than the width {width}; raise the width.")
    padded = x.new_zeros(B, T, width + tasks)
    padded[..., :I] = x
    padded[..., width + task_index] = 1.0  # task identity, at every step
    return {**batch, "input": padded}


def _task_name(task: SequenceTask) -> str:
    """``AssociativeRecallTask`` -> ``associative_recall``."""
    name = re.sub(r"Task$", "", type(task).__name__) or type(task).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _AuxStream(IterableDataset):
    """The main task's training batches, each joined by one batch of every auxiliary task."""

    def __init__(self, multi: MultiTask) -> None:
        super().__init__()
        self.multi = multi

    def __iter__(self) -> Iterator[Batch]:
        m = self.multi
        K = 1 + len(m.auxiliary)
        # An auxiliary stream ends after its own train_batches; it then starts a fresh pass.
        aux_iters = [iter(task.train_dataloader()) for task in m.auxiliary]
        for batch in m.main.train_dataloader():
            joined = pad_input(batch, m.widest_input, 0, K)
            extra = {}
            for k, (name, task, weight) in enumerate(zip(m.names, m.auxiliary, m.weights)):
                try:
                    aux = next(aux_iters[k])
                except StopIteration:
                    aux_iters[k] = iter(task.train_dataloader())
                    aux = next(aux_iters[k])
                extra[name] = {**pad_input(aux, m.widest_input, k + 1, K), "weight": torch.tensor(float(weight))}
            joined["aux"] = extra
            yield joined


@register(kind="task")
class MultiTask(pl.LightningDataModule):
    """A main task trained together with weighted auxiliary tasks (see the module docstring).

    Args:
        main: the task the model is for; validation, test and predict use it alone.
        auxiliary: extra tasks whose losses are added during training (e.g. a CopyTask).
        weights: one weight per auxiliary task; its loss enters the training loss as ``weight * loss``.

    Attributes:
        input_size: ``max_k I_k + K`` (padded input and K task-identity channels).
        output_size: O, shared by every task.
        names: one name per auxiliary task (``copy``, ``associative_recall``; ``_2``... if repeated).
        loss: the main task's loss, which every auxiliary task must share.
    """

    def __init__(self, main: SequenceTask, auxiliary: list[SequenceTask], weights: list[float]) -> None:
        super().__init__()
        for where, task in [("main", main), *((f"auxiliary[{i}]", t) for i, t in enumerate(auxiliary))]:
            if not isinstance(task, SequenceTask):
                raise ConfigError(
                    f"MultiTask: {where} is a {type(task).__name__}, not a mannkit task; give a task class_path such as CopyTask."
                )
        if not auxiliary:
            raise ConfigError("MultiTask: auxiliary is empty; give at least one auxiliary task, or use the main task alone.")
        if len(weights) != len(auxiliary):
            raise ConfigError(
                f"MultiTask: weights ({list(weights)}) must have one entry per auxiliary task ({len(auxiliary)}); "
                "give one weight per task."
            )
        if any(w < 0 for w in weights):
            raise ConfigError(f"MultiTask: weights ({list(weights)}) must be 0 or more; a negative weight would reward the loss.")
        losses = {type(t).__name__: t.loss for t in [main, *auxiliary]}
        if len(set(losses.values())) > 1:
            shown = ", ".join(f"{name} {loss!r}" for name, loss in losses.items())
            raise ConfigError(
                f"MultiTask: every task must declare the same loss but they declare {shown}; "
                "choose auxiliary tasks with the main task's loss."
            )
        widths = {type(t).__name__: t.output_size for t in [main, *auxiliary]}
        if len(set(widths.values())) > 1:
            shown = ", ".join(f"{name} {o}" for name, o in widths.items())
            raise ConfigError(
                f"MultiTask: every task must have the same output width but they have {shown}; "
                "set each task's bits so that their output widths agree."
            )
        self.main, self.auxiliary, self.weights = main, list(auxiliary), [float(w) for w in weights]
        self.loss = main.loss
        names: list[str] = []
        for task in self.auxiliary:
            base = name = _task_name(task)
            n = 2
            while name in names:
                name, n = f"{base}_{n}", n + 1
            names.append(name)
        self.names = names
        self.widest_input = max(t.input_size for t in [main, *auxiliary])
        self.tasks = 1 + len(self.auxiliary)
        self.input_size, self.output_size = self.widest_input + self.tasks, main.output_size

    # -- what the main task says about itself -------------------------------------------------
    @property
    def test_set_names(self) -> list[str]:
        return self.main.test_set_names

    def train_difficulty(self) -> dict[str, Any]:
        return self.main.train_difficulty()

    def test_difficulties(self) -> list[tuple[str, dict[str, Any]]]:
        return self.main.test_difficulties()

    def test_axes(self) -> list[tuple[str, list[int]]]:
        """The main task's generalisation axes."""
        return self.main.test_axes()

    def _pad_main(self, batch: Batch) -> Batch:
        return pad_input(batch, self.widest_input, 0, self.tasks)

    def example_batch(self, batch_size: int = 1) -> Batch:
        """The main task's example batch, padded."""
        return self._pad_main(self.main.example_batch(batch_size))

    # -- LightningDataModule hooks ------------------------------------------------------------
    def setup(self, stage: str) -> None:
        for task in (self.main, *self.auxiliary):
            task.trainer = self.trainer  # each task seeds its training data by the trainer's rank
            task.setup(stage)

    def train_dataloader(self) -> DataLoader:
        """Main batches, each carrying one batch per auxiliary task under ``"aux"``."""
        return DataLoader(_AuxStream(self), batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return _fixed_loader([self._pad_main(b) for b in self.main.val_set])

    def test_dataloader(self) -> list[DataLoader]:
        return [_fixed_loader([self._pad_main(b) for b in batches]) for batches in self.main.test_sets]

    def predict_dataloader(self) -> DataLoader:
        return _fixed_loader([self._pad_main(b) for b in self.main.test_sets[0]])

    def state_dict(self) -> dict[str, Any]:
        """Every task's own state (difficulties, epoch counters), under ``main`` and ``aux/<name>``."""
        return {"main": self.main.state_dict(), **{f"aux/{n}": t.state_dict() for n, t in zip(self.names, self.auxiliary)}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.main.load_state_dict(state_dict.get("main", {}))
        for name, task in zip(self.names, self.auxiliary):
            task.load_state_dict(state_dict.get(f"aux/{name}", {}))
