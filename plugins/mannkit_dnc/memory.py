"""The dense DNC memory (Graves et al. 2016): a matrix with usage, a temporal link matrix and precedence.

Shape letters: B batch, N memory slots, W word size, R read heads.

:class:`DNCMemory` owns the state and composes the mechanisms of :mod:`mannkit_dnc.mechanisms`
for the DNC heads (:mod:`mannkit_dnc.heads`), which call its ``dnc_write`` and ``dnc_read``:

- write (stage 0): retention and usage from the previous read and write weightings, allocation,
  the write content weighting on ``M_{t-1}``, the write weighting, erase/add, then the link,
  precedence and — for the read heads that come next — the directional weightings
  ``f_t = L_t w^r_{t-1}`` and ``b_t = L_t^T w^r_{t-1}`` (all in one fused function);
- read (stage 1): the read content weightings on ``M_t``, the read weightings mixed by the read
  modes, and the read vectors.

It also offers the plain matrix ``read(weights, state)`` / ``write(weights, erase, add, state)``,
so the core ``ReadHead`` / ``WriteHead`` work on it (they leave usage, link and precedence alone).

>>> import torch
>>> from mannkit.cell import MemoryCell
>>> from mannkit.nn import LSTMController
>>> from mannkit_dnc import DNCReadHead, DNCWriteHead
>>> cell = MemoryCell(LSTMController(16), DNCMemory(slots=11, word_size=5), [DNCWriteHead(), DNCReadHead(count=2)])
>>> cell.bind(input_size=3, output_size=2)
>>> out = cell(torch.zeros(4, 7, 3), record=True)
>>> out.logits.shape, out.trace["read_weights"].shape, out.trace["usage"].shape
(torch.Size([4, 7, 2]), torch.Size([4, 7, 2, 11]), torch.Size([4, 7, 11]))
>>> out.trace["link"].shape, out.trace["precedence"].shape, out.trace["read_modes"].shape
(torch.Size([4, 7, 11, 11]), torch.Size([4, 7, 11]), torch.Size([4, 7, 2, 3]))
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.interfaces import Memory
from mannkit.core.registry import register
from mannkit.nn.memory import erase_add, read
from mannkit_dnc.buffers import keep_freed_memory
from mannkit_dnc.fused import erase_add as fused_erase_add
from mannkit_dnc.fused import read_addressing, temporal_step, temporal_step_eager, write_addressing
from mannkit_dnc.mechanisms import ALLOCATION_EPS

__all__ = ["DNCMemory", "DNCState"]


class DNCState(NamedTuple):
    """The dense DNC memory state (every field batch-first)."""

    memory: Tensor  # M_t, [B, N, W]
    usage: Tensor  # u_t, [B, N]
    link: Tensor  # L_t, [B, N, N] (the initial one is an expanded zero, no storage)
    precedence: Tensor  # p_t, [B, N]
    read_weights: Tensor  # w^r_t, [B, R, N]
    write_weights: Tensor  # w^w_t, [B, 1, N]
    forward_weights: Tensor  # f_t = L_t w^r_{t-1}, [B, R, N]: made by the write for the reads that follow it
    backward_weights: Tensor  # b_t = L_t^T w^r_{t-1}, [B, R, N]


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"DNCMemory: {name} must be a positive integer, got {value!r}; set {name} to 1 or more.")


@register
class DNCMemory(Memory):
    """The DNC's memory: N words of W numbers, usage-based allocation and temporal links.

    Use it with one :class:`~mannkit_dnc.heads.DNCWriteHead` and one
    :class:`~mannkit_dnc.heads.DNCReadHead` bank (whose ``count`` is R). The memory starts
    all-zero each sequence, as in the paper. Each step costs O(N^2) time and keeps one
    ``[B, N, N]`` link matrix for the backward pass.

    Args:
        slots: N, the number of memory words.
        word_size: W, the width of each word (and of each read vector).
        allocation_eps: usage is floored at this before the allocation's cumulative product
            (DeepMind's safeguard for its gradient); 0 for the paper's formula exactly.

    For :class:`~mannkit.cell.MemoryCell`'s ``auto`` settings it says whether compiling its step pays
    (``compile_pays``: up to :attr:`COMPILE_UP_TO_SLOTS` slots) and what a step saves for the
    backward pass (:meth:`saved_bytes_per_step`, mostly the ``[B, N, N]`` link matrix), from which
    ``checkpoint_every: auto`` turns on checkpointing over time at large N.

    On CPU its link update runs as C++ loops (:mod:`mannkit_dnc.link_kernel`, built on first use;
    the PyTorch form if that fails), and its first state asks glibc's malloc to keep freed memory
    for reuse (:func:`mannkit_dnc.buffers.keep_freed_memory`, process-wide, off with
    ``MANNKIT_MALLOC_TUNING=0``).
    """

    #: ``compile: auto`` compiles the step up to this many slots. Measured (issue 16, batch 16, one
    #: thread): at N = 64 the compiled step took about a third of the eager one's time (the step is
    #: dozens of small operations); at N = 256 it was no faster, and at N = 1024 over four times slower
    #: (the ``[B, N, N]`` passes are already hand-fused, and Inductor's code for them is slower).
    COMPILE_UP_TO_SLOTS = 128
    #: a compiled step above this many slots runs the link update eagerly between its compiled parts
    COMPILE_LINK_UP_TO_SLOTS = 128

    @property
    def compile_pays(self) -> bool:
        """Whether compiling the step pays (MemoryCell ``compile: auto``): small memories only."""
        return self.slots <= self.COMPILE_UP_TO_SLOTS

    def __init__(self, slots: int = 16, word_size: int = 16, allocation_eps: float = ALLOCATION_EPS) -> None:
        super().__init__()
        _positive_int("slots", slots)
        _positive_int("word_size", word_size)
        if isinstance(allocation_eps, bool) or not isinstance(allocation_eps, (int, float)) or not 0 <= allocation_eps < 1:
            raise ConfigError(
                f"DNCMemory: allocation_eps must be a number in [0, 1), got {allocation_eps!r}; keep the default 1e-6."
            )
        self.slots, self._word_size, self.allocation_eps = slots, word_size, float(allocation_eps)
        self.read_heads = 0

    @property
    def word_size(self) -> int:
        return self._word_size

    def saved_bytes_per_step(self, batch_size: int, dtype: torch.dtype) -> int:
        """About what one training step saves for the backward pass: one ``[B, N, N]`` link matrix plus ``O(B N (W + R))``."""
        N, W, R = self.slots, self._word_size, max(self.read_heads, 1)
        size = torch.empty((), dtype=dtype).element_size()
        return batch_size * (N * N + N * (4 * W + 12 * R + 16)) * size

    def attach_read_heads(self, count: int) -> None:
        """Record R, the number of DNC read heads (a DNCReadHead calls this when it is bound)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"DNCMemory: the read head count must be a positive integer, got {count!r}; set count to 1 or more.")
        if self.read_heads not in (0, count):
            raise ConfigError(
                f"DNCMemory already serves {self.read_heads} read heads and cannot serve {count} as well; "
                "use one DNCReadHead bank (its count is the number of read heads) per DNCMemory."
            )
        self.read_heads = count

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> DNCState:
        B, N, W, R = batch_size, self.slots, self._word_size, self.read_heads

        def zeros(*shape: int) -> Tensor:
            return torch.zeros(shape, device=device, dtype=dtype)

        if torch.device(device).type == "cpu":
            keep_freed_memory()  # once per process: freed step tensors stay in the heap (no page faults every step)
        link = torch.zeros((), device=device, dtype=dtype).expand(B, N, N)  # no [B, N, N] storage until the first write
        return DNCState(zeros(B, N, W), zeros(B, N), link, zeros(B, N), zeros(B, R, N), zeros(B, 1, N), zeros(B, R, N), zeros(B, R, N))

    # -- the DNC heads' operations ----------------------------------------------------------------
    def dnc_write(
        self,
        state: DNCState,
        key: Tensor,
        strength: Tensor,
        erase: Tensor,
        vector: Tensor,
        free_gates: Tensor,
        allocation_gate: Tensor,
        write_gate: Tensor,
        record: bool = False,
    ) -> tuple[DNCState, dict[str, Tensor]]:
        """One DNC write, then the temporal linkage for the reads that follow.

        Args:
            state: the memory state before the write.
            key: the write key, ``[B, 1, W]``.
            strength: the write strength beta >= 1, ``[B, 1]``.
            erase: e in [0, 1], ``[B, 1, W]``.
            vector: the write vector v, ``[B, 1, W]``.
            free_gates: f in [0, 1], ``[B, R]``.
            allocation_gate: g^a in [0, 1], ``[B, 1]``.
            write_gate: g^w in [0, 1], ``[B, 1]``.
            record: also return the weightings to draw.

        Returns:
            The new state and a trace (``write_weights`` and ``allocation_weights`` ``[B, 1, N]``
            when recording, else empty).
        """
        if free_gates.shape[-1] != state.read_weights.shape[1]:
            raise ShapeError(
                f"DNCMemory.dnc_write: free_gates has shape {list(free_gates.shape)} but the state has "
                f"{state.read_weights.shape[1]} read heads; bind the read heads before the write head asks its size."
            )
        usage, weights, allocation = write_addressing(  # u_t, w^w_t and a_t, [B, N] each
            state.memory, state.usage, state.write_weights[:, 0], state.read_weights,
            key, strength, free_gates, allocation_gate, write_gate, self.allocation_eps,
        )  # fmt: skip
        write_weights = weights.unsqueeze(1)  # [B, N] -> [B, 1, N]
        memory = fused_erase_add(state.memory, weights, erase, vector)  # M_t
        link_step = temporal_step_eager if torch.compiler.is_compiling() and self.slots > self.COMPILE_LINK_UP_TO_SLOTS else temporal_step
        link, precedence, forward, backward = link_step(state.link, weights, state.precedence, state.read_weights)
        new = DNCState(memory, usage, link, precedence, state.read_weights, write_weights, forward, backward)
        trace = {"write_weights": write_weights, "allocation_weights": allocation.unsqueeze(1)} if record else {}
        return new, trace

    def dnc_read(
        self, state: DNCState, keys: Tensor, strengths: Tensor, modes: Tensor, record: bool = False
    ) -> tuple[Tensor, DNCState, dict[str, Tensor]]:
        """R DNC reads: content on ``M_t``, mixed with the directional weightings by the read modes.

        Args:
            state: the memory state after this step's write.
            keys: the read keys, ``[B, R, W]``.
            strengths: the read strengths beta >= 1, ``[B, R]``.
            modes: pi, ``[B, R, 3]`` (backward, content, forward), softmaxed.
            record: also return the read weightings and modes.

        Returns:
            The read vectors ``[B, R, W]``, the new state and a trace (``read_weights``
            ``[B, R, N]`` and ``read_modes`` ``[B, R, 3]`` when recording, else empty).
        """
        if keys.shape[1] != state.forward_weights.shape[1]:
            raise ShapeError(
                f"DNCMemory.dnc_read: keys has shape {list(keys.shape)} but the state has {state.forward_weights.shape[1]} "
                "read heads; the read head bank's count must be the one attached to this memory."
            )
        # c^r_t, then w^r_t = pi_b b_t + pi_c c^r_t + pi_f f_t [B, R, N], then r_t = w^r_t M_t [B, R, W]
        reads, weights = read_addressing(state.memory, keys, strengths, modes, state.forward_weights, state.backward_weights)
        trace = {"read_weights": weights, "read_modes": modes} if record else {}  # modes pi [B, R, 3], for the pictures
        return reads, state._replace(read_weights=weights), trace

    # -- plain matrix access, for the core heads ----------------------------------------------------
    def read(self, weights: Tensor, state: DNCState) -> Tensor:
        """``weights [B, h, N]`` -> read vectors ``[B, h, W]`` (usage, links and read weightings unchanged)."""
        return read(weights, state.memory)

    def write(self, weights: Tensor, erase: Tensor, add: Tensor, state: DNCState) -> DNCState:
        """Erase then add (see :func:`mannkit.nn.memory.erase_add`); usage, links and precedence unchanged."""
        return state._replace(memory=erase_add(state.memory, weights, erase, add))

    def describe(self, state: DNCState) -> dict[str, Tensor]:
        """What the pictures show of a state (called only with ``record=True``, so never in a plain training step).

        ``memory [B, N, W]``, ``usage [B, N]``, ``precedence [B, N]`` (p_t, drawn over time) and
        ``link [B, N, N]`` (L_t; :class:`~mannkit.callbacks.MemoryPictures` draws the last step).
        """
        return {"memory": state.memory, "usage": state.usage, "precedence": state.precedence, "link": state.link}
