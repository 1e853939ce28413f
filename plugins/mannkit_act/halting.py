"""The halting rule of Adaptive Computation Time (Graves 2016, section 2), one ponder step at a time.

Shape letters: B batch.

At input step t the network takes ponder steps n = 1, 2, ... with halting probabilities
``h_t^n = sigmoid(W_h s_t^n + b_h)`` (eq. 6). The number of steps is

    N(t) = min{ n' : sum_{n=1}^{n'} h_t^n >= 1 - epsilon }, capped at M        (eq. 8)

the remainder ``R(t) = 1 - sum_{n=1}^{N(t)-1} h_t^n`` (eq. 9) and the weights

    p_t^n = R(t) if n = N(t), h_t^n if n < N(t), 0 after                        (eq. 10)

so that sum_n p_t^n = 1 for every example, including one forced to halt at M. The ponder cost
is ``rho_t = N(t) + R(t)`` (eq. 11); only R(t) carries a gradient.

>>> import torch
>>> h = torch.tensor([0.3, 0.995])      # example 0 goes on, example 1 halts at once
>>> step = halting_step(h, torch.zeros(2), torch.ones(2, dtype=torch.bool), last=False, epsilon=0.01)
>>> step.p, step.halted
(tensor([0.3000, 1.0000]), tensor([False,  True]))
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["HaltingStep", "halting_step"]


class HaltingStep(NamedTuple):
    p: Tensor
    """``[B]`` the weight p_t^n of this ponder step (0 for examples that halted before)."""
    cumulative: Tensor
    """``[B]`` sum of h_t^n over the steps before halting (what R(t) is 1 minus)."""
    running: Tensor
    """``[B]`` bool, still pondering after this step."""
    halted: Tensor
    """``[B]`` bool, halted at this step (N(t) = n)."""
    remainder: Tensor
    """``[B]`` R(t) where ``halted``, else 0."""


def halting_step(h: Tensor, cumulative: Tensor, running: Tensor, last: bool, epsilon: float) -> HaltingStep:
    """One ponder step's weights from its halting probability ``h [B]``.

    Args:
        h: ``[B]`` h_t^n in (0, 1).
        cumulative: ``[B]`` sum_{n' < n} h_t^{n'} (0 at n = 1).
        running: ``[B]`` bool, examples that have not halted before this step.
        last: n = M: every running example halts here and gets its remainder.
        epsilon: halt once the sum of halting probabilities reaches 1 - epsilon.
    """
    total = cumulative + h
    go_on = running & (total < 1.0 - epsilon) if not last else torch.zeros_like(running)  # eq. 8; all halt at n = M
    halted = running & ~go_on
    remainder = torch.where(halted, 1.0 - cumulative, 0.0)  # R(t) = 1 - sum_{n<N} h_t^n (eq. 9)
    p = torch.where(go_on, h, remainder)  # eq. 10: h before N(t), R at N(t), 0 after
    return HaltingStep(p, torch.where(go_on, total, cumulative), go_on, halted, remainder)
