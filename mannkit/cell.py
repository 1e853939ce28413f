"""MemoryCell: controller + heads + memory as one recurrent step, unrolled over time.

One step (NTM, Graves et al. 2014, fig. 1; DNC uses the same data flow):

1. controller input ``[x_t, r_{t-1}]`` -> controller output ``h_t [B, H]``;
2. one fused linear layer maps ``h_t`` to every head's raw parameters ``[B, sum_banks count * P]``;
3. head banks act in order of ``stage`` (writes, then reads), each vectorised over its heads;
4. output ``y_t = Linear([h_t, r_t]) [B, O]`` (logits).

Several memories: ``memories: {name: Memory}`` adds named memories beside ``memory``; a head
wrapped in :class:`~mannkit.nn.OnMemory` acts on the memory it names, any other head on
``memory``. The cell state's ``memory`` is then ``{"memory": state, name: state, ...}``, and
trace entries of a named memory (its heads' and its ``describe``) are ``<name>/<entry>``.

>>> import torch
>>> from mannkit.nn import LSTMController, MatrixMemory, ReadHead, WriteHead, ContentAddressing
>>> cell = MemoryCell(LSTMController(16), MatrixMemory(11, 5),
...                   [ReadHead(ContentAddressing()), WriteHead(ContentAddressing())])
>>> cell.bind(input_size=3, output_size=2)
>>> cell(torch.zeros(4, 7, 3)).logits.shape
torch.Size([4, 7, 2])
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.interfaces import Controller, Head, Memory, RecurrentCell, SequenceOutput, State
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.nn.cells import MAIN_MEMORY, OnMemory, named_memories
from mannkit.nn.compile_cache import compile_cache_dir, with_backward_compiled_now
from mannkit.nn.compile_cache import use_compile_cache as _use_compile_cache

__all__ = ["MemoryCell", "CellState", "compile_cache_dir"]

#: Inductor settings for the compiled step: its generated code re-checks the size, stride and
#: alignment of every buffer on each call, about a tenth of a small step's time; these checks
#: only guard the compiler's own bookkeeping.
_COMPILE_OPTIONS = {"size_asserts": False, "alignment_asserts": False, "scalar_asserts": False}

#: ``compile: auto`` runs the training steps eagerly until their forward passes have taken this
#: many seconds in all (a test, a quick try or a short run never pays for a compile), then compiles.
AUTO_COMPILE_AFTER_S = 10.0

#: ``checkpoint_every: auto`` checkpoints over time once the tensors a sequence's steps save for the
#: backward pass (as the memories estimate them, :func:`saved_bytes_per_step`) would exceed this.
AUTO_CHECKPOINT_BYTES = 512 * 2**20


#: ``compile: auto`` compiles a step's backward graph together with its forward for this many
#: compiled steps (AOTAutograd otherwise compiles it at the first backward, outside the cell, where a
#: failure could not fall back to eager); later recompiles (a new batch size) compile it lazily again.
EAGER_BACKWARD_LOWERING_CALLS = 1000


def saved_bytes_per_step(memory: Memory, batch_size: int, dtype: torch.dtype) -> int:
    """What one step of ``memory`` saves for the backward pass, by its own estimate (0 if it has none)."""
    estimate = getattr(memory, "saved_bytes_per_step", None)
    return int(estimate(batch_size, dtype)) if callable(estimate) else 0


def auto_checkpoint_every(step_bytes: int, steps: int, budget: int | None = None) -> int | None:
    """``checkpoint_every: auto``: None while ``steps * step_bytes <= budget``, else about ``sqrt(steps)``.

    Checkpointing every k steps keeps about ``T / k + k`` steps' tensors (fewest at ``k = sqrt(T)``)
    and runs each forward step twice; below the budget the memory saved is not worth that time.
    """
    budget = AUTO_CHECKPOINT_BYTES if budget is None else budget
    if step_bytes <= 0 or steps * step_bytes <= budget:
        return None
    return max(1, math.ceil(math.sqrt(steps)))


class CellState(NamedTuple):
    controller: State
    memory: State  # the memory's state; with several memories, {name: state} ("memory" first)
    heads: tuple
    reads: Tensor  # r_{t-1}, [B, R * W] (all read heads' vectors, flattened)


@register
class MemoryCell(RecurrentCell):
    """Any controller with any memory and any head banks that fit that memory.

    Args:
        controller: computes ``h_t`` from ``[x_t, r_{t-1}]`` (its input size is derived).
        memory: the memory the heads act on.
        heads: head banks (e.g. one WriteHead and one ReadHead, each with its ``count``).
        clip: clip every raw head parameter to ``[-clip, clip]`` (Collier & Beel 2018 clip the
            controller's outputs to +-20); ``null`` for no clipping.
        compile: run each step under ``torch.compile``. ``true``: always (a cold compile takes tens of
            seconds to two minutes on CPU; a warm one, from the cache of :func:`compile_cache_dir`,
            about ten seconds). ``auto`` (default): only where it pays, i.e. training steps (with
            gradients, not recording) of a cell whose memories all say compiling pays
            (``compile_pays``, e.g. the dense DNC), once its eager training forward passes have taken
            :data:`AUTO_COMPILE_AFTER_S` seconds in all; if the compile (forward or backward) fails, the cell warns
            once and stays eager. ``false``: never. Two graphs are compiled, one for the first step (fresh
            state) and one for the rest, whatever the sequence length; a new batch size, dtype or
            grad mode compiles again.
        dropout: dropout probability on the controller output ``h_t`` before the head projection and
            the output layer, in training only (a regulariser); 0 for none.
        checkpoint_every: trade time for memory: in training, keep only the state at every k-th step
            and recompute the steps in between during the backward pass (gradient checkpointing over
            time). Memory for T steps falls from T states' worth of saved tensors to about ``T / k + k``;
            the forward pass runs twice. Useful for the dense DNC's ``[B, N, N]`` link matrix at large N.
            ``null`` saves every step. ``auto`` (default): chosen per sequence from the memories' own
            estimate of what a step saves (``saved_bytes_per_step``): every step is saved while a
            sequence's total stays under :data:`AUTO_CHECKPOINT_BYTES`, else ``k = ceil(sqrt(T))`` (the
            dense DNC's link matrices: from about N = 512 at batch 16 and 41 steps). Memories that update
            a buffer in place (the sparse DNC) cannot be recomputed: they refuse an integer, and ``auto``
            never checkpoints them.
        memories: more memories beside ``memory``, by name (e.g. ``{tape: ..., dnc: ...}``); a head acts
            on one of them when wrapped in ``OnMemory`` with its name. ``null``: ``memory`` only.

    A memory whose state grows (:attr:`Memory.growing`, e.g. a stack) is compiled with dynamic
    shapes, so ``compile: true`` builds a few graphs for any sequence length, not one per step.
    """

    def __init__(
        self,
        controller: Controller,
        memory: Memory,
        heads: list[Head],
        clip: float | None = None,
        compile: bool | str = "auto",
        dropout: float = 0.0,
        checkpoint_every: int | str | None = "auto",
        memories: dict[str, Memory] | None = None,
    ) -> None:
        super().__init__()
        named = named_memories(memory, memories)
        if not heads:
            raise ConfigError("MemoryCell: heads is empty; give at least one head, e.g. a ReadHead and a WriteHead.")
        for i, head in enumerate(heads):
            if not isinstance(head, Head):
                raise ConfigError(f"MemoryCell: heads[{i}] is a {type(head).__name__}, not a Head; give a head class_path.")
        if clip is not None and clip <= 0:
            raise ConfigError(f"MemoryCell: clip must be positive or null, got {clip!r}; use e.g. 20 or null.")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"MemoryCell: dropout must be in [0, 1), got {dropout!r}; use e.g. 0.1, or 0 for none.")
        if checkpoint_every not in (None, "auto") and (
            isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1
        ):
            raise ConfigError(
                f"MemoryCell: checkpoint_every must be a positive integer, auto or null, got {checkpoint_every!r}; "
                "use e.g. 8, auto (the default: chosen from the memory's size) or null to save every step."
            )
        if compile not in (True, False, "auto"):
            raise ConfigError(
                f"MemoryCell: compile must be true, false or auto, got {compile!r}; use auto (the default: "
                "compile the training step where it pays), true or false."
            )
        for mem in named.values():
            if isinstance(checkpoint_every, int) and not getattr(mem, "recomputable", True):
                raise ConfigError(
                    f"MemoryCell: checkpoint_every={checkpoint_every} cannot be used with {type(mem).__name__}, which "
                    "updates its memory in place and cannot recompute a step; set checkpoint_every to null."
                )
        names = list(named)
        self._where = []  # head i acts on memory self._where[i] (an index into names)
        for i, head in enumerate(heads):
            name = head.memory_name if isinstance(head, OnMemory) else MAIN_MEMORY
            if name not in named:
                raise ConfigError(
                    f"MemoryCell: heads[{i}] ({type(head.head).__name__} in OnMemory) acts on memory {name!r}, which the "
                    f"cell does not have; set its memory to one of {', '.join(names)}."
                )
            self._where.append(names.index(name))
        self.dropout = dropout
        self.checkpoint_every = checkpoint_every
        self.controller, self.memory = controller, memory
        self.memories = nn.ModuleDict({k: v for k, v in named.items() if k != MAIN_MEMORY}) if len(named) > 1 else None
        self._names = names if len(named) > 1 else None  # None: one memory, whose state is CellState.memory itself
        self._all = tuple(named.values())  # the memories, in the order of names
        self._prefix = [("" if self._where[i] == 0 else names[self._where[i]] + "/") for i in range(len(heads))]
        self._growing = [f"{k} ({type(v).__name__})" for k, v in named.items() if v.growing]
        self.heads = nn.ModuleList(heads)
        self.clip, self.compile = clip, (compile if compile == "auto" else bool(compile))
        if self.compile is not False:
            _use_compile_cache()  # early: importing torch's compiler sets its own /tmp default
        self._recomputable = all(getattr(mem, "recomputable", True) for mem in named.values())
        self._compile_pays = all(getattr(mem, "compile_pays", False) for mem in named.values())
        self._eager_seconds = 0.0  # compile: auto: eager training forward time so far
        self._compile_failed = False
        self._compiled_calls = 0  # compile: auto: compiled steps run so far (see EAGER_BACKWARD_LOWERING_CALLS)
        # heads run by stage (writes first); reads are concatenated in the order of ``heads``
        self._order = sorted(range(len(heads)), key=lambda i: heads[i].stage)
        self.project: nn.Linear | None = None
        self.output: nn.Linear | None = None

    # -- assembly -----------------------------------------------------------------------
    def bind(self, input_size: int, output_size: int) -> None:
        """Derive every size from the data widths and the memory, and create the layers."""
        if not self._bind_io(input_size, output_size):
            return
        mems = [self._all[m] for m in self._where]  # the memory of each head
        for head, mem in zip(self.heads, mems):
            head.bind(mem)
        self._param_sizes = [h.param_size(mem) for h, mem in zip(self.heads, mems)]
        self._read_sizes = [h.read_size(mem) for h, mem in zip(self.heads, mems)]
        self.read_width = sum(h.count * r for h, r in zip(self.heads, self._read_sizes))
        self.controller.bind(input_size + self.read_width)
        H = self.controller.output_size
        self.project = nn.Linear(H, sum(h.count * p for h, p in zip(self.heads, self._param_sizes)))
        self.output = nn.Linear(H + self.read_width, output_size)
        self._bank_widths = [h.count * p for h, p in zip(self.heads, self._param_sizes)]  # split of the projection
        self._set_param_biases(mems)

    def _set_param_biases(self, mems: list[Memory]) -> None:
        """Copy each bank's :meth:`~mannkit.Head.param_bias` ``[P]`` into its rows of the projection's bias (NaN: kept)."""
        start = 0
        for head, mem, P in zip(self.heads, mems, self._param_sizes):
            bias = head.param_bias(mem)
            if bias is not None:
                if tuple(bias.shape) != (P,):
                    raise ShapeError(
                        f"MemoryCell: {type(head).__name__}.param_bias gave shape {list(bias.shape)} but the head has "
                        f"param_size {P}; return one number per raw parameter ([P]) or None."
                    )
                with torch.no_grad():
                    rows = self.project.bias[start:start + head.count * P].view(head.count, P)  # [h, P]
                    rows.copy_(torch.where(torch.isnan(bias), rows, bias.to(rows.dtype)))
            start += head.count * P

    def _require_bound(self) -> None:
        if self.project is None:
            raise ConfigError(
                "MemoryCell is not built yet; call cell.bind(input_size, output_size) or let a system build it."
            )

    # -- recurrence ---------------------------------------------------------------------
    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> CellState:
        self._require_bound()
        if self._names is None:
            memory_state = self.memory.initial_state(batch_size, device, dtype)
        else:
            memory_state = {name: mem.initial_state(batch_size, device, dtype) for name, mem in zip(self._names, self._all)}
        return CellState(
            self.controller.initial_state(batch_size, device, dtype),
            memory_state,
            tuple(h.initial_state(batch_size, self._all[m], device, dtype) for h, m in zip(self.heads, self._where)),
            torch.zeros(batch_size, self.read_width, device=device, dtype=dtype),
        )

    def step(self, x: Tensor, state: CellState, record: bool = False) -> tuple[Tensor, CellState, dict[str, Tensor]]:
        """``x [B, I]`` -> ``(y [B, O], state, trace)``; ``trace`` holds weights ``[B, heads, N]`` when recording."""
        if record or not self._compiling():
            return self._step(x, state, record)
        return self._run_compiled(x, state)

    def _run_compiled(self, x: Tensor, state: CellState) -> tuple[Tensor, CellState, dict[str, Tensor]]:
        """The compiled step (compiled on first use); under ``auto``, a failed compile falls back to eager once."""
        fn = self.__dict__.get("_compiled_step")
        if fn is None:
            _use_compile_cache()
            # a growing memory changes its state's shape every step: dynamic shapes keep it to a few graphs
            fn = torch.compile(self._step, dynamic=bool(self._growing), options=_COMPILE_OPTIONS)
            self.__dict__["_compiled_step"] = fn
        x = x.contiguous()  # x[:, t] of a [B, T, I] input has a stride that depends on T: one graph for every T
        if self.compile is True:
            return fn(x, state, False)
        try:
            if self._compiled_calls >= EAGER_BACKWARD_LOWERING_CALLS:
                return fn(x, state, False)
            self._compiled_calls += 1
            return with_backward_compiled_now(fn, x, state)
        except Exception as error:  # noqa: BLE001  (compile: auto never fails a run: eager computes the same)
            if self._compile_failed or type(error).__name__ == "_StopRecomputationError":
                raise  # the latter is torch.utils.checkpoint ending a recomputation early: control flow
            self._compile_failed = True
            error = getattr(error, "inner_exception", None) or error  # Dynamo's BackendCompilerFailed wraps the cause
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            warnings.warn(
                f"mannkit: compiling the MemoryCell step failed ({type(error).__name__}: {first[:200]}); "
                "running eagerly (set compile: false to silence this).",
                stacklevel=2,
            )
            return self._step(x, state, False)

    def _compiling(self) -> bool:
        """Whether this (non-recording) step runs compiled: always for ``true``, see ``compile`` for ``auto``."""
        if self.compile is True:
            return True
        if self.compile is False or self._compile_failed:
            return False
        return (
            self._compile_pays
            and self.training
            and torch.is_grad_enabled()
            and self._eager_seconds >= AUTO_COMPILE_AFTER_S
        )

    def _step(self, x: Tensor, state: CellState, record: bool) -> tuple[Tensor, CellState, dict[str, Tensor]]:
        B = x.shape[0]
        h, controller_state = self.controller(torch.cat([x, state.reads], dim=-1), state.controller)
        if self.dropout:
            h = nn.functional.dropout(h, self.dropout, self.training)  # h_t [B, H], training only
        params = self.project(h)  # [B, sum_banks count * P]
        if self.clip is not None:
            params = params.clamp(-self.clip, self.clip)
        banks = params.split(self._bank_widths, dim=-1)  # one view per bank, [B, count * P] each
        names, mems, where = self._names, self._all, self._where
        memory_states = [state.memory] if names is None else [state.memory[name] for name in names]  # one per memory
        head_states: list[Any] = list(state.heads)
        reads: list[Tensor | None] = [None] * len(self.heads)
        trace: dict[str, list[Tensor]] = {}
        for i in self._order:
            head, m = self.heads[i], where[i]
            bank = banks[i].view(B, head.count, self._param_sizes[i])  # [B, count * P] -> [B, count, P]
            out = head(bank, mems[m], memory_states[m], head_states[i], record)
            memory_states[m], head_states[i] = out.memory_state, out.state
            if out.reads is not None:
                reads[i] = out.reads.reshape(B, -1)  # [B, count, W] -> [B, count * W]
            for key, value in out.trace.items():
                trace.setdefault(self._prefix[i] + key, []).append(value)
        memory_state = memory_states[0] if names is None else dict(zip(names, memory_states))
        read_list = [r for r in reads if r is not None]
        if len(read_list) == 1:
            read_vector = read_list[0]  # no copy for a single read bank
        elif read_list:
            read_vector = torch.cat(read_list, dim=-1)  # [B, R * W], banks in the order of ``heads``
        else:
            read_vector = x.new_zeros(B, 0)
        y = self.output(torch.cat([h, read_vector], dim=-1))
        merged: dict[str, Tensor] = {}
        if record:
            merged = {k: torch.cat(v, dim=1) for k, v in trace.items()}  # banks of one kind side by side
            for m, mem in enumerate(mems):
                prefix = "" if m == 0 else names[m] + "/"
                merged.update({prefix + k: v for k, v in mem.describe(memory_states[m]).items()})
        return y, CellState(controller_state, memory_state, tuple(head_states), read_vector), merged

    def forward(self, x: Tensor, record: bool = False):  # noqa: ANN201
        """``x [B, T, I]`` -> logits ``[B, T, O]`` (and a trace ``[B, T, ...]`` when ``record``)."""
        self._require_bound()
        check_shape(x, ("B", "T", self.input_size), "MemoryCell input", "the task's input width must match the model's")
        compiled = not record and self._compiling()  # fixed for the whole forward and its recomputation
        timed = self.compile == "auto" and not record and not compiled and self._compile_pays
        started = time.perf_counter() if timed else 0.0
        k = self.checkpoint_interval(x.shape[0], x.shape[1], x.dtype)
        if k is None or record or not torch.is_grad_enabled():
            out = super().forward(x, record)
        else:
            B, T, _ = x.shape
            state = self.initial_state(B, x.device, x.dtype)
            outputs: list[Tensor] = []
            for start in range(0, T, k):
                # only the state at the segment's end is kept; the steps inside are recomputed in backward
                ys, state = checkpoint(self._segment, x[:, start : start + k], state, compiled, use_reentrant=False)
                outputs.append(ys)  # [B, <=k, O]
            out = SequenceOutput(torch.cat(outputs, dim=1), None)
        if timed and self.training and torch.is_grad_enabled():
            self._eager_seconds += time.perf_counter() - started
        return out

    def checkpoint_interval(self, batch_size: int, steps: int, dtype: torch.dtype) -> int | None:
        """The k of ``checkpoint_every`` for a ``[batch_size, steps]`` training sequence (None: save every step)."""
        k = self.checkpoint_every
        if k != "auto":
            return k
        if not self._recomputable:
            return None
        step_bytes = sum(saved_bytes_per_step(mem, batch_size, dtype) for mem in self._all)
        return auto_checkpoint_every(step_bytes, steps)

    def _segment(self, x: Tensor, state: CellState, compiled: bool) -> tuple[Tensor, CellState]:
        """Run ``x [B, k, I]`` from ``state``: ``(logits [B, k, O], state)``.

        ``compiled`` is decided once per forward and handed to the checkpoint, so that the backward's
        recomputation runs the step as the forward did even when ``compile: auto`` turns on in between
        (a compiled and an eager step save different tensors, which the checkpoint refuses).
        """
        outputs = []
        for t in range(x.shape[1]):
            if compiled and not self._compile_failed:
                y, state, _ = self._run_compiled(x[:, t], state)
            else:
                y, state, _ = self._step(x[:, t], state, False)
            outputs.append(y)
        return torch.stack(outputs, dim=1), state

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_compiled_step", None)  # compiled functions do not pickle (DDP spawn pickles the model)
        return state
