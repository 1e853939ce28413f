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

__all__ = ["leaves", "rebuild", "batch_axes", "accumulate", "pad_to"]


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


def accumulate(total: list[Tensor] | None, tensors: list[Tensor], p: Tensor, axes: list[int]) -> list[Tensor]:
    """``total + p * tensors``, tensor by tensor, with ``p [B]`` along each tensor's batch axis.

    s_t = sum_n p_t^n s_t^n (Graves 2016, eq. 7) is built one ponder step at a time. Floating
    tensors are mixed; others (a bool slot mask, step counters) are taken from the newest step.
    A tensor that grew since the last step (a stack's rows) is mixed after zero-padding the total.
    """
    out = []
    for i, (t, axis) in enumerate(zip(tensors, axes)):
        if not t.is_floating_point():
            out.append(t)
            continue
        shape = [1] * t.dim()
        shape[axis] = -1
        weighted = p.to(t.dtype).view(shape) * t  # p_t^n s_t^n, p [B] along the batch axis
        if total is None:
            out.append(weighted)
        else:
            out.append(pad_to(total[i], t.shape) + weighted)
    return out
