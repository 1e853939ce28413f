"""The equations of least-recently-used access (Santoro et al. 2016) and of differentiable plasticity
(Miconi et al. 2018), as small pure functions.

Shape letters: B batch, h heads of a bank, N memory slots, W word size, H hidden units.

>>> import torch
>>> usage = torch.tensor([[0.5, 0.1, 0.9]])
>>> least_used(usage)
tensor([[0., 1., 0.]])
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["least_used", "lrua_write_weights", "lrua_write", "update_usage", "hebbian_update", "oja_update"]


def least_used(usage: Tensor) -> Tensor:
    """``w^lu[n] = 1`` for the slot of smallest usage, 0 elsewhere (Santoro eq. 6 with one slot; ties: the first).

    Args:
        usage: ``w^u_{t-1}`` ``[B, N]``.

    Returns:
        One-hot ``[B, N]`` (no gradient: the choice is not differentiable).
    """
    index = usage.detach().argmin(dim=-1, keepdim=True)  # [B, 1]
    return torch.zeros_like(usage).scatter_(-1, index, 1.0)


def lrua_write_weights(gate: Tensor, previous_read: Tensor, least: Tensor) -> Tensor:
    """``w^w_t = sigma(alpha) w^r_{t-1} + (1 - sigma(alpha)) w^lu_{t-1}`` (Santoro eq. 7).

    Args:
        gate: ``sigma(alpha)`` in [0, 1], ``[B, h]``.
        previous_read: ``w^r_{t-1}`` ``[B, h, N]``.
        least: ``w^lu_{t-1}`` ``[B, N]``.

    Returns:
        ``[B, h, N]``.
    """
    g = gate.unsqueeze(-1)  # [B, h, 1]
    return g * previous_read + (1 - g) * least.unsqueeze(1)


def lrua_write(memory: Tensor, weights: Tensor, values: Tensor, least: Tensor) -> Tensor:
    """Zero the least-used slot, then ``M_t[n] = M_{t-1}[n] + sum_h w^w_t[h, n] a_h`` (Santoro eq. 8).

    Args:
        memory: ``M_{t-1}`` ``[B, N, W]``.
        weights: ``w^w_t`` ``[B, h, N]``.
        values: a, ``[B, h, W]``.
        least: ``w^lu_{t-1}`` ``[B, N]`` (one-hot).

    Returns:
        ``M_t`` ``[B, N, W]``.
    """
    cleared = memory * (1 - least).unsqueeze(-1)  # the least-used row set to 0, by mask (not in place)
    return cleared + torch.bmm(weights.transpose(1, 2), values)  # [B, N, h] @ [B, h, W] -> [B, N, W]


def update_usage(usage: Tensor, read_weights: Tensor, write_weights: Tensor, gamma: float) -> Tensor:
    """``w^u_t = gamma w^u_{t-1} + sum_h w^r_t[h] + sum_h w^w_t[h]`` (Santoro eq. 5).

    Args:
        usage: ``[B, N]``.
        read_weights: ``[B, h, N]``.
        write_weights: ``[B, h, N]``.
        gamma: the decay in [0, 1].
    """
    return gamma * usage + read_weights.sum(1) + write_weights.sum(1)


def hebbian_update(hebb: Tensor, pre: Tensor, post: Tensor, eta: Tensor, clamp: float) -> Tensor:
    """``Hebb_t = (1 - eta) Hebb_{t-1} + eta y_{t-1} y_t^T``, clamped to ``[-clamp, clamp]`` (Miconi eq. 2).

    Args:
        hebb: ``[B, H, H]`` (row i: presynaptic unit i, column j: postsynaptic unit j).
        pre: ``y_{t-1}`` ``[B, H]``.
        post: ``y_t`` ``[B, H]``.
        eta: the learned rate (a scalar tensor).
        clamp: the trace's bound.
    """
    outer = pre.unsqueeze(2) * post.unsqueeze(1)  # [B, H, 1] * [B, 1, H] -> [B, H, H]
    return ((1 - eta) * hebb + eta * outer).clamp(-clamp, clamp)


def oja_update(hebb: Tensor, pre: Tensor, post: Tensor, eta: Tensor, clamp: float) -> Tensor:
    """Oja's rule: ``Hebb_t[i, j] = Hebb_{t-1}[i, j] + eta y_t[j] (y_{t-1}[i] - y_t[j] Hebb_{t-1}[i, j])`` (Miconi eq. 3),
    clamped to ``[-clamp, clamp]``; the trace decays only where the postsynaptic unit is active.

    Args as :func:`hebbian_update`.
    """
    post_col = post.unsqueeze(1)  # y_t[j]: [B, 1, H]
    return (hebb + eta * post_col * (pre.unsqueeze(2) - post_col * hebb)).clamp(-clamp, clamp)
