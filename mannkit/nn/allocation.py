"""Usage-based allocation (the DNC's dynamic memory allocation, Graves et al. 2016, Methods), for any memory.

Shape letters: B batch, N memory slots.

- :func:`update_usage` — u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} * w^w_{t-1}) * psi_t;
- :func:`allocation_weights` — a_t[phi_j] = (1 - u_t[phi_j]) prod_{i<j} u_t[phi_i], phi the ascending sort of u_t;
- :func:`write_weighting` — w^w_t = g^w_t (g^a_t a_t + (1 - g^a_t) c^w_t).

The DNC plugin's memory and :class:`~mannkit.nn.heads.AllocatingWriteHead` (any memory with ``write``
and ``slots``) both use these.

>>> allocation_weights(torch.tensor([[0.5, 0.0, 1.0]]), eps=0.0)  # slot 1 is free, then slot 0
tensor([[0., 1., 0.]])
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ALLOCATION_EPS", "update_usage", "allocation_weights", "write_weighting"]

#: DeepMind keeps usage in [eps, 1] before the allocation's cumulative product, so that a
#: fully used slot cannot zero the product (and its gradient) for every later slot.
ALLOCATION_EPS = 1e-6


def update_usage(usage: Tensor, write_weights: Tensor, retention: Tensor) -> Tensor:
    """Usage ``u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} * w^w_{t-1}) * psi_t``.

    Args:
        usage: u_{t-1} in [0, 1], ``[B, N]``.
        write_weights: the previous write weighting w^w_{t-1}, ``[B, N]``.
        retention: psi_t, ``[B, N]`` (the DNC's read heads' ``prod_i (1 - f_i w^r_i)``; ones keep everything).

    Returns:
        u_t, ``[B, N]`` in [0, 1].
    """
    return (usage + write_weights - usage * write_weights) * retention  # u_t


def allocation_weights(usage: Tensor, eps: float = ALLOCATION_EPS) -> Tensor:
    """Allocation ``a[phi_j] = (1 - u[phi_j]) prod_{i<j} u[phi_i]`` with phi the slots by ascending usage.

    Usage is first mapped to ``eps + (1 - eps) u`` so the exclusive cumulative product (and its
    gradient, which divides by it) never meets an exact 0; the sort indices carry no gradient.
    Ties keep slot order (a stable sort): on an empty memory the first slot is allocated first.

    Args:
        usage: u_t in [0, 1], ``[B, N]``.
        eps: the floor on usage (0 gives the paper's formula exactly).

    Returns:
        a_t, ``[B, N]``, non-negative, summing to at most 1.
    """
    usage = eps + (1 - eps) * usage
    sorted_usage, free_list = torch.sort(usage, dim=-1, stable=True)  # u[phi_j] and phi: [B, N] each
    # prod_{i<j} u[phi_i], the exclusive cumulative product: 1 first, then the running product
    before = torch.cumprod(torch.cat([torch.ones_like(sorted_usage[:, :1]), sorted_usage[:, :-1]], dim=-1), dim=-1)
    sorted_allocation = (1 - sorted_usage) * before  # a[phi_j], [B, N]
    return torch.zeros_like(usage).scatter(-1, free_list, sorted_allocation)  # back to slot order, a_t


def write_weighting(allocation: Tensor, content: Tensor, allocation_gate: Tensor, write_gate: Tensor) -> Tensor:
    """Write weighting ``w^w = g^w (g^a a + (1 - g^a) c^w)``.

    Args:
        allocation: a_t, ``[B, N]``.
        content: the write content weighting c^w_t, ``[B, N]``.
        allocation_gate: g^a in [0, 1], ``[B, 1]``.
        write_gate: g^w in [0, 1], ``[B, 1]``.

    Returns:
        w^w_t, ``[B, N]``.
    """
    return write_gate * torch.lerp(content, allocation, allocation_gate)  # g^w (c + g^a (a - c))
