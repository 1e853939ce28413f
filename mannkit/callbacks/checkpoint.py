"""A ModelCheckpoint whose ``last.ckpt`` always holds the newest state, that never saves non-finite weights,
and that saves and prints the resume command on Ctrl-C or SIGTERM.

Lightning's ``ModelCheckpoint(save_last=True, monitor=...)`` rewrites ``last.ckpt`` only when a best
checkpoint is written (the monitor improved), so resuming from it can silently replay work. Here
``last.ckpt`` is rewritten after every validation and at the end of fit whatever the best-checkpoint
policy, before any of it the weights are checked to be finite (on every rank), and a
``KeyboardInterrupt`` during fit saves ``last.ckpt`` and prints::

    mannkit: training interrupted at step 7; the newest state is in runs/.../last.ckpt; resume with:
    mannkit fit --config configs/ntm/copy.yaml --ckpt_path runs/.../last.ckpt

SIGTERM (``kill PID``, ``timeout``'s default, a cluster scheduler before it kills a job) does the same
("training stopped by SIGTERM at step 7; ..."): Lightning finishes the step it is in and raises its
``SIGTERMException``, and ``mannkit`` then exits with status 143 (128 + 15), not 0.

The ``mannkit`` command uses this class for every ``ModelCheckpoint`` of a config (it adds behaviour
only, so the CLI turns an instantiated ``ModelCheckpoint`` into one by setting its class) and adds
``Checkpoint(save_last=True)`` when a config has none.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from mannkit.callbacks.checkpoint_io import clean_stale_temporaries
from mannkit.callbacks.guard import agree, newest_finite_checkpoint, stop_message, weights_finite
from mannkit.core.errors import TrainingError
from mannkit.core.registry import register

__all__ = ["Checkpoint"]


@register
class Checkpoint(ModelCheckpoint):
    """``ModelCheckpoint`` with ``last.ckpt`` always the newest state (takes exactly ModelCheckpoint's arguments).

    Attributes:
        resume_command: the command line that resumes this run without ``--ckpt_path`` (the ``mannkit``
            command sets it); the Ctrl-C message appends ``--ckpt_path <last.ckpt>`` to it.
    """

    resume_command: str | None = None
    _last_step_in_last: int | None = None  # class defaults: an instance may become a Checkpoint after __init__

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Resolve the folder as ModelCheckpoint does, then remove temporaries that killed saves left there."""
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath and "://" not in str(self.dirpath):
            clean_stale_temporaries(self.dirpath)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ModelCheckpoint, without its warning that the folder changed: every ``mannkit`` run (a resumed
        ``fit``, a ``validate``/``test`` of a checkpoint) writes into a ``version_N`` of its own, so the folder
        always changes; the earlier run's best and top-k files stay in its folder and this run ranks its own."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The dirpath has changed", category=UserWarning)
            super().load_state_dict(state_dict)

    # -- saving -----------------------------------------------------------------------------------
    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        """Refuse non-finite weights (the previous files stay as they are), then save as ModelCheckpoint does."""
        if not agree(trainer, weights_finite(trainer.lightning_module)):
            what = f"the weights hold NaN or inf, so {os.path.basename(filepath)} was not written"
            raise TrainingError(stop_message(trainer, what, trainer.global_step))
        super()._save_checkpoint(trainer, filepath)

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, Any]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_step_in_last = trainer.global_step

    def _refresh_last(self, trainer: pl.Trainer) -> None:
        """Write ``last.ckpt`` for the current step unless it already holds it (fit only, no sanity check)."""
        if (
            not self.save_last
            or trainer.fast_dev_run
            or trainer.state.fn != TrainerFn.FITTING
            or trainer.sanity_checking
            or self._last_step_in_last == trainer.global_step
        ):
            return
        candidates = self._monitor_candidates(trainer)
        mode = self.save_last
        if mode == "link" and self._last_global_step_saved != trainer.global_step:
            # no checkpoint of this step to link to: write the file itself (replacing the link, not writing through it)
            path = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST)
            if trainer.is_global_zero and os.path.islink(path):
                os.remove(path)
            self.save_last = True
        try:
            self._save_last_checkpoint(trainer, candidates)
        finally:
            self.save_last = mode

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Save as ModelCheckpoint does, then make sure ``last.ckpt`` holds this step."""
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Save as ModelCheckpoint does, then (when saving at epoch ends) make sure ``last.ckpt`` holds this step."""
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """At the end of fit ``last.ckpt`` holds the final step."""
        self._refresh_last(trainer)

    # -- Ctrl-C and SIGTERM ------------------------------------------------------------------------
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """On ``KeyboardInterrupt`` or SIGTERM during fit: save ``last.ckpt`` (finite weights only) and print how to resume.

        With ``save_last`` off, or weights that are not finite, the message names the newest checkpoint whose
        weights were read back and found finite instead, and says why it is not the newest state.
        """
        super().on_exception(trainer, pl_module, exception)
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or trainer.state.fn != TrainerFn.FITTING:
            return
        how = "stopped by SIGTERM" if isinstance(exception, SIGTERMException) else "interrupted"
        step, saved, why = trainer.global_step, None, "save_last is off"
        if self.save_last:
            try:
                self._refresh_last(trainer)
                why = "no last.ckpt was written at this step"
            except TrainingError:
                why = "the weights hold NaN or inf, so they were not saved"
            saved = self.last_model_path if self._last_step_in_last == step else None
        if not trainer.is_global_zero:
            return
        if how != "interrupted" and trainer.progress_bar_callback is not None:
            print(file=sys.stderr)  # end the progress bar's line (Lightning does this itself for Ctrl-C only)
        path, held = (saved, "the newest state") if saved else (newest_finite_checkpoint(trainer)[0], f"the newest checkpoint ({why})")
        if path is None:
            print(f"mannkit: training {how} at step {step}; no checkpoint was written ({why}).", file=sys.stderr)
            return
        command = f"{self.resume_command} --ckpt_path {path}" if self.resume_command else f"Trainer.fit(..., ckpt_path={path!r})"
        print(f"mannkit: training {how} at step {step}; {held} is in {path}; resume with:\n{command}", file=sys.stderr)
