"""Pictures of what the memory does: head weightings over time, memory contents, input/target/prediction.

Shape letters: B batch, T time, I input width, O output width, h heads of one bank,
N memory slots, W word size.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn

from mannkit.core.errors import ConfigError
from mannkit.core.registry import register

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MemoryPictures", "example_figures"]


def example_figures(pl_module: Any, batch: dict[str, torch.Tensor], example_index: int = 0,
                    max_time: int | None = None, step_labels: list[str] | None = None) -> dict[str, Figure]:
    """Run ``pl_module(batch["input"], record=True)`` and draw example ``example_index``.

    The module runs in eval mode without gradients; its train/eval mode is restored after.
    ``step_labels`` (one text per time step of the example, e.g. the words of a bAbI stream) label
    every time axis.

    Returns:
        name -> figure: ``"example"`` (input, target and prediction, time x channel) and one
        figure per drawable trace entry (see :mod:`mannkit.viz`), all cut to the first
        ``max_time`` steps when given.
    """
    from mannkit import viz  # imported on first use

    x = batch["input"]  # [B, T, I]
    if not 0 <= example_index < x.shape[0]:
        raise ConfigError(
            f"MemoryPictures: example_index {example_index} is outside the example batch of {x.shape[0]}; "
            f"use 0 to {x.shape[0] - 1}."
        )
    was_training = pl_module.training
    pl_module.eval()
    try:
        with torch.no_grad():
            out = pl_module(x, record=True)
    finally:
        pl_module.train(was_training)
    logits, trace = (out.logits, out.trace) if hasattr(out, "logits") else (out, None)
    steps = slice(None, max_time)

    def one(t: torch.Tensor) -> np.ndarray:  # [B, T, ...] -> [T', ...] of example_index
        return t[example_index, steps].detach().float().cpu().numpy()

    mask = one(batch["mask"]) if "mask" in batch else None
    target, prediction = batch["target"], torch.sigmoid(logits)
    if target.dim() == 2 and not target.dtype.is_floating_point:  # ce: class ids [B, T] -> one-hot [B, T, C]; softmax
        C = logits.shape[-1]
        target = torch.nn.functional.one_hot(target.clamp(0, C - 1), C).float() * (target >= 0).unsqueeze(-1)
        if "mask" in batch:
            target = target * (batch["mask"] > 0).unsqueeze(-1)  # no class drawn at unscored steps
        prediction = torch.softmax(logits, dim=-1)
    labels = None if step_labels is None else list(step_labels)[steps]
    if labels is not None and len(labels) != one(x).shape[0]:
        raise ValueError(f"example_figures: {len(labels)} step labels for {one(x).shape[0]} time steps; give one per step.")
    return {
        "example": viz.draw_example(one(x), one(target), one(prediction), mask, labels),
        **viz.draw_trace({name: one(value) for name, value in (trace or {}).items()}, labels),
    }


def picture_step(trainer: Any) -> int:
    """The training step a picture shows: ``trainer.global_step`` while fitting; in ``validate``/``test``/``predict``
    the step of the checkpoint the weights came from (``--ckpt_path``), 0 for weights that never trained."""
    if trainer.state.fn == TrainerFn.FITTING:
        return trainer.global_step
    step = getattr(trainer.lightning_module, "checkpoint_step", None)
    return step if isinstance(step, int) else trainer.global_step


def publish_figures(trainer: Any, figures: dict[str, Any], prefix: str, tensorboard: bool, png: bool) -> list[Path]:
    """Send figures to every TensorBoard logger as ``<prefix>/<name>`` and/or write them as
    ``<run>/pictures/step{step:06d}_<name>.png``; returns the PNG paths (shared by the picture callbacks)."""
    from matplotlib.image import imsave

    from mannkit.viz import safe_name, to_rgb

    images = {name: to_rgb(fig) for name, fig in figures.items()}  # name -> [H, W, 3] uint8
    step = picture_step(trainer)
    if tensorboard:
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                for name, image in images.items():
                    logger.experiment.add_image(f"{prefix}/{name}", image, step, dataformats="HWC")
    paths: list[Path] = []
    if png:
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "pictures"
        folder.mkdir(parents=True, exist_ok=True)
        for name, image in images.items():
            path = folder / f"step{step:06d}_{safe_name(name)}.png"
            imsave(path, image)
            paths.append(path)
    return paths


@register
class MemoryPictures(Callback):
    """After validation, draw one fixed example: what went in and out, where each head looked, the memory.

    The example comes from ``trainer.datamodule.example_batch()`` (seeded, the same batch each
    time), so pictures of successive validations show how the access pattern is learnt.
    Pictures go to TensorBoard (tags ``memory/<entry>``, the ``Images`` tab) and to
    ``<log_dir>/pictures/step{step:06d}_<entry>.png`` (the training step; in ``validate``/``test`` that of the checkpoint); the entry ``example`` is
    input, target and prediction. Only global rank zero draws, and the sanity-check
    validation before training is skipped (it would draw the untrained model at step 0).

    A task with ``step_labels(batch, index)`` (one text per time step of example ``index``, as
    ``BabiSequenceTask`` gives the words of a story) gets them on every time axis.

    Any recurrent core is drawn the same way: a cell with several memories gives entries
    ``<memory>/<entry>``, stacked cells ``layer<k>/<entry>``, and a memory whose state grows
    gives entries zero-padded to the largest size of the sequence.

    Args:
        every_n_validations: draw after every n-th validation (1: each one).
        example_index: which sequence of the example batch to draw.
        max_time: draw only the first ``max_time`` time steps (long sequences); null: all.
        png: write PNG files.
        tensorboard: log images to every TensorBoard logger of the trainer.
    """

    def __init__(
        self,
        every_n_validations: int = 1,
        example_index: int = 0,
        max_time: int | None = None,
        png: bool = True,
        tensorboard: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(every_n_validations, int) or every_n_validations < 1:
            raise ConfigError(f"MemoryPictures: every_n_validations must be 1 or more, got {every_n_validations!r}.")
        if not isinstance(example_index, int) or example_index < 0:
            raise ConfigError(f"MemoryPictures: example_index must be 0 or more, got {example_index!r}.")
        if max_time is not None and (not isinstance(max_time, int) or max_time < 1):
            raise ConfigError(f"MemoryPictures: max_time must be null or 1 or more, got {max_time!r}.")
        if not (png or tensorboard):
            raise ConfigError("MemoryPictures: png and tensorboard are both false, so nothing would be drawn; enable one.")
        self.every_n_validations, self.example_index, self.max_time = every_n_validations, example_index, max_time
        self.png, self.tensorboard = png, tensorboard
        self.validations = 0
        self.last_files: list[Path] = []

    # -- Lightning hooks ------------------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        data = getattr(trainer, "datamodule", None)
        if stage in ("fit", "validate") and not callable(getattr(data, "example_batch", None)):
            raise ConfigError(
                f"MemoryPictures needs a task with example_batch() (every mannkit task has one), but the datamodule "
                f"is {type(data).__name__}; use a mannkit task or remove the callback."
            )

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        self.validations += 1
        if self.validations % self.every_n_validations or not trainer.is_global_zero:
            return
        batch = trainer.datamodule.example_batch(self.example_index + 1)
        batch = {k: v.to(pl_module.device, pl_module.dtype if v.is_floating_point() else v.dtype) for k, v in batch.items()}
        labelling = getattr(trainer.datamodule, "step_labels", None)
        labels = labelling(batch, self.example_index) if callable(labelling) else None
        figures = example_figures(pl_module, batch, self.example_index, self.max_time, labels)
        self.last_files = publish_figures(trainer, figures, "memory", self.tensorboard, self.png)

    # -- checkpointed state -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validations = int(state_dict.get("validations", 0))
