"""ClipEachGradient: clip every parameter's gradient on its own, as the original MemN2N code does.

``trainer.gradient_clip_val`` (Lightning's) scales *all* gradients together when their joint norm exceeds
the bound, so one large gradient (a word table early in training) shrinks the steps of every other
weight too. The MemN2N code that came with the paper (``MemN2N-babi-matlab``, ``nn/Weight.m``) clips each
weight matrix separately: before each update, a gradient ``G`` whose norm is above ``max_norm`` (40) is
scaled to ``max_norm``; its norm is MATLAB's ``norm(G)``, the largest singular value of the matrix. With
the summed cost of a batch of 32 every gradient of the MemN2N joint preset is far above 40 during linear
start (medians 4e4-1e6 at initialisation, ``benchmarks/memn2n_grad_norms.py``), so each weight then
moves by ``lr * 40`` per step whatever the others do, where a joint clip gives the largest table most of
one shared step (benchmarks/RESULTS.md, "MemN2N on bAbI").

The rule, for each parameter ``p`` with a gradient ``G`` (a 1-D ``G`` is a column, a ``G`` of more than two
dimensions is viewed as ``[G.shape[0], -1]``)::

    n = ||G||_2 (largest singular value, ``norm: spectral``) or ||G||_F (``norm: frobenius``)
    if n > max_norm: G *= max_norm / n

With ``together`` (names of parameters, e.g. ``[words, time]``), the parameters of that name held by one
module are clipped as one matrix: their gradients stacked along the first dimension (``[V + M, D]`` for a
MemN2N encoder's word and time tables, which the original code keeps in one lookup table), one norm, one
scale. Every other parameter is still clipped on its own.

It runs in ``on_before_optimizer_step``, after the backward pass and before Lightning's own clipping (leave
``gradient_clip_val`` unset with it). A gradient that is not finite is left alone (the NaN stop sees it).

>>> import torch
>>> clip = ClipEachGradient(max_norm=1.0, norm="frobenius")
>>> a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
>>> a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.3, 0.4])
>>> clip.clip([a, b])   # a is scaled to norm 1, b is under the bound and kept
1
>>> a.grad.tolist(), b.grad.tolist()
([0.6000000238418579, 0.800000011920929], [0.30000001192092896, 0.4000000059604645])
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from mannkit.callbacks.monitor import logs_now
from mannkit.core.errors import ConfigError
from mannkit.core.registry import register

__all__ = ["ClipEachGradient", "gradient_norm"]

NORMS = ("spectral", "frobenius")


def gradient_norm(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The norm of one gradient: ``spectral`` (largest singular value of ``[G.shape[0], -1]``) or ``frobenius``.

    >>> float(gradient_norm(torch.tensor([[3.0, 0.0], [0.0, 4.0]]), "spectral"))   # singular values 4 and 3
    4.0
    >>> float(gradient_norm(torch.tensor([[3.0, 0.0], [0.0, 4.0]]), "frobenius"))
    5.0
    """
    g = grad.detach().float()
    if norm == "frobenius" or g.dim() <= 1:
        return torch.linalg.vector_norm(g)  # for a vector both norms are its 2-norm
    return torch.linalg.matrix_norm(g.reshape(g.shape[0], -1), ord=2)


