"""A curriculum: make the task harder each time the model has mastered the current difficulty.

The task's difficulty lives in attributes named by its ``difficulty_attributes`` (``max_length``
of the copy task, ``max_items`` of associative recall, ``max_repeats`` of repeat copy...), which
the task reads each time it generates a training batch; :class:`Curriculum` raises one of them.
"""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch.callbacks import Callback

from mannkit.callbacks.monitor import monitored
from mannkit.core.errors import ConfigError
from mannkit.core.registry import register

__all__ = ["Curriculum"]


@register
class Curriculum(Callback):
    """After each validation, raise ``trainer.datamodule.<attribute>`` by ``step`` when ``monitor < threshold``.

    The level is raised after ``patience + 1`` validations in a row below the threshold (the count
    restarts after each raise and whenever the value is not below it), never beyond ``maximum``
    (nor, for a ``min_x`` attribute, beyond the task's ``max_x``). After a raise the task's
    validation set is regenerated at the new difficulty (same seed), so the monitored value
    measures the current level; checkpoints that monitor a validation metric then compare
    different levels. The level is logged as ``curriculum/<attribute>`` after every validation and
    each raise prints one line. The sanity-check validation before training is ignored.

    With ``mix > 0`` the curriculum is Zaremba & Sutskever's (2014) "combined" strategy: each
    training batch is drawn at the highest level (``maximum``, or the task's bound) with
    probability ``mix``, and at the current level otherwise, so that the model meets the final
    difficulty from the first step and a solution that only fits the easy levels does not pay off.
    The coin has its own seed, and ``mix: 0`` draws exactly the batches of a plain curriculum.
    Validation stays at the current level, so the raises follow the current level as before.

    On resume (``--ckpt_path``) the task restores its difficulty attributes from the checkpoint
    (its own ``state_dict``), and this callback's state holds the level reached and the counters;
    if the two disagree (a datamodule that saved no state), the callback's level wins.

    Args:
        attribute: the task's difficulty attribute to raise; one of its ``difficulty_attributes``.
        step: how much to add at each raise.
        maximum: the highest level; null for no limit.
        monitor: the logged validation metric compared with ``threshold``.
        threshold: raise when the monitored value is below this.
        patience: extra validations in a row below the threshold before each raise.
        mix: the probability that a training batch is drawn at the highest level instead (0 for a
            plain curriculum); needs a highest level (``maximum`` or a bound of the task's).
    """

    def __init__(
        self,
        attribute: str = "max_length",
        step: int = 1,
        maximum: int | None = None,
        monitor: str = "val/bits_per_seq",
        threshold: float = 1.0,
        patience: int = 0,
        mix: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(mix, bool) or not isinstance(mix, (int, float)) or not 0 <= mix < 1:
            raise ConfigError(
                f"Curriculum: mix must be a probability in [0, 1), got {mix!r}; use e.g. 0.2 "
                "(a fifth of the training batches at the highest level) or 0 for a plain curriculum."
            )
        if not isinstance(step, int) or step < 1:
            raise ConfigError(f"Curriculum: step must be a positive integer, got {step!r}; use e.g. 1.")
        if maximum is not None and (not isinstance(maximum, int) or maximum < 1):
            raise ConfigError(f"Curriculum: maximum must be a positive integer or null, got {maximum!r}.")
        if not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"Curriculum: patience must be 0 or more, got {patience!r}.")
        if not math.isfinite(threshold):
            raise ConfigError(f"Curriculum: threshold must be a finite number, got {threshold!r}.")
        self.attribute, self.step, self.maximum = attribute, step, maximum
        self.monitor, self.threshold, self.patience = monitor, float(threshold), patience
        self.mix = float(mix)
        self.level: int | None = None  # the attribute's value as this callback last set or saw it
        self.below = 0  # validations in a row below the threshold since the last raise
        self.raises = 0
        self.validations = 0

    # -- checks ---------------------------------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        data = getattr(trainer, "datamodule", None)
        choices = tuple(getattr(data, "difficulty_attributes", ()))
        if self.attribute not in choices or not hasattr(data, self.attribute):
            raise ConfigError(
                f"Curriculum: attribute '{self.attribute}' is not a difficulty attribute of the task "
                f"{type(data).__name__}; choose one of {list(choices)}."
            )
        if self.mix > 0:
            highest = self._limit(data)
            if not math.isfinite(highest):
                raise ConfigError(
                    f"Curriculum: mix {self.mix:g} draws batches at the highest level of '{self.attribute}', "
                    "but maximum is null and the task sets no bound; set maximum."
                )
            if not isinstance(getattr(data, "mixed_difficulty", None), dict):
                raise ConfigError(
                    f"Curriculum: mix {self.mix:g} needs a task that draws its training batches as SequenceTask does; "
                    f"{type(data).__name__} does not; set mix: 0."
                )
            data.mixed_difficulty[self.attribute] = (self.mix, int(highest))

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Stop mixing: a later fit of the same task without this callback draws plain batches."""
        mixed = getattr(getattr(trainer, "datamodule", None), "mixed_difficulty", None)
        if isinstance(mixed, dict):
            mixed.pop(self.attribute, None)

    def _limit(self, data: Any) -> float:
        """``maximum``; for a ``min_x`` attribute also the task's ``max_x``; and the bound the task declares
        for the axis (its ``Difficulty.at_most``, e.g. ``id_space`` for graph nodes)."""
        limit = math.inf if self.maximum is None else self.maximum
        if self.attribute.startswith("min_"):
            paired = getattr(data, "max_" + self.attribute[len("min_"):], None)
            if isinstance(paired, int):
                limit = min(limit, paired)
        for axis in getattr(data, "difficulty", ()):
            if self.attribute in getattr(axis, "attributes", ()) and axis.at_most is not None:
                bound = getattr(data, axis.at_most, None)
                if isinstance(bound, int):
                    limit = min(limit, bound)
        return limit

    # -- Lightning hooks --------------------------------------------------------------------------
    @property
    def state_key(self) -> str:
        return self._generate_state_key(attribute=self.attribute)  # one curriculum per attribute may coexist

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:  # after any checkpoint is restored
        data = trainer.datamodule
        if self.level is not None and getattr(data, self.attribute) != self.level:
            setattr(data, self.attribute, self.level)  # resumed, but the task kept no state of its own
            if callable(getattr(data, "refresh_val_set", None)):
                data.refresh_val_set()
        self.level = int(getattr(data, self.attribute))

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        data = trainer.datamodule
        value = monitored(trainer, self.monitor, "Curriculum")
        self.validations += 1
        self.below = self.below + 1 if value < self.threshold else 0
        current = int(getattr(data, self.attribute))
        if self.below > self.patience and current < self._limit(data):
            new = int(min(current + self.step, self._limit(data)))
            setattr(data, self.attribute, new)
            if callable(getattr(data, "refresh_val_set", None)):
                data.refresh_val_set()
            self.below, self.raises = 0, self.raises + 1
            if trainer.is_global_zero:
                print(
                    f"mannkit: curriculum raised {type(data).__name__}.{self.attribute} from {current} to {new} "
                    f"at step {trainer.global_step} ({self.monitor} {value:.4g} < {self.threshold:g})"
                )
            current = new
        self.level = current
        for logger in trainer.loggers:
            logger.log_metrics({f"curriculum/{self.attribute}": float(current)}, step=trainer.global_step)

    # -- checkpointed state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level, "below": self.below, "raises": self.raises, "validations": self.validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.level = state_dict.get("level")
        self.below = int(state_dict.get("below", 0))
        self.raises = int(state_dict.get("raises", 0))
        self.validations = int(state_dict.get("validations", 0))
