"""SpikeClip: clip a gradient whose norm is far above the recent ones, so that one rare batch cannot undo training.

Why (benchmarks/RESULTS.md, "Converged models stay converged"): a converged copy model's gradient norm
falls 100-1000x, and Adam's second moment v falls with it. Now and then one batch gives a gradient 2000x
the recent ones (an exploding gradient through the controller's recurrence). Adam's step
``lr * m / sqrt(v)`` then meets a tiny v: every weight that gradient touches moves by about
``lr * (1 - beta1) / sqrt(1 - beta2)`` = 3 lr per step for about ten steps, which threw the NTM and the DNC
back to chance (no NaN, no warning). A fixed ``gradient_clip_val`` does not help: 10 or 50 is far above a
converged model's norms and Adam is blind to the scale of the gradient anyway.

The rule, taken at every optimizer step on the total 2-norm ``g`` of all gradients, before Lightning's own
``gradient_clip_val`` and after DDP has averaged them (so every rank decides alike)::

    threshold = factor * median(the norms of the last `window` steps)
    if g > threshold: every gradient *= threshold / g

A spike then reaches Adam as a gradient ``factor`` times the usual size, so its step stays near lr. The
window holds the norms as measured (a spike moves a median by one place at most), and nothing is clipped
before it holds ``window`` norms. Its state is saved in checkpoints, so a resumed run clips alike.

>>> import torch
>>> clip = SpikeClip(window=3, factor=2.0)
>>> layer = torch.nn.Linear(1, 1, bias=False)
>>> for g in (1.0, 1.0, 1.0, 10.0):   # three ordinary gradients, then a spike of 10
...     layer.weight.grad = torch.tensor([[g]])
...     scale = clip.clip(layer.parameters())
>>> float(layer.weight.grad), scale     # clipped to 2 x the median of (1, 1, 1)
(2.0, 0.2)
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from mannkit.callbacks.monitor import logs_now
from mannkit.core.errors import ConfigError
from mannkit.core.registry import register

__all__ = ["SpikeClip"]


@register
class SpikeClip(Callback):
    """Scale the gradients down to ``factor`` x the median norm of the last ``window`` steps when they exceed it.

    Args:
        window: how many recent steps' gradient norms the median is taken over (and how many steps
            pass before the first clip).
        factor: the largest allowed ratio of a step's norm to that median (> 1).
        log_name: the logged scalar, the scale applied at each step (1.0 = not clipped), beside
            ``train/spike_clips``, the number of steps clipped so far; ``None`` logs neither.
    """

    def __init__(self, window: int = 100, factor: float = 10.0, log_name: str | None = "train/spike_clip_scale") -> None:
        super().__init__()
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"SpikeClip: window must be a positive integer, got {window!r}; use e.g. 100.")
        if not (isinstance(factor, (int, float)) and not isinstance(factor, bool) and factor > 1):
            raise ConfigError(f"SpikeClip: factor must be a number above 1, got {factor!r}; use e.g. 10.")
        self.window, self.factor, self.log_name = window, float(factor), log_name
        self.norms: deque[float] = deque(maxlen=window)
        self.clipped = 0

    def clip(self, parameters: Iterable[torch.nn.Parameter]) -> float:
        """Clip the gradients of ``parameters`` in place by the rule above; returns the scale applied (1.0 if none)."""
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return 1.0
        norm = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2)), 2))  # one fused pass over all
        scale = 1.0
        if len(self.norms) == self.window and math.isfinite(norm):
            threshold = self.factor * statistics.median(self.norms)
            if norm > threshold > 0:
                scale = threshold / norm
                torch._foreach_mul_(grads, scale)
                self.clipped += 1
        if math.isfinite(norm):  # a NaN or inf is the TrainingGuard's business, not a norm to remember
            self.norms.append(norm)
        return scale

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        scale = self.clip(pl_module.parameters())
        if self.log_name and trainer.loggers and logs_now(trainer):
            pl_module.log(self.log_name, scale, on_step=True, on_epoch=False)
            pl_module.log("train/spike_clips", float(self.clipped), on_step=True, on_epoch=False)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(window=self.window, factor=self.factor)

    def state_dict(self) -> dict[str, Any]:
        return {"norms": list(self.norms), "clipped": self.clipped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.norms = deque((float(n) for n in state_dict.get("norms", [])), maxlen=self.window)
        self.clipped = int(state_dict.get("clipped", 0))
