"""The public interfaces every component implements.

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
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from mannkit.core.config import Configurable
from mannkit.core.errors import ConfigError

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

State = Any
"""A NamedTuple/tuple of tensors (possibly nested, possibly empty)."""


class Component(Configurable, nn.Module):
    """Base of every component: an ``nn.Module`` that records its config (see :mod:`mannkit.core.config`)."""

    registry_kind: str | None = None

    def _bind_once(self, **sizes: int) -> bool:
        """Record bound sizes; return True the first time, False if already bound to the same sizes."""
        old = self.__dict__.get("_bound_sizes")
        if old is None:
            self.__dict__["_bound_sizes"] = dict(sizes)
            return True
        if old != sizes:
            raise ConfigError(
                f"{type(self).__name__} is already built for {old} and cannot be rebuilt for {sizes}; "
                "use a fresh component for a different size."
            )
        return False

    def _bind_io(self, input_size: int, output_size: int) -> bool:
        """:meth:`_bind_once` for a sequence model's data widths I and O, which must be positive; sets them.

        Returns True the first time (the caller then builds its layers), False if already bound alike.
        """
        if not self._bind_once(input_size=input_size, output_size=output_size):
            return False
        if input_size < 1 or output_size < 1:
            raise ConfigError(
                f"{type(self).__name__}: input_size ({input_size}) and output_size ({output_size}) must be positive; "
                "they come from the task, so check the data settings."
            )
        self.input_size, self.output_size = input_size, output_size
        return True

    @property
    def is_bound(self) -> bool:
        return "_bound_sizes" in self.__dict__

    def extra_repr(self) -> str:
        args = self.__dict__.get("_init_config", {})
        return ", ".join(f"{k}={v!r}" for k, v in args.items() if not isinstance(v, (nn.Module, list)))


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


class SequenceOutput(NamedTuple):
    """Output of a sequence model."""

    logits: Tensor
    """``[B, T, O]``, before the loss's sigmoid or softmax."""
    trace: dict[str, Tensor] | None
    """Recorded internals, each ``[B, T, ...]`` (only when asked to record)."""
    losses: dict[str, Tensor] | None = None
    """Loss terms of the model's own, each a weighted scalar (ACT's ponder cost ``tau * sum_t (N(t) + R(t))``):
    ``SequenceSystem`` adds each to the training loss and logs it as ``train/loss_<name>``; None for none."""
    stats: dict[str, Tensor] | None = None
    """Scalars to log beside the loss, never added to it (ACT's ``ponder_mean``, ``ponder_max``):
    ``SequenceSystem`` logs each as ``train/<name>`` and ``val/<name>``; None for none."""


class SequenceModel(Component, ABC):
    """Any model mapping ``x [B, T, I]`` to logits ``[B, T, O]``: a recurrent cell, a wrapper (ACT), ..."""

    registry_kind = "model"

    @abstractmethod
    def bind(self, input_size: int, output_size: int) -> None:
        """Create the layers for I inputs and O outputs per step."""

    @abstractmethod
    def forward(self, x: Tensor, record: bool = False) -> SequenceOutput:
        """``x [B, T, I]`` -> :class:`SequenceOutput` with logits ``[B, T, O]``."""


class RecurrentCell(SequenceModel):
    """A sequence model that is one step unrolled over time; the time loop is the only Python loop."""

    @abstractmethod
    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State: ...

    @abstractmethod
    def step(self, x: Tensor, state: State, record: bool = False) -> tuple[Tensor, State, dict[str, Tensor]]:
        """``x [B, I]`` -> ``(y [B, O], state, trace)``."""

    def forward(self, x: Tensor, record: bool = False) -> SequenceOutput:
        B, T, _ = x.shape
        state = self.initial_state(B, x.device, x.dtype)
        outputs: list[Tensor] = []
        traces: list[dict[str, Tensor]] = []
        for t in range(T):
            y, state, trace = self.step(x[:, t], state, record)
            outputs.append(y)
            if record:
                traces.append(trace)
        stacked = None
        if record and traces:
            stacked = {k: stack_steps([tr[k] for tr in traces]) for k in traces[0]}  # [B, T, ...]
        return SequenceOutput(torch.stack(outputs, dim=1), stacked)


