"""The halting rule of Adaptive Computation Time (Graves 2016, section 2).

Shape letters: B batch, n ponder steps.

At input step t the network takes ponder steps n = 1, 2, ... with halting probabilities
``h_t^n = sigmoid(W_h s_t^n + b_h)`` (eq. 6). The number of steps is

    N(t) = min{ n' : sum_{n=1}^{n'} h_t^n >= 1 - epsilon }, capped at M        (eq. 8)

the remainder ``R(t) = 1 - sum_{n=1}^{N(t)-1} h_t^n`` (eq. 9) and the weights

    p_t^n = R(t) if n = N(t), h_t^n if n < N(t), 0 after                        (eq. 10)

so that sum_n p_t^n = 1 for every example, including one forced to halt at M. The ponder cost
is ``rho_t = N(t) + R(t)`` (eq. 11); only R(t) carries a gradient.

The rule is split in two so that the ponder loop records no gradient of its own: during the loop,
:func:`keeps_pondering` decides step by step, without gradient, which examples go on (eq. 8);
after it, :func:`halting_weights` computes p_t^n and R(t) with their gradients for all ponder
steps at once (eqs. 9, 10).

>>> import torch
>>> h = torch.tensor([[0.3, 0.995], [0.8, 0.5]])   # [n, B]: example 0 halts at n = 2, example 1 at n = 1
>>> total, running = torch.zeros(2), torch.ones(2, dtype=torch.bool)
>>> going = []
>>> for n in range(2):
...     total, running = keeps_pondering(h[n], total, running, last=n == 1, epsilon=0.01)
...     going.append(running)
>>> p, R, N = halting_weights(h, torch.stack(going))
>>> p.t(), R, N
(tensor([[0.3000, 0.7000],
        [1.0000, 0.0000]]), tensor([0.7000, 1.0000]), tensor([2, 1]))
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["keeps_pondering", "halting_weights"]


def keeps_pondering(h: Tensor, total: Tensor, running: Tensor, last: bool, epsilon: float) -> tuple[Tensor, Tensor]:
    """One ponder step's decision (eq. 8): ``(total [B], running [B] bool)`` after step n.

    Args:
        h: ``[B]`` h_t^n in (0, 1), without gradient.
        total: ``[B]`` sum_{n' < n} h_t^{n'} (0 at n = 1); examples that halted before keep adding,
            which does not matter, as ``running`` masks them.
        running: ``[B]`` bool, examples that have not halted before this step.
        last: n = M: every running example halts here (with its remainder).
        epsilon: halt once the sum of halting probabilities reaches 1 - epsilon.
    """
    total = total + h
    if last:
        return total, torch.zeros_like(running)
    return total, running & (total < 1.0 - epsilon)


def halting_weights(h: Tensor, going: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The weights of every ponder step: ``(p [n, B], R(t) [B], N(t) [B] int64)``.

    Args:
        h: ``[n, B]`` h_t^n, with gradient.
        going: ``[n, B]`` bool, n < N(t): the example went on after step n (:func:`keeps_pondering`).
    """
    before = torch.where(going, h, 0.0)  # h_t^n for n < N(t), 0 from N(t) on
    remainder = 1.0 - before.sum(dim=0)  # R(t) = 1 - sum_{n < N(t)} h_t^n (eq. 9)
    started = torch.cat([torch.ones_like(going[:1]), going[:-1]])  # the example was running at step n
    p = torch.where(started & ~going, remainder.unsqueeze(0), before)  # eq. 10: R at N(t), h before, 0 after
    return p, remainder, going.sum(dim=0) + 1
