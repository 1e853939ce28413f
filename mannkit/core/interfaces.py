"""The public interfaces every component implements (whole models: :mod:`mannkit.core.models`, re-exported here).

Shape letters: B batch, T time, I input width, O output width, N memory slots,
W word size, R read heads, h heads of one bank, P parameters per head,
H controller output size, K sparse neighbours.

Recurrent state is data: ``initial_state(...)`` builds it, a step takes it and
returns a new one; nothing is stored on ``self`` during a step. States are
NamedTuples (or tuples) of tensors, so they are checkpointable, batch-first and
friendly to ``torch.compile``.

Slot masks: a memory state may carry a ``mask`` field, bool ``[B, N]``, True where a slot
holds data (a story shorter than the memory leaves padded slots). Every addressing must
give masked-out slots exactly zero weight; :func:`slot_mask` reads the field (None when a
state has none, meaning every slot is valid).

Sizes that follow from other parts are never typed by the user: the assembling
module calls ``bind(...)`` once after construction, which creates the layers
eagerly (so optimizers and DDP see every parameter).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from mannkit.core.component import Component, State
from mannkit.core.errors import ConfigError
from mannkit.core.models import (
    NOT_AN_ANSWER,
    QAModel,
    QAOutput,
    RecurrentCell,
    SequenceModel,
    SequenceOutput,
    stack_steps,
)

__all__ = [
    "State",
    "Component",
    "Controller",
    "Memory",
    "Addressing",
    "Head",
    "HeadOutput",
    "SequenceModel",
    "SequenceOutput",
    "RecurrentCell",
    "QAModel",
    "QAOutput",
    "NOT_AN_ANSWER",
    "slot_mask",
    "stack_steps",
]


class Controller(Component, ABC):
    """Maps the step input ``x [B, I]`` and its state to an output ``h [B, H]`` and a new state.

    ``I`` is the data width plus the read vectors of the previous step; the cell
    calls ``bind(input_size=I)`` once. ``output_size`` is ``H``.
    """

    registry_kind = "controller"

    @property
    @abstractmethod
    def output_size(self) -> int:
        """H, the width of the controller's output."""

    @abstractmethod
    def bind(self, input_size: int) -> None:
        """Create the layers for inputs of width ``input_size``."""

    @abstractmethod
    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State:
        """The state before the first step."""

    @abstractmethod
    def forward(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """``x [B, I]`` -> ``(h [B, H], state)``."""


class Memory(Component, ABC):
    """Owns a memory state (e.g. a matrix ``[B, N, W]`` plus bookkeeping) and the operations on it.

    Heads call the memory's own operations (``read``/``write`` for a matrix memory,
    ``push``/``pop`` for a stack); the abstract contract is only the state and its shape.

    **Growing state.** Most memories keep every state tensor's shape over a step. A memory that
    stores one entry per step (a neural stack or queue, an append-only tape) has no fixed N: it
    declares the axes that grow in :attr:`growing`, ``{state field: axis}``, e.g. ``{"values": 1}``
    for a state ``values [B, t, W]`` that gains one row per step (t rows after t steps). Then:

    - the conformance kit lets the declared axes change size over a step and still checks
      everything else: batch-first, finite, the dtype kept, the other axes unchanged, determinism;
    - recorded traces and :meth:`describe` entries whose size changes from step to step are padded
      with zeros after the last entry along each axis, to the largest size of the sequence, before
      they are stacked to ``[B, T, ...]`` (see :func:`stack_steps`), so pictures draw them;
    - ``MemoryCell(compile=true)`` compiles the step with dynamic shapes (a few graphs for any T).

    Heads over a growing memory keep a fixed-shape state of their own.

    >>> class Tape(Memory):
    ...     growing = {"values": 1}
    >>> dict(Tape.growing), dict(Memory.growing)
    ({'values': 1}, {})
    """

    registry_kind = "memory"

    #: ``{state field: axis}`` for each state tensor whose size along ``axis`` (never 0, the batch)
    #: changes during a sequence; empty: every state tensor keeps its shape.
    growing: ClassVar[Mapping[str, int]] = MappingProxyType({})

    @property
    @abstractmethod
    def word_size(self) -> int:
        """W, the width of one memory word (and of one read vector)."""

    @abstractmethod
    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State:
        """The memory before the first step."""

    def describe(self, state: State) -> dict[str, Tensor]:
        """Tensors worth drawing (name -> ``[B, ...]``), e.g. ``{"memory": [B, N, W]}``; empty by default."""
        return {}


class Addressing(Component, ABC):
    """Turns head parameters, the memory and its own previous state into weightings ``[B, h, N]``.

    ``param_size(memory)`` is P, the number of raw (unactivated) parameters one head
    needs; the head's projection produces ``[B, h, P]`` and the addressing applies
    its own activations (softplus for strengths, sigmoid for gates, ...).

    Optional: an addressing whose weights are a softmax of scores may also offer
    ``scores(params, memory_state) -> [B, h, N]``, the raw scores before the softmax (0 at
    slots not in use). MemN2N's linear start uses them; it refuses an addressing without.
    """

    registry_kind = "addressing"

    def bind(self, memory: Memory) -> None:
        """Create any layers that depend on ``memory`` (e.g. a projection over its N slots); called once by the
        owning head's ``bind`` before ``param_size``. Raise :class:`ConfigError` if the memory does not fit.
        Nothing by default."""

    @abstractmethod
    def param_size(self, memory: Memory) -> int:
        """P for one head over ``memory``."""

    def initial_state(self, batch_size: int, heads: int, memory: Memory, device: torch.device, dtype: torch.dtype) -> State:
        """State kept between steps (e.g. the previous weighting ``[B, h, N]``); none by default."""
        return ()

    @abstractmethod
    def forward(self, params: Tensor, memory_state: State, state: State) -> tuple[Tensor, State]:
        """``params [B, h, P]`` -> ``(weights [B, h, N], state)``; weights are non-negative and sum to 1 over N."""


class HeadOutput(NamedTuple):
    """What one bank of heads gives back after a step."""

    reads: Tensor | None
    """``[B, h, W]`` read vectors, or None for a head that does not read."""
    memory_state: State
    state: State
    trace: dict[str, Tensor]
    """Tensors to draw (e.g. ``{"read_weights": [B, h, N]}``); filled only when asked to record."""


class Head(Component, ABC):
    """A bank of ``count`` heads of one kind, vectorised over the bank.

    Shape letters: B batch, h = ``count`` heads of the bank, P = ``param_size(memory)`` raw
    parameters per head, R = ``read_size(memory)`` width of one head's read, N memory slots.

    **One step.** The cell projects the controller output ``[B, H]`` to ``h * P`` numbers per
    example (a linear layer sized from :meth:`param_size`) and hands this bank its slice as
    ``params [B, h, P]``. :meth:`forward` returns a :class:`HeadOutput`: the reads ``[B, h, R]``
    (None when R is 0), the memory state after the bank acted, the bank's own state, and a trace.
    Every one of the P numbers must be used: the conformance kit fails a head whose ``param_size``
    counts numbers that ``forward`` ignores (the projection would train rows that do nothing).

    **The contract, member by member.**

    - ``count``: h, the heads of the bank (they share weights and are vectorised).
    - ``stage``: the order banks act in within one step; lower first, ties in the order the cell
      lists them. Stage 0 writes, stage 1 reads (the default), so reads see this step's writes.
      A head that both writes and reads (a stack's push/pop head, an append-then-attend tape
      head) takes stage 0: it changes the memory, so it acts with the writers, later read banks
      see its writes, and tools such as ``mannkit.testing.head_sets`` count it as a writer. Its
      own reads are returned all the same: every bank with ``read_size > 0`` contributes reads,
      whatever its stage.
    - ``needs``: the memory operations (method names) the head calls, e.g. ``("read", "write")``
      for :class:`~mannkit.nn.WriteHead`, ``("dnc_read", "attach_read_heads")`` for the DNC read
      head, ``("push", "pop")`` for a stack head. A memory *fits* the head when it has each as a
      callable attribute. ``()`` means the head calls none (it reads the state's fields itself);
      ``None`` (the default) declares nothing. :meth:`bind` still refuses a memory that does not
      fit, with a :class:`~mannkit.core.errors.ConfigError`; ``needs`` lets tools decide without
      building anything: ``mannkit.testing.head_sets`` pairs every registered memory with the
      registered heads that fit it, and the mixing tests train each pair under every controller.
    - :meth:`bind` (once, before the optimizer exists): check the memory and create layers that
      depend on it (and bind the head's addressing).
    - :meth:`param_size` / :meth:`read_size`: P and R for this memory.
    - :meth:`param_bias` (optional): the initial bias ``[P]`` of the projection rows that make one
      head's P numbers (NaN where the projection's own initialisation stays), for a gate that must
      start closed or open; the cell sets it once, when it builds the projection. None by default.
    - :meth:`initial_state`: the bank's own recurrent state at the start of a sequence (e.g. the
      previous weightings ``[B, h, N]`` an NTM head interpolates with), built with the given
      ``device`` and ``dtype``, batch-first, finite; ``()`` for none. Like every state it is data:
      returned by :meth:`forward`, never kept on ``self``; it must keep its shapes and dtypes
      over a step (only a memory's declared ``growing`` axes may change).
    - :meth:`forward`: fills ``trace`` only when ``record`` is true, with tensors ``[B, ...]``.

    **How a trace entry is drawn.** The cell stacks each entry over time to ``[B, T, ...]``
    (prefixed with the memory's name for a head on a named memory); the picture callbacks
    (:class:`~mannkit.callbacks.MemoryPictures`) take one example, ``[T, ...]``, and
    :func:`mannkit.viz.view_of` picks the picture from the entry's name and rank alone:
    ``<kind>_weights [B, h, N]`` (``read_weights``, ``write_weights``) becomes one time x slot
    panel per head; any other ``[B, N, W]`` the matrix at the last step; ``[B, K]`` a time x
    index heatmap (a memory-slot axis when K is the N of a ``*_weights`` entry); ``[B]`` a line
    over time; other ranks are not drawn. Name an entry ``*_weights`` only if it is ``[B, h, N]``.
    """

    registry_kind = "head"
    stage: int = 1
    #: The memory operations this head calls (see above); None: not declared.
    needs: ClassVar[tuple[str, ...] | None] = None

    @property
    @abstractmethod
    def count(self) -> int:
        """Number of heads in the bank."""

    def bind(self, memory: Memory) -> None:
        """Check compatibility with ``memory`` and create any layers; raise :class:`ConfigError` if incompatible."""

    @abstractmethod
    def param_size(self, memory: Memory) -> int:
        """P, raw parameters per head."""

    def read_size(self, memory: Memory) -> int:
        """Width of what one head reads (0 for heads that only write)."""
        return 0

    def param_bias(self, memory: Memory) -> Tensor | None:
        """Initial bias of one head's P raw numbers, ``[P]`` (NaN: keep the projection's own init); None: no change.

        The cell copies it into its projection's bias for every head of the bank, once, when it
        builds the projection (a checkpoint's weights replace it as usual). E.g. the DNC write
        head's ``free_gate_bias`` starts its free gates nearly closed.
        """
        return None

    def initial_state(self, batch_size: int, memory: Memory, device: torch.device, dtype: torch.dtype) -> State:
        return ()

    @abstractmethod
    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, count, P]`` -> :class:`HeadOutput`."""


def slot_mask(memory_state: State) -> Tensor | None:
    """The state's slot mask, bool ``[B, N]`` (True = slot in use), or None when every slot is in use."""
    return getattr(memory_state, "mask", None)
