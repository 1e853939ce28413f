"""The DNC's memory mechanisms (Graves et al. 2016, Methods), each a small pure batch-first function.

Shape letters: B batch, N memory slots, W word size, R read heads.

Dynamic memory allocation:

- :func:`retention` — psi_t = prod_i (1 - f^i_t w^{r,i}_{t-1});
- :func:`update_usage` — u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} * w^w_{t-1}) * psi_t;
- :func:`allocation_weights` — a_t[phi_j] = (1 - u_t[phi_j]) prod_{i<j} u_t[phi_i], phi the ascending sort of u_t;
- :func:`write_weighting` — w^w_t = g^w_t (g^a_t a_t + (1 - g^a_t) c^w_t).

Temporal memory linkage:

- :func:`update_link` — L_t[i, j] = (1 - w^w_t[i] - w^w_t[j]) L_{t-1}[i, j] + w^w_t[i] p_{t-1}[j], L_t[i, i] = 0;
- :func:`update_precedence` — p_t = (1 - sum_i w^w_t[i]) p_{t-1} + w^w_t;
- :func:`directional_weights` — f^i_t = L_t w^{r,i}_{t-1}, b^i_t = L_t^T w^{r,i}_{t-1};
- :func:`read_weighting` — w^{r,i}_t = pi^i_t[1] b^i_t + pi^i_t[2] c^{r,i}_t + pi^i_t[3] f^i_t.

:class:`~mannkit_dnc.memory.DNCMemory` runs these fused into three autograd functions with
hand-written backwards (:mod:`mannkit_dnc.fused`); the tests check each against them.

Usage, allocation and the write weighting live in :mod:`mannkit.nn.allocation` (any memory's
:class:`~mannkit.nn.AllocatingWriteHead` uses them too) and are re-exported here.

Writing and reading the memory matrix reuse :func:`mannkit.nn.memory.erase_add` and
:func:`mannkit.nn.memory.read`; content weightings reuse :func:`mannkit.nn.content_weights`.

>>> u = allocation_weights(torch.tensor([[0.5, 0.0, 1.0]]), eps=0.0)  # slot 1 is free, then slot 0
>>> u
tensor([[0., 1., 0.]])
"""

from __future__ import annotations

import torch
from torch import Tensor

from mannkit.nn.allocation import ALLOCATION_EPS, allocation_weights, update_usage, write_weighting

__all__ = [
    "ALLOCATION_EPS",
    "retention",
    "update_usage",
    "allocation_weights",
    "write_weighting",
    "update_link",
    "update_precedence",
    "directional_weights",
    "read_weighting",
]


# -- dynamic memory allocation (usage, allocation and the write weighting: mannkit.nn.allocation) --------
def retention(free_gates: Tensor, read_weights: Tensor) -> Tensor:
    """Memory retention ``psi = prod_i (1 - f_i w^r_i)``: how much of each slot the read heads keep.

    Args:
        free_gates: f in [0, 1], ``[B, R]``.
        read_weights: the previous read weightings w^r_{t-1}, ``[B, R, N]``.

    Returns:
        psi, ``[B, N]`` in [0, 1] (all ones when R = 0).
    """
    return torch.prod(1 - free_gates.unsqueeze(-1) * read_weights, dim=1)  # psi: [B, R, N] -> [B, N]


# -- temporal memory linkage --------------------------------------------------------------------
def update_link(link: Tensor, write_weights: Tensor, precedence: Tensor) -> Tensor:
    """Link ``L_t[i, j] = (1 - w[i] - w[j]) L_{t-1}[i, j] + w[i] p_{t-1}[j]`` with a zero diagonal.

    The reference form (plain torch operations); the DNC memory computes the same with
    fewer ``[B, N, N]`` passes and temporaries (see :func:`mannkit_dnc.fused.temporal_step`).

    Args:
        link: L_{t-1}, ``[B, N, N]``.
        write_weights: w^w_t, ``[B, N]``.
        precedence: p_{t-1}, ``[B, N]``.

    Returns:
        L_t, ``[B, N, N]``.
    """
    w_i, w_j = write_weights.unsqueeze(2), write_weights.unsqueeze(1)  # [B, N, 1] and [B, 1, N]
    new = (1 - w_i - w_j) * link + w_i * precedence.unsqueeze(1)  # p_{t-1}[j] along the rows: [B, 1, N]
    eye = torch.eye(link.shape[-1], dtype=torch.bool, device=link.device)
    return new.masked_fill(eye, 0.0)  # L_t[i, i] = 0


def update_precedence(precedence: Tensor, write_weights: Tensor) -> Tensor:
    """Precedence ``p_t = (1 - sum_i w[i]) p_{t-1} + w``: how much each slot was the last one written.

    Args:
        precedence: p_{t-1}, ``[B, N]``.
        write_weights: w^w_t, ``[B, N]``.

    Returns:
        p_t, ``[B, N]``, summing to at most 1.
    """
    return torch.addcmul(write_weights, precedence, torch.rsub(write_weights.sum(-1, keepdim=True), 1))  # p_t


def directional_weights(link: Tensor, read_weights: Tensor) -> tuple[Tensor, Tensor]:
    """Forward ``f_i = L w^r_i`` and backward ``b_i = L^T w^r_i`` weightings of every read head.

    Args:
        link: L_t, ``[B, N, N]``.
        read_weights: the previous read weightings w^r_{t-1}, ``[B, R, N]``.

    Returns:
        ``(f, b)``, each ``[B, R, N]``.
    """
    forward = torch.bmm(read_weights, link.mT)  # f[h, i] = sum_j L[i, j] w^r[h, j]: [B, R, N] @ [B, N, N]^T
    backward = torch.bmm(read_weights, link)  # b[h, j] = sum_i L[i, j] w^r[h, i]
    return forward, backward


def read_weighting(backward: Tensor, content: Tensor, forward: Tensor, modes: Tensor) -> Tensor:
    """Read weighting ``w^r = pi[1] b + pi[2] c + pi[3] f`` for every read head.

    Args:
        backward: b_t, ``[B, R, N]``.
        content: the read content weightings c^r_t, ``[B, R, N]``.
        forward: f_t, ``[B, R, N]``.
        modes: pi_t, ``[B, R, 3]`` (backward, content, forward), each row summing to 1.

    Returns:
        w^r_t, ``[B, R, N]``.
    """
    pi_b, pi_c, pi_f = modes.unsqueeze(-1).unbind(dim=2)  # three [B, R, 1]
    return torch.addcmul(torch.addcmul(pi_c * content, pi_b, backward), pi_f, forward)  # w^r_t
