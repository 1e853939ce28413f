"""Write ``mannkit predict`` results to a file (Lightning discards them otherwise)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from mannkit.core.registry import register

__all__ = ["PredictionWriter"]


@register
class PredictionWriter(BasePredictionWriter):
    """Saves every prediction batch of a ``predict`` run as one ``torch.save`` file.

    Args:
        output_dir: folder for the file; default: the run's log directory.
        filename: name of the file.
    """

    def __init__(self, output_dir: str | None = None, filename: str = "predictions.pt") -> None:
        super().__init__(write_interval="epoch")
        # mannkit's loaders yield whole batches (no batch sampler), so there are no indices to infer
        warnings.filterwarnings("ignore", message="Couldn't infer the batch indices", category=UserWarning)
        self.output_dir, self.filename = output_dir, filename
        self.last_path: Path | None = None

    def write_on_epoch_end(self, trainer: Any, pl_module: Any, predictions: Any, batch_indices: Any) -> None:
        folder = Path(self.output_dir or trainer.log_dir or trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        name = self.filename if trainer.world_size == 1 else f"rank{trainer.global_rank}_{self.filename}"
        self.last_path = folder / name
        torch.save(predictions, self.last_path)
        print(f"mannkit: wrote {sum(len(p) if isinstance(p, list) else 1 for p in predictions)} prediction batches to {self.last_path}")
