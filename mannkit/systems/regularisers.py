"""Penalties on how a memory network addresses its memory, computed from a recorded trace.

Shape letters: B batch, T time, h heads of one bank, N memory slots.

A trace (``model(x, record=True).trace``) holds every head bank's weightings as entries
named ``*_weights``, each ``[B, T, h, N]`` (``read_weights``, ``write_weights``, and whatever a
plugin records under such a name). Each weighting is a distribution over the N slots.

- **sparsity**: the entropy ``H(w) = -sum_n w_n log w_n`` (nats) of each weighting, averaged
  over every head, step and sequence; 0 for a one-hot weighting, ``log N`` for a uniform one.
  Penalising it pushes heads towards sharp, few-slot access.
- **consistency**: the L1 change ``sum_n |w_t,n - w_t-1,n|`` between consecutive steps of each
  head, averaged over every head, step pair and sequence; 0 for a weighting that does not
  move, 2 for a jump between disjoint slots. Penalising it favours smooth, sequential access.

>>> import math, torch
>>> uniform = torch.full((1, 2, 1, 4), 0.25)                    # [B, T, h, N]
>>> round(access_sparsity({"read_weights": uniform}).item(), 6) == round(math.log(4), 6)
True
>>> access_consistency({"read_weights": uniform}).item()
0.0
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mannkit.core.shapes import check_shape

__all__ = ["weighting_keys", "weighting_entropy", "access_sparsity", "access_consistency"]

#: Below this a weight counts as zero inside the logarithm (so ``0 log 0 = 0`` with a finite gradient).
EPS = 1e-12


def weighting_keys(trace: Mapping[str, Tensor] | None) -> list[str]:
    """The names of the trace's weighting entries (``*_weights``), sorted."""
    return sorted(k for k in (trace or {}) if k.endswith("_weights"))


def weighting_entropy(w: Tensor) -> Tensor:
    """``H(w) = -sum_n w_n log w_n`` over the last axis: ``[..., N]`` -> ``[...]`` (nats)."""
    return -(w * torch.log(w.clamp_min(EPS))).sum(dim=-1)


def _weightings(trace: Mapping[str, Tensor]) -> list[Tensor]:
    found = []
    for key in weighting_keys(trace):
        w = trace[key]
        check_shape(w, ("B", "T", "h", "N"), f"trace entry {key!r}", "weightings are recorded as [B, T, heads, N]")
        found.append(w)
    return found


def access_sparsity(trace: Mapping[str, Tensor]) -> Tensor:
    """Mean entropy of every weighting of every ``*_weights`` entry: a scalar (0 if there are none)."""
    entropies = [weighting_entropy(w).flatten() for w in _weightings(trace)]  # [B * T * h] per entry
    if not entropies:
        return torch.zeros(())
    return torch.cat(entropies).mean()


def access_consistency(trace: Mapping[str, Tensor]) -> Tensor:
    """Mean L1 change of each head's weighting between consecutive steps: a scalar (0 if T < 2 or none)."""
    changes = []
    for w in _weightings(trace):
        step = (w[:, 1:] - w[:, :-1]).abs().sum(dim=-1)  # |w_t - w_{t-1}| summed over N: [B, T-1, h]
        changes.append(step.flatten())
    changes = [c for c in changes if c.numel()]
    if not changes:
        return torch.zeros(())
    return torch.cat(changes).mean()
