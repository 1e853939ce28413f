"""Adaptive Computation Time (Graves 2016) around any recurrent cell.

Shape letters: B batch, T time (input steps), I input width, O output width, M the most ponder
steps per input step, n a ponder step.

At each input step t the wrapped cell S runs n = 1 ... N(t) times on the same input, with a flag
that is 1 on the first ponder step only (eq. 3: ``x_t^n = x_t + delta_{n,1}``):

    s_t^1 = S(s_{t-1}, x_t^1),   s_t^n = S(s_t^{n-1}, x_t^n)                       (eq. 3)
    y_t^n = W_y s_t^n + b_y,     h_t^n = sigmoid(W_h s_t^n + b_h)                  (eqs. 5, 6)
    y_t = sum_n p_t^n y_t^n,     s_t = sum_n p_t^n s_t^n                           (eq. 7)

The cell is bound to ``I + 1`` inputs (the flag) and ``O + 1`` outputs: its first O outputs are
``y_t^n`` (logits), the last one plus the bias ``b_h`` (a parameter, initialised to
``halting_bias_init``, 1 in the paper) is the halting unit; both are linear in the cell's output
features, as in the paper. ``p_t^n``, N(t) and R(t) follow :mod:`mannkit_act.halting`; every
tensor of the state (controller, memory, heads, reads; any nesting of NamedTuples, tuples and
dicts) is mixed with the same weights, along its own batch axis. The ponder loop only decides
N(t) (without gradient); ``p_t^n``, ``R(t)``, ``y_t`` and ``s_t`` are computed once after it, for
all ponder steps together, so that a ponder step adds almost nothing to the cell's own cost.

Batched: examples halt at different ponder steps; the loop over n runs until every example of
the batch has halted (at most M times), and an example that has halted keeps being stepped
with weight exactly 0 (``torch.where`` masks, no per-example loop, no shrinking of the batch).

``forward`` returns in :class:`~mannkit.core.interfaces.SequenceOutput`:

- ``losses["ponder"]``: ``tau * mean_B (1/T) sum_t (N(t) + R(t))`` (eq. 12 per input step; every
  input step counts), which ``SequenceSystem`` adds to the task loss and logs as ``train/loss_ponder``.
  The paper adds ``tau * sum_t rho_t`` to a task loss *summed* over the steps; mannkit's task losses
  are means over the steps, so the ponder cost is too, and ``tau`` keeps the paper's meaning (for a
  loss that also averages over D outputs per step, as addition's 6 digits, the paper's tau is D x
  this one). Until 2026-12-04 the cost was summed over steps, which weighted time T times more;
  figures measured before then say so;
- ``stats``: ``ponder_mean`` (N(t) over batch and input steps) and ``ponder_max``;
- with ``record``: ``ponder [B, T]`` (N(t)), ``remainder [B, T]``, ``halting_p [B, T, n]`` (p_t^n,
  zero-padded to the longest ponder of the sequence), and every entry of the cell's trace mixed
  over the ponder steps with p_t^n (e.g. ``read_weights``), so MemoryPictures draws them all.

``step`` is one input step (for an ACT nested in another cell); the ponder cost is only returned
by ``forward``.

>>> import torch
>>> from mannkit.nn import RNNController
>>> from mannkit.nn import ControllerCell
>>> act = ACT(ControllerCell(RNNController(8)), max_ponder=5)
>>> act.bind(input_size=3, output_size=2)
>>> out = act(torch.zeros(4, 6, 3), record=True)
>>> out.logits.shape, out.trace["ponder"].shape, sorted(out.losses), sorted(out.stats)
(torch.Size([4, 6, 2]), torch.Size([4, 6]), ['ponder'], ['ponder_max', 'ponder_mean'])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import QAModel, RecurrentCell, SequenceOutput, State, stack_steps
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit_act.halting import halting_weights, keeps_pondering
from mannkit_act.tree import batch_axes, leaves, mix, rebuild

__all__ = ["ACT"]


@register
class ACT(RecurrentCell):
    """Adaptive Computation Time around any recurrent cell: a variable number of its steps per input step.

    Args:
        cell: the wrapped recurrent cell (a ``ControllerCell`` with an RNN, a ``MemoryCell`` with any
            memory, ``StackedCells`` ...); it is bound to I + 1 inputs and O + 1 outputs.
        max_ponder: M, the most ponder steps per input step; an example that has not halted by then
            halts at M with its remainder (the paper: 100, 20 for addition).
        epsilon: halt once the halting probabilities sum to at least 1 - epsilon (the paper: 0.01).
        tau: the time penalty, the weight of the ponder cost in the loss (the paper: 1e-4 to 1e-1).
        halting_bias_init: the initial halting bias b_h (the paper: 1).
    """

    def __init__(
        self,
        cell: RecurrentCell,
        max_ponder: int = 100,
        epsilon: float = 0.01,
        tau: float = 1e-3,
        halting_bias_init: float = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(cell, QAModel) or not isinstance(cell, RecurrentCell):
            kind = "a question-answering model" if isinstance(cell, QAModel) else "not a recurrent cell"
            raise ConfigError(
                f"ACT: cell is a {type(cell).__name__}, {kind}; ACT wraps a recurrent cell, so give a class_path "
                "such as MemoryCell, ControllerCell or StackedCells."
            )
        if isinstance(max_ponder, bool) or not isinstance(max_ponder, int) or max_ponder < 1:
            raise ConfigError(
                f"ACT: max_ponder must be a positive integer, got {max_ponder!r}; set max_ponder to 1 or more "
                "(the paper uses 100)."
            )
        if not (isinstance(epsilon, (int, float)) and 0.0 < epsilon < 1.0):
            raise ConfigError(f"ACT: epsilon must be in (0, 1), got {epsilon!r}; use e.g. 0.01 as in the paper.")
        if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau >= 0.0):
            raise ConfigError(f"ACT: tau must be 0 or more, got {tau!r}; use e.g. 0.001, or 0 for no ponder cost.")
        if not (isinstance(halting_bias_init, (int, float)) and math.isfinite(halting_bias_init)):
            raise ConfigError(
                f"ACT: halting_bias_init must be a finite number, got {halting_bias_init!r}; use 1 as in the paper."
            )
        for module in cell.modules():
            if getattr(module, "recomputable", True) is False:
                raise ConfigError(
                    f"ACT: the cell holds a {type(module).__name__}, which updates its state in place, so its states "
                    "cannot be mixed over ponder steps; use a memory with a pure state such as DNCMemory."
                )
        self.cell = cell
        self.max_ponder, self.epsilon, self.tau = max_ponder, float(epsilon), float(tau)
        self.halting_bias = nn.Parameter(torch.tensor(float(halting_bias_init)))  # b_h (eq. 6)
        self._axes_cache: dict[tuple, list[int]] = {}  # (B, device, dtype) -> the batch axis of each state tensor

    # -- assembly -----------------------------------------------------------------------
    def bind(self, input_size: int, output_size: int) -> None:
        """The cell takes ``[x_t, first-step flag]`` (I + 1) and gives ``[y_t^n, halting logit]`` (O + 1)."""
        if not self._bind_io(input_size, output_size):
            return
        self.cell.bind(input_size + 1, output_size + 1)

    def _require_bound(self) -> None:
        if "input_size" not in self.__dict__:
            raise ConfigError("ACT is not built yet; call act.bind(input_size, output_size) or let a system build it.")

    # -- recurrence ---------------------------------------------------------------------
    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State:
        """The wrapped cell's initial state."""
        self._require_bound()
        return self.cell.initial_state(batch_size, device, dtype)

    def _axes(self, x: Tensor) -> list[int]:
        """The batch axis of each tensor of the cell's state, found once per batch size, device and dtype."""
        key = (x.shape[0], x.device, x.dtype)
        if key not in self._axes_cache:
            self._axes_cache[key] = batch_axes(lambda b: self.cell.initial_state(b, x.device, x.dtype), x.shape[0])
        return self._axes_cache[key]

    def step(self, x: Tensor, state: State, record: bool = False) -> tuple[Tensor, State, dict[str, Tensor]]:
        """One input step: ``x [B, I]`` -> ``(y [B, O], state, trace)``; the trace holds ``ponder [B]`` when recording."""
        y, state, trace, _, _ = self._ponder(x, state, record, self._axes(x))
        return y, state, trace

    def _ponder(
        self, x: Tensor, state: State, record: bool, axes: list[int]
    ) -> tuple[Tensor, State, dict[str, Tensor], Tensor, Tensor]:
        """Ponder on ``x [B, I]``: ``(y [B, O], s_t, trace, N(t) [B] int64, R(t) [B])``."""
        B = x.shape[0]
        first = torch.cat([x, x.new_ones(B, 1)], dim=-1)  # x_t^1: the flag set (eq. 3)
        later = first  # x_t^n for n > 1, made at n = 2
        total = x.new_zeros(B)  # sum of h_t^n so far, for the decision only
        running = torch.ones(B, dtype=torch.bool, device=x.device)
        bias = self.halting_bias.detach()
        outs: list[Tensor] = []  # [y_t^n, halting logit], one [B, O + 1] per ponder step
        states: list[list[Tensor]] = []  # s_t^n, flattened
        going: list[Tensor] = []  # [B] bool per step: n < N(t)
        traces: list[dict[str, Tensor]] = []
        O = self.output_size
        for n in range(1, self.max_ponder + 1):
            if n == 2:
                later = torch.cat([x, x.new_zeros(B, 1)], dim=-1)  # the flag cleared
            out, state, trace = self.cell.step(first if n == 1 else later, state, record)  # [B, O + 1]
            outs.append(out)
            states.append(leaves(state))
            if record:
                traces.append(trace)
            h = torch.sigmoid(out.detach()[:, O] + bias)  # h_t^n (eq. 6), without gradient: the decision only
            total, running = keeps_pondering(h, total, running, n == self.max_ponder, self.epsilon)  # eq. 8
            going.append(running)
            if not bool(running.any()):
                break
        # p_t^n, y_t and s_t once per input step, after the loop, which records no gradient of its own:
        # a ponder step costs about what the cell's step costs (benchmarks/bench_act_step.py)
        if len(states) == 1:  # every example halted at once: p_t^1 = R = 1, constants
            p_n, remainder, steps = x.new_ones(1, B), x.new_ones(B), going[0].long() + 1
            y, mixed = outs[0][:, :O], states[0]
        else:
            stacked = torch.stack(outs)  # [n, B, O + 1]
            h_n = torch.sigmoid(stacked[..., O] + self.halting_bias)  # h_t^n = sigmoid(W_h s_t^n + b_h) (eq. 6)
            p_n, remainder, steps = halting_weights(h_n, torch.stack(going))  # eqs. 9, 10
            y = (p_n.unsqueeze(-1) * stacked[..., :O]).sum(dim=0)  # y_t = sum_n p_t^n y_t^n (eq. 7)
            mixed = mix(states, p_n, axes)  # s_t = sum_n p_t^n s_t^n (eq. 7)
        merged: dict[str, Tensor] = {}
        if record:
            p = p_n.t()  # [B, n]
            merged = {
                "ponder": steps.to(x.dtype),
                "remainder": remainder,
                "halting_p": p,
            }
            for key in traces[0]:
                values = stack_steps([tr[key] for tr in traces])  # [B, n, ...]
                if values.is_floating_point():
                    weights = p.to(values.dtype).view(*p.shape, *([1] * (values.dim() - 2)))
                    merged[key] = (weights * values).sum(dim=1)  # the ponder-weighted mean of the entry
                else:
                    merged[key] = values[:, -1]
        return y, rebuild(state, mixed), merged, steps, remainder

    def forward(self, x: Tensor, record: bool = False) -> SequenceOutput:
        """``x [B, T, I]`` -> logits ``[B, T, O]``, ``losses["ponder"]``, ``stats`` (and a trace when ``record``)."""
        self._require_bound()
        check_shape(x, ("B", "T", self.input_size), "ACT input", "the task's input width must match the model's")
        B, T, _ = x.shape
        state = self.initial_state(B, x.device, x.dtype)
        axes = self._axes(x)
        outputs: list[Tensor] = []
        traces: list[dict[str, Tensor]] = []
        counts: list[Tensor] = []
        remainders: list[Tensor] = []
        for t in range(T):  # the time loop; the ponder loop is inside
            y, state, trace, steps, remainder = self._ponder(x[:, t], state, record, axes)
            outputs.append(y)
            counts.append(steps)
            remainders.append(remainder)
            if record:
                traces.append(trace)
        N = torch.stack(counts, dim=1)  # N(t) [B, T]
        R = torch.stack(remainders, dim=1)  # R(t) [B, T]
        rho = N.to(R.dtype) + R  # rho_t = N(t) + R(t) (eq. 11)
        # tau * P(x) / T, P(x) = sum_t rho_t (eq. 12): per input step, as the task losses are means over steps
        losses = {"ponder": self.tau * rho.mean(dim=1).mean()}
        stats = {"ponder_mean": N.float().mean(), "ponder_max": N.max().float()}
        stacked = None
        if record:
            stacked = {k: stack_steps([tr[k] for tr in traces]) for k in traces[0]}  # [B, T, ...]
        return SequenceOutput(torch.stack(outputs, dim=1), stacked, losses, stats)

    def extra_repr(self) -> str:
        return f"max_ponder={self.max_ponder}, epsilon={self.epsilon}, tau={self.tau}"
