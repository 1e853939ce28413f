"""Nested recurrent states as flat lists of tensors, and their mean-field mix (ACT, Graves 2016, eq. 7).

Shape letters: B batch; ``...`` any other axes of a state tensor.

A state is a tensor, or a NamedTuple / tuple / list / dict of states (``None`` and other
leaves pass through). Not every state is batch-first (an LSTM controller keeps ``[L, B, H]``),
so :func:`batch_axes` finds each tensor's batch axis by building the state for one example and
for B.

>>> import torch
>>> state = {"h": torch.ones(2, 3), "pair": (torch.zeros(2), None)}
>>> [t.shape for t in leaves(state)]
[torch.Size([2, 3]), torch.Size([2])]
>>> rebuild(state, [t + 1 for t in leaves(state)])["pair"][0]
tensor([1., 1.])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["leaves", "rebuild", "batch_axes", "mix", "pad_to"]


def leaves(state: Any) -> list[Tensor]:
    """Every tensor of a nested state, depth first (dicts in their key order)."""
    if isinstance(state, Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for v in state.values() for t in leaves(v)]
    if isinstance(state, (tuple, list)):
        return [t for v in state for t in leaves(v)]
    return []


def rebuild(state: Any, tensors: list[Tensor]) -> Any:
    """``state`` with its tensors replaced, in :func:`leaves` order, by ``tensors``."""
    it = iter(tensors)
    out = _rebuild(state, it)
    return out


def _rebuild(state: Any, it: Iterator[Tensor]) -> Any:
    if isinstance(state, Tensor):
        return next(it)
    if isinstance(state, dict):
        return {k: _rebuild(v, it) for k, v in state.items()}
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a NamedTuple
        return type(state)(*(_rebuild(v, it) for v in state))
    if isinstance(state, (tuple, list)):
        return type(state)(_rebuild(v, it) for v in state)
    return state


def batch_axes(initial_state: Callable[[int], Any], batch_size: int) -> list[int]:
    """The batch axis of each tensor of ``initial_state(batch_size)``, found against ``initial_state(1)``.

    The batch axis is the one whose size follows the batch; a tensor with no such axis (B = 1, or
    a tensor shared across the batch) gets axis 0.
    """
    with torch.random.fork_rng(devices=[]):  # a memory that starts from noise must not move the global RNG
        if batch_size == 1:
            return [0 for _ in leaves(initial_state(1))]
        one, many = leaves(initial_state(1)), leaves(initial_state(batch_size))
    axes = []
    for a, b in zip(one, many):
        differ = [d for d in range(b.dim()) if a.shape[d] != b.shape[d]]
        axes.append(differ[0] if differ else 0)
    return axes


def pad_to(t: Tensor, shape: torch.Size) -> Tensor:
    """Zero-pad ``t`` after its last element along each axis up to ``shape`` (a growing memory's state)."""
    if t.shape == shape:
        return t
    pad: list[int] = []
    for d in reversed(range(t.dim())):  # F.pad takes (before, after) pairs from the last axis backwards
        pad += [0, shape[d] - t.shape[d]]
    return torch.nn.functional.pad(t, pad)


def mix(steps: list[list[Tensor]], p: Tensor, axes: list[int]) -> list[Tensor]:
    """The mean-field state s_t = sum_n p_t^n s_t^n (Graves 2016, eq. 7), tensor by tensor.

    Args:
        steps: per ponder step n, the state's tensors (:func:`leaves` order).
        p: ``[n, B]`` the halting weights p_t^n.
        axes: the batch axis of each tensor (:func:`batch_axes`).

    One stacked product and sum per tensor (not one per ponder step): the ponder loop stays as cheap
    as the cell's own steps. Floating tensors are mixed; others (a bool slot mask, counters) are taken
    from the newest step. A tensor that grew over the ponder steps (a stack's rows) is zero-padded to
    its newest shape first.
    """
    n = p.shape[0]
    out = []
    for i, axis in enumerate(axes):
        newest = steps[-1][i]
        if not newest.is_floating_point():
            out.append(newest)
            continue
        stacked = torch.stack([pad_to(step[i], newest.shape) for step in steps])  # [n, ...]
        shape = [n] + [1] * newest.dim()
        shape[axis + 1] = -1
        out.append((p.to(newest.dtype).view(shape) * stacked).sum(dim=0))  # sum_n p_t^n s_t^n
    return out