def stack_steps(values: Sequence[Tensor]) -> Tensor:
    """Stack T per-step tensors ``[B, ...]`` to ``[B, T, ...]``, zero-padding entries that grow.

    Entries of one shape are stacked as they are. An entry whose size changes from step to step
    (the state of a growing memory, a weighting over its rows) is padded with zeros after its last
    element along each axis, up to the largest size at any step; all steps must have the same rank.

    >>> stack_steps([torch.ones(2, 1), torch.ones(2, 3)])[0]
    tensor([[1., 0., 0.],
            [1., 1., 1.]])
    """
    shape = values[0].shape
    if all(v.shape == shape for v in values):
        return torch.stack(list(values), dim=1)
    ranks = {v.dim() for v in values}
    if len(ranks) != 1:
        raise ValueError(f"stack_steps: per-step entries must keep their rank, got shapes {[list(v.shape) for v in values]}.")
    size = [max(v.shape[d] for v in values) for d in range(values[0].dim())]
    padded = []
    for v in values:
        pad: list[int] = []
        for d in reversed(range(v.dim())):  # F.pad takes (before, after) pairs from the last axis backwards
            pad += [0, size[d] - v.shape[d]]
        padded.append(nn.functional.pad(v, pad))
    return torch.stack(padded, dim=1)  # T x [B, ...max] -> [B, T, ...max]


def slot_mask(memory_state: State) -> Tensor | None:
    """The state's slot mask, bool ``[B, N]`` (True = slot in use), or None when every slot is in use."""
    return getattr(memory_state, "mask", None)


#: What a QA system writes as the prediction when a model's scores outside the answer classes win
#: (:attr:`QAOutput.rest`).
NOT_AN_ANSWER = "<not an answer>"


class QAOutput(NamedTuple):
    """Output of a question-answering model."""

    logits: Tensor
    """``[B, A]`` scores over the A answer classes (before the softmax)."""
    trace: dict[str, Tensor] | None
    """Recorded internals (only when asked), e.g. ``{"attention": [B, hops, N]}`` over story sentences."""
    rest: Tensor | None = None
    """Optional ``[B]``: the log of the summed exponentiated scores of outputs that are no answer class (e.g. the
    other words of the vocabulary when the model's softmax covers the whole vocabulary, as MemN2N's original
    code does). The loss then normalises over them too, and a row where they outweigh every class is wrong."""

    def scores(self) -> Tensor:
        """The scores the loss and the metrics use: ``logits [B, A]``, or ``[B, A + 1]`` with ``rest`` as the last
        column (a class no answer has, so it only ever counts as a wrong prediction).

        >>> import torch
        >>> QAOutput(torch.zeros(2, 3), None, torch.ones(2)).scores().shape
        torch.Size([2, 4])
        """
        if self.rest is None:
            return self.logits
        return torch.cat([self.logits, self.rest.unsqueeze(-1)], dim=-1)  # [B, A] + [B, 1] -> [B, A + 1]


class QAModel(Component, ABC):
    """Story + question -> answer: a model that reads a whole story into memory and attends over it.

    Shape letters: N sentences in the story (memory slots), L words per sentence, Q words in
    the question, V words in the vocabulary (id 0 is padding), A answer classes.

    A story is ``[B, N, L]`` word ids in story order, oldest sentence first; sentences are
    right-padded with 0 and unused sentence slots (after the last one) are all 0. The
    question is ``[B, Q]``. The assembling system calls ``bind`` once with sizes read from
    the data.
    """

    registry_kind = "model"

    @abstractmethod
    def bind(self, vocab_size: int, answer_size: int, max_sentences: int, sentence_length: int, question_length: int) -> None:
        """Create the layers for a vocabulary of V words, A answers and stories of N x L words.

        A model may accept one more keyword, ``answer_words`` (int64 ``[A]``: the word id of each
        one-word answer, 0 for others); ``QASystem`` passes it when ``bind`` takes it (MemN2N ties
        its answer matrix to its last output embedding with it)."""

    @abstractmethod
    def forward(self, story: Tensor, question: Tensor, record: bool = False) -> QAOutput:
        """``story [B, N, L]``, ``question [B, Q]`` (int64) -> :class:`QAOutput` with logits ``[B, A]``."""
