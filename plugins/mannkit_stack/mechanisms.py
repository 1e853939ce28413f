"""The continuous stack, queue and deque of Grefenstette et al. 2015, and the push/pop/no-op stack of Joulin & Mikolov 2015, as pure functions.

Shape letters: B batch, t values stored so far (grows by one per push), W value width,
K stacks, D stack depth (fixed), A = 3 actions (push, pop, no-op).

**Continuous stack** (Grefenstette et al. 2015, eqs. 1-3). Stored values ``V [B, t, W]`` (oldest
first) never change once pushed; only their strengths ``s [B, t]`` do. One step with pop strength
``u``, push strength ``d`` and value ``v``:

- pop (:func:`pop_top`): ``s'[i] = max(0, s[i] - max(0, u - sum_{j>i} s[j]))``: the pop removes
  ``u`` of strength, from the top down;
- push (:func:`push`): ``V' = [V; v]``, ``s' = [s'; d]``;
- read (:func:`read_top`): ``r = sum_i min(s[i], max(0, 1 - sum_{j>i} s[j])) V[i]``: the top unit
  of strength.

The sums over the values above slot i are reverse exclusive cumulative sums (:func:`above`): O(t)
per step, no loop over slots and no ``[t, t]`` matrix. A **queue** pops and reads at the bottom
(the same equations with ``sum_{j<i}``, :func:`below`); a **deque** has both ends.

>>> import torch
>>> s = torch.tensor([[0.7, 0.5]])            # the paper's worked example, before step 3
>>> s = pop_top(s, torch.tensor([0.9]))        # u_3 = 0.9 removes 0.5 from v_2 and 0.4 from v_1
>>> s = torch.cat([s, torch.tensor([[0.9]])], 1)  # push d_3 = 0.9
>>> [round(x, 4) for x in s[0].tolist()], [round(x, 4) for x in top_weights(s)[0].tolist()]
([0.3, 0.0, 0.9], [0.1, 0.0, 0.9])

**Push/pop/no-op stack** (Joulin & Mikolov 2015). ``K`` stacks of fixed depth ``D``, ``S [B, K, D, W]``
(row 0 is the top); an action distribution ``a [B, K, 3]`` (softmax over push, pop, no-op) mixes
(:func:`act`): ``S' = a_push [v; S_{0..D-2}] + a_pop [S_{1..D-1}; empty] + a_noop S``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["above", "below", "pop_top", "pop_bottom", "top_weights", "bottom_weights", "push", "read", "act"]


def above(s: Tensor) -> Tensor:
    """``sum_{j>i} s[j]`` for every i: ``s [B, t] -> [B, t]`` (a reverse exclusive cumulative sum, exact at the top).

    >>> above(torch.tensor([[1.0, 2.0, 3.0]]))
    tensor([[5., 3., 0.]])
    """
    inclusive = s.flip(-1).cumsum(-1).flip(-1)  # sum_{j>=i} s[j]
    return F.pad(inclusive[..., 1:], (0, 1))  # shift by one: sum_{j>i}, 0 at the top


def below(s: Tensor) -> Tensor:
    """``sum_{j<i} s[j]`` for every i: ``s [B, t] -> [B, t]`` (an exclusive cumulative sum, exact at the bottom).

    >>> below(torch.tensor([[1.0, 2.0, 3.0]]))
    tensor([[0., 1., 3.]])
    """
    return F.pad(s.cumsum(-1)[..., :-1], (1, 0))


def pop_top(s: Tensor, u: Tensor) -> Tensor:
    """Pop ``u [B]`` of strength from the top: ``s'[i] = max(0, s[i] - max(0, u - sum_{j>i} s[j]))``, ``[B, t] -> [B, t]``."""
    return F.relu(s - F.relu(u.unsqueeze(-1) - above(s)))


def pop_bottom(s: Tensor, u: Tensor) -> Tensor:
    """Pop ``u [B]`` of strength from the bottom (a queue's dequeue): ``s'[i] = max(0, s[i] - max(0, u - sum_{j<i} s[j]))``."""
    return F.relu(s - F.relu(u.unsqueeze(-1) - below(s)))


def top_weights(s: Tensor) -> Tensor:
    """Read weights of the top unit of strength: ``min(s[i], max(0, 1 - sum_{j>i} s[j]))``, ``[B, t] -> [B, t]``."""
    return torch.minimum(s, F.relu(1 - above(s)))


def bottom_weights(s: Tensor) -> Tensor:
    """Read weights of the bottom unit of strength: ``min(s[i], max(0, 1 - sum_{j<i} s[j]))``, ``[B, t] -> [B, t]``."""
    return torch.minimum(s, F.relu(1 - below(s)))


def push(values: Tensor, s: Tensor, v: Tensor, d: Tensor, at_top: bool = True) -> tuple[Tensor, Tensor]:
    """Store ``v [B, W]`` with strength ``d [B]``: ``(V [B, t, W], s [B, t]) -> (V [B, t+1, W], s [B, t+1])``.

    ``at_top``: append after the newest value (a stack's or queue's push, a deque's top push); else
    prepend before the oldest (a deque's bottom push).
    """
    parts_v, parts_s = (values, v.unsqueeze(1)), (s, d.unsqueeze(1))
    if not at_top:
        parts_v, parts_s = parts_v[::-1], parts_s[::-1]
    return torch.cat(parts_v, dim=1), torch.cat(parts_s, dim=1)


def read(values: Tensor, weights: Tensor) -> Tensor:
    """``r = sum_i w[i] V[i]``: ``V [B, t, W]``, ``w [B, t] -> [B, W]`` (zeros when t = 0)."""
    return torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # [B, 1, t] @ [B, t, W] -> [B, W]


def act(stacks: Tensor, actions: Tensor, values: Tensor, empty: float = 0.0) -> Tensor:
    """One push/pop/no-op step of K stacks: ``S [B, K, D, W]``, ``a [B, K, 3]``, ``v [B, K, W] -> S' [B, K, D, W]``.

    ``S' = a_push [v; S_{0..D-2}] + a_pop [S_{1..D-1}; empty] + a_noop S`` (row 0 is the top; a push
    drops the bottom row, a pop fills it with ``empty``).

    >>> S = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 3, 1)
    >>> pop = torch.tensor([0.0, 1.0, 0.0]).view(1, 1, 3)
    >>> act(S, pop, torch.zeros(1, 1, 1)).flatten().tolist()
    [2.0, 3.0, 0.0]
    """
    pushed = torch.cat([values.unsqueeze(2), stacks[:, :, :-1]], dim=2)  # [B, K, 1, W] + [B, K, D-1, W]
    popped = F.pad(stacks[:, :, 1:], (0, 0, 0, 1), value=empty)  # [B, K, D-1, W] + one empty row at the bottom
    a = actions.unsqueeze(-1).unsqueeze(-1)  # [B, K, 3] -> [B, K, 3, 1, 1]
    return a[:, :, 0] * pushed + a[:, :, 1] * popped + a[:, :, 2] * stacks