@register
class ClipEachGradient(Callback):
    """Scale each parameter's gradient down to ``max_norm`` when its own norm is above it.

    Args:
        max_norm: the largest norm a parameter's gradient keeps (the MemN2N code: 40).
        norm: ``spectral`` (the largest singular value: MATLAB's ``norm`` of a matrix, as the original
            MemN2N code) or ``frobenius`` (the 2-norm of all its entries).
        together: parameter names (the attribute names, e.g. ``[words, time]``): the parameters of these names
            that one module holds are clipped as one matrix, their gradients stacked along dimension 0 (they
            must agree in their other dimensions). ``None``: every parameter alone.
        log_name: the logged scalar, the number of parameters (or stacks) clipped at each step (``None``: not logged).
    """

    def __init__(self, max_norm: float = 40.0, norm: Literal["spectral", "frobenius"] = "spectral",
                 together: list[str] | None = None, log_name: str | None = "train/clipped_parameters") -> None:
        super().__init__()
        try:
            bound = float(max_norm)
        except (TypeError, ValueError):
            bound = math.nan
        if not (bound > 0 and math.isfinite(bound)):
            raise ConfigError(f"ClipEachGradient: max_norm must be a positive number, got {max_norm!r}; use 40.0 as the MemN2N code.")
        if norm not in NORMS:
            raise ConfigError(f"ClipEachGradient: norm must be spectral or frobenius, got {norm!r}; use spectral as the MemN2N code.")
        if together is not None and (isinstance(together, str) or not all(isinstance(t, str) and t for t in together)):
            raise ConfigError(f"ClipEachGradient: together must be a list of parameter names, got {together!r}; e.g. [words, time].")
        self.max_norm, self.norm, self.log_name = bound, norm, log_name
        self.together = list(together) if together else []
        self._stacks: list[list[torch.nn.Parameter]] | None = None  # found once the model is built (on_fit_start)

    def _clip_one(self, grads: list[torch.Tensor]) -> bool:
        """Scale ``grads`` (one gradient, or a stack of them ``[sum of first dims, ...]``) by one factor if over the bound."""
        stacked = grads[0] if len(grads) == 1 else torch.cat([g.reshape(g.shape[0], -1) for g in grads])
        n = gradient_norm(stacked, "frobenius")  # never below the spectral norm: under the bound, no SVD is needed
        if self.norm == "spectral" and torch.isfinite(n) and n > self.max_norm:
            n = gradient_norm(stacked, "spectral")
        if not (torch.isfinite(n) and n > self.max_norm):
            return False
        for g in grads:
            g.mul_((self.max_norm / n).to(g.dtype))
        return True

    def groups(self, module: torch.nn.Module) -> list[list[torch.nn.Parameter]]:
        """The stacks ``together`` names in ``module``: per submodule, its parameters of those names (two or more).

        >>> class Encoder(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.words, self.time = torch.nn.Parameter(torch.zeros(5, 3)), torch.nn.Parameter(torch.zeros(2, 3))
        >>> [[tuple(p.shape) for p in g] for g in ClipEachGradient(together=["words", "time"]).groups(Encoder())]
        [[(5, 3), (2, 3)]]
        """
        stacks, seen = [], set()
        for name, sub in module.named_modules():
            own = [p for t in self.together if isinstance(p := sub._parameters.get(t), torch.nn.Parameter) and id(p) not in seen]
            if len(own) < 2:
                continue
            if len({tuple(p.shape[1:]) if p.dim() > 1 else () for p in own}) > 1:
                shapes = ", ".join(f"{t} {tuple(p.shape)}" for t, p in zip(self.together, own))
                raise ConfigError(f"ClipEachGradient: together stacks {name or 'the model'}'s {shapes} along the first dimension, "
                                  "so they must agree in the others; leave a name out of together.")
            seen.update(id(p) for p in own)
            stacks.append(own)
        return stacks

    def clip(self, parameters: Iterable[torch.nn.Parameter], groups: list[list[torch.nn.Parameter]] = ()) -> int:
        """Clip each stack of ``groups`` as one matrix, and each other gradient of ``parameters`` alone, in place;
        returns how many were scaled down."""
        clipped, grouped = 0, set()
        for stack in groups:
            grouped.update(id(p) for p in stack)
            grads = [p.grad for p in stack if p.grad is not None]
            clipped += bool(grads) and self._clip_one(grads)
        for p in parameters:
            if p.grad is not None and id(p) not in grouped:
                clipped += self._clip_one([p.grad])
        return clipped

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and getattr(trainer, "gradient_clip_val", None):
            raise ConfigError(
                f"ClipEachGradient: trainer.gradient_clip_val is {trainer.gradient_clip_val}, so the gradients would be clipped "
                "twice; set trainer.gradient_clip_val to null (ClipEachGradient clips each parameter on its own)."
            )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stacks = self.groups(pl_module) if self.together else []
        if self.together and not self._stacks:
            raise ConfigError(
                f"ClipEachGradient: together is {self.together}, but no module of the model holds two or more parameters of "
                "those names; name parameters one module owns (e.g. [words, time] for MemN2N) or leave together out."
            )

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if self._stacks is None:
            self._stacks = self.groups(pl_module) if self.together else []
        clipped = self.clip(params, self._stacks)
        if self.log_name and trainer.loggers and logs_now(trainer):
            pl_module.log(self.log_name, float(clipped), on_step=True, on_epoch=False, logger=True, prog_bar=False)
