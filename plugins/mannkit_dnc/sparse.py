"""The sparse DNC memory (SAM and SDNC, Rae et al. 2016, "Scaling Memory-Augmented Neural Networks
with Sparse Reads and Writes"): the DNC's reads, writes and temporal links, touching K slots per head.

Shape letters: B batch, N memory slots, W word size, R read heads, K sparse neighbours,
L = K_L link entries per row, S = K + 1 slots one write touches.

It speaks the dense DNC's head protocol (``DNCWriteHead`` / ``DNCReadHead`` call
:meth:`SparseDNCMemory.dnc_write` and :meth:`SparseDNCMemory.dnc_read`), so a YAML file switches
between the two by the memory's ``class_path`` alone. Per step, each head costs one search pass
over the rows written so far (or an index look-up, ``search="ann"``) plus ``O(K W + K K_L)``
work, and usage costs one in-place pass over ``[B, N]``; autograd keeps ``O(B (R + 1) K W)``
numbers per step instead of the ``[B, N, W]`` memory (see :mod:`mannkit_dnc.sparse_ops`), and
the backward pass holds one ``[B, N, W]`` gradient. The selections (searches, top-K cuts, the
allocated slot) are not differentiable; the weights over the selected slots are.

Design (what differs from the dense DNC is marked *approximation*):

- **Memory in place.** ``M [B, N, W]`` is one buffer per sequence (made by ``initial_state``),
  rows gathered and overwritten in place through :mod:`mannkit_dnc.sparse_ops`; the gradient with
  respect to the memory travels on the state's ``token``. A state is consumed by the step that
  advances it: using an older state again raises a ConfigError (its buffers have moved on). Steps
  cannot be recomputed, so ``MemoryCell(checkpoint_every=...)`` refuses this memory.
- **Content reads (SAM eq. 4).** The search (no gradient) ranks the rows by cosine against each
  key in one ``bmm`` pass, using row norms kept up to date at the written rows, and keeps the top
  K. It is exact but scans only the rows below the *frontier* (one past the highest slot ever
  written; every row above still holds ``init_value``) plus K + 1 rows above it: the rows above
  are all equal, so K of them stand for all (only ties between equal rows may resolve otherwise).
  A sequence that writes T steps thus scans about ``T (K + 1)`` rows per step, at most N; the
  weighting is ``softmax(beta cos(k, M[i]))`` over those K rows only, differentiable in
  the key, the strength and the K gathered rows. With K = N this is the dense content weighting.
- **Approximate candidates (``search="ann"``, or ``"auto"`` past ``ann_min_rows`` written rows).**
  *Approximation*: instead of the scan, a faiss IVF index per batch row (kept current at every
  write) proposes the candidates among the written rows, ``O(sqrt(f) W)`` per key instead of
  ``O(f W)``; they and the K + 1 unwritten rows at the frontier are re-scored exactly and the top
  K kept, so a row the index does not propose is missed (see :mod:`mannkit_dnc.ann`). The weights
  and gradients over the chosen rows are the exact mode's. faiss is optional (``mannkit[ann]``).
- **Writes.** The write weighting ``w = g_w (g_a a + (1 - g_a) c)`` lives on S = K + 1 slots: the
  least-used slot (``a``, one-hot: SAM's least-recently-used allocation instead of the DNC's
  sorted allocation weighting) and the content top-K of the write key among the other slots
  (``c``, K entries). Erase and add touch only those rows: ``M[i] <- M[i] (1 - w_i e) + w_i v``.
- **Usage (SAM's discounted usage, with the DNC's free gates).** ``u <- psi u`` with
  ``psi = prod_r (1 - f_r w^r_{t-1})`` at the last read supports, then ``u <- lambda u`` (one
  in-place pass over ``[B, N]``), then ``u += w`` at every slot a read or a write touches. Never
  touched slots have usage 0 and are taken first (lowest index first); after that the slot
  touched longest ago (or freed) has the least usage.
- **Sparse temporal links (SDNC).** ``L`` is kept as K_L (index, value) entries per row of ``L``
  (predecessors) and per row of ``L^T`` (successors), updated by the DNC rule at the rows the
  write rewrites; *approximation*: each rewritten row keeps its K_L largest entries, and an entry
  one list dropped is not decayed through the other list (see
  :func:`~mannkit_dnc.sparse_ops.update_links`). The precedence keeps its top K + 1 entries.
  Links and precedence carry no gradient (*approximation*: the dense DNC also differentiates
  through ``L`` into earlier write weightings); the gradient of the link read modes flows into the
  previous read weighting and the mode gates.
- **Read weighting.** ``w^r = pi_b b + pi_c c + pi_f f`` over the union of the supports of
  ``b = L^T w^r_{t-1}`` and ``f = L w^r_{t-1}`` (K K_L entries each) and of ``c`` (K entries); slots
  that repeat are summed, and the K largest are kept (*approximation*: the rest is dropped, so a
  read weighting sums to at most 1, rescaled to 1 if the sparse links ever push it above).
- **Traces.** With ``record``, the write gives ``write_weights [B, 1, N]`` and the reads
  ``read_weights [B, R, N]`` (dense copies) and ``read_modes [B, R, 3]``, and
  :meth:`SparseDNCMemory.describe` gives ``usage`` and ``precedence [B, N]``; the memory and the
  links are not copied out at every step. ``MemoryCell(compile=True)``
  is not supported (in-place buffers and data-dependent search spans).

>>> import torch
>>> memory = SparseDNCMemory(slots=16, word_size=5, k=2, link_k=2)
>>> memory.attach_read_heads(1)
>>> state = memory.initial_state(3, torch.device("cpu"), torch.float32)
>>> state, trace = memory.dnc_write(state, torch.randn(3, 1, 5), torch.ones(3, 1), torch.zeros(3, 1, 5),
...                                 torch.ones(3, 1, 5), torch.zeros(3, 1), torch.full((3, 1), 0.5), torch.ones(3, 1), record=True)
>>> trace["write_weights"].shape, (trace["write_weights"] > 0).sum(-1).squeeze(1)   # K + 1 = 3 slots each
(torch.Size([3, 1, 16]), tensor([3, 3, 3]))
>>> reads, state, _ = memory.dnc_read(state, torch.randn(3, 1, 5), torch.ones(3, 1),
...                                   torch.tensor([[[0.0, 1.0, 0.0]]]).expand(3, 1, 3))
>>> reads.shape
torch.Size([3, 1, 5])
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Memory
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.nn.addressing import EPS
from mannkit_dnc.ann import FAISS_HINT, RowIndex, load_faiss, rescore_top_k
from mannkit_dnc.sparse_mechanisms import (
    erase_add_rows,
    least_used,
    mix_read_weights,
    sparse_content_weights,
    sparse_write_weights,
    top_k_search,
)
from mannkit_dnc.sparse_ops import (
    gather_rows,
    link_weightings,
    new_token,
    scatter_rows,
    sparse_to_dense,
    update_links,
    update_precedence,
)

SEARCHES = ("exact", "ann", "auto")

__all__ = [
    "SEARCHES",
    "SparseDNCMemory",
    "SparseDNCState",
    "top_k_search",
    "sparse_content_weights",
    "least_used",
    "sparse_write_weights",
    "erase_add_rows",
    "mix_read_weights",
]


class SparseDNCState(NamedTuple):
    """A sparse DNC memory state; ``memory``, ``norms``, ``usage``, the link lists and ``clock`` are
    buffers shared with the states before it and changed in place by the next step."""

    memory: Tensor  # M [B, N, W], one buffer per sequence
    token: Tensor  # [B, N, W], zero strides: its gradient is dL/dM at this step (see sparse_ops)
    norms: Tensor  # sqrt(|M[n]|^2 + eps) [B, N], for the search only
    usage: Tensor  # u [B, N]
    read_index: Tensor  # int64 [B, R, K], the support of w^r_{t-1}
    read_weights: Tensor  # w^r_{t-1} [B, R, K]
    precedence_index: Tensor  # int64 [B, K + 1], the support of p_{t-1}
    precedence: Tensor  # p_{t-1} [B, K + 1]
    link_index: Tensor  # int32 [B, 2N, L]: row i < N lists slots j written before i, row N + j slots i after j
    links: Tensor  # L[i, j] at those entries, [B, 2N, L]
    frontier: Tensor  # int64 [B]: 1 + the highest slot ever written; the rows from it on hold init_value
    step: Tensor  # int64 [B]: how many updates of the buffers this state has seen
    clock: Tensor  # int64 [B], shared: how many updates the buffers have had
    search_index: RowIndex | None = None  # the approximate search's index of the buffer (search "ann"/"auto"), shared


# -- the memory ---------------------------------------------------------------------------------
def _positive_int(owner: str, name: str, value: object, high: int | None = None, hint: str = "") -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1 and (high is None or value <= high)
    if not ok:
        span = f"between 1 and {high}" if high is not None else "a positive integer"
        raise ConfigError(f"{owner}: {name} must be {span}, got {value!r}; {hint or f'set {name} to 1 or more'}.")


@register
class SparseDNCMemory(Memory):
    """A DNC memory whose reads, writes and links touch K slots per head (SAM / SDNC); see the module docs.

    Use it with ``DNCWriteHead`` and ``DNCReadHead`` (the dense ``DNCMemory``'s heads) in a ``MemoryCell``.
    It has no ``read``/``write`` methods, so the core ``ReadHead``/``WriteHead`` refuse it.

    Args:
        slots: N, the number of memory locations (65,536 trains on a laptop CPU).
        word_size: W, the width of each location.
        k: K, the slots each read head reads per step (the content search keeps K, and the read
            weighting is cut back to K); the write head writes K content slots plus one allocated slot.
        link_k: K_L, the entries kept per row of the sparse link matrix and of its transpose.
        usage_decay: lambda in (0, 1], the discount of SAM's usage per step (1: no decay, then
            only the free gates make a used slot free again).
        init_value: every memory entry starts at this constant (0, as in the DNC paper).
        search: how the content top-K is found (see :mod:`mannkit_dnc.ann`): ``"exact"`` scans the
            rows below the frontier, ``[B, h, W] @ [B, W, f] -> [B, h, f]`` per search; ``"ann"``
            takes candidates from a faiss IVF index of the written rows (*approximation*: a row in an
            unprobed list is missed; while fewer than ``(ann_probes + 1)^2`` rows are written every
            list would be probed, so it scans exactly) and re-scores them exactly; ``"auto"`` is exact until
            ``ann_min_rows`` rows are written (``max_b f_b + K + 1 >= ann_min_rows``), then ANN (exact
            throughout, with a warning, when faiss is not installed: ``pip install mannkit[ann]``).
        ann_min_rows: where ``"auto"`` switches to the index (the index is built at that step).
        ann_probes: the inverted lists (of about ``sqrt(f)``) each key visits; more is slower and nearer exact.
    """

    recomputable = False  # MemoryCell(checkpoint_every=...) cannot replay a step of an in-place memory

    def __init__(
        self,
        slots: int = 1024,
        word_size: int = 32,
        k: int = 4,
        link_k: int = 4,
        usage_decay: float = 0.99,
        init_value: float = 0.0,
        search: str = "auto",
        ann_min_rows: int = 8192,
        ann_probes: int = 8,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 2:
            raise ConfigError(f"{name}: slots must be an integer of at least 2, got {slots!r}; set slots to 2 or more.")
        _positive_int(name, "word_size", word_size)
        _positive_int(name, "k", k, slots - 1, hint="a write touches k + 1 distinct slots, so k must be below slots")
        _positive_int(name, "link_k", link_k, slots - 1, hint="each slot links to at most slots - 1 others")
        if isinstance(usage_decay, bool) or not isinstance(usage_decay, (int, float)) or not 0 < usage_decay <= 1:
            raise ConfigError(f"{name}: usage_decay must be in (0, 1], got {usage_decay!r}; use e.g. 0.99.")
        if isinstance(init_value, bool) or not isinstance(init_value, (int, float)):
            raise ConfigError(f"{name}: init_value must be a number, got {init_value!r}; use e.g. 0.")
        if search not in SEARCHES:
            raise ConfigError(f"{name}: search must be one of {', '.join(SEARCHES)}, got {search!r}; use e.g. 'auto'.")
        _positive_int(name, "ann_min_rows", ann_min_rows)
        _positive_int(name, "ann_probes", ann_probes)
        if search == "ann" and load_faiss() is None:
            raise ConfigError(f"{name}: search is 'ann' but the faiss library is not installed; {FAISS_HINT} or set search to 'exact'.")
        self.slots, self._word_size, self.k, self.link_k = slots, word_size, k, link_k
        self.usage_decay, self.init_value = float(usage_decay), float(init_value)
        self.search, self.ann_min_rows, self.ann_probes = search, ann_min_rows, ann_probes
        self._warned = False
        self._read_heads = 0

    @property
    def word_size(self) -> int:
        return self._word_size

    @property
    def read_heads(self) -> int:
        """R, the number of read heads attached (0 until a read head bank binds)."""
        return self._read_heads

    def attach_read_heads(self, count: int) -> None:
        """Called by the read head bank's ``bind``: the state keeps ``count`` read weightings."""
        _positive_int(type(self).__name__, "the read head count", count, hint="give the DNCReadHead a count of 1 or more")
        if self._read_heads not in (0, count):
            raise ConfigError(
                f"{type(self).__name__} already has {self._read_heads} read heads attached and cannot take {count}; "
                "use one read head bank per memory."
            )
        self._read_heads = count

    # -- state ----------------------------------------------------------------------------------
    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> SparseDNCState:
        """Fresh buffers for one sequence (never shared with another call)."""
        B, N, W, K, L, R = batch_size, self.slots, self._word_size, self.k, self.link_k, self._read_heads
        memory = torch.full((B, N, W), self.init_value, device=device, dtype=dtype)
        norm = (W * self.init_value**2 + EPS) ** 0.5
        int_zeros = lambda *shape, dtype=torch.int64: torch.zeros(shape, device=device, dtype=dtype)  # noqa: E731
        float_zeros = lambda *shape: torch.zeros(shape, device=device, dtype=dtype)  # noqa: E731
        clock = int_zeros(B)
        return SparseDNCState(
            memory=memory,
            token=new_token(memory),
            norms=torch.full((B, N), norm, device=device, dtype=dtype),
            usage=float_zeros(B, N),
            read_index=int_zeros(B, R, K),
            read_weights=float_zeros(B, R, K),
            precedence_index=int_zeros(B, K + 1),
            precedence=float_zeros(B, K + 1),
            link_index=int_zeros(B, 2 * N, L, dtype=torch.int32),
            links=float_zeros(B, 2 * N, L),
            frontier=int_zeros(B),
            step=clock.clone(),
            clock=clock,
            search_index=RowIndex(self.ann_probes) if self.search != "exact" and load_faiss() is not None else None,
        )

    def describe(self, state: SparseDNCState) -> dict[str, Tensor]:
        """``usage [B, N]`` and ``precedence [B, N]`` (dense copies, recorded steps only).

        The memory and the link matrix are not copied out at every recorded step: a dense ``[B, N, N]``
        link would undo what the sparse mode saves (use the dense DNCMemory to see links).
        """
        precedence = sparse_to_dense(state.precedence_index, state.precedence.detach(), self.slots)  # p [B, K + 1] -> [B, N]
        return {"usage": state.usage.clone(), "precedence": precedence}

    def _advance(self, state: SparseDNCState) -> Tensor:
        """Check that ``state`` is the newest state of its buffers and count one more update."""
        if not torch.equal(state.step, state.clock):
            raise ConfigError(
                f"{type(self).__name__}: this memory state is older than its buffers (they are updated in place and "
                "a later step already used them); continue from the state the last step returned, or start from "
                "initial_state(...) for each sequence."
            )
        state.clock.add_(1)
        return state.clock.clone()

    def _span(self, state: SparseDNCState, low: int = 0) -> int:
        """How many leading rows a search scans: past the frontier (and ``low``) by K + 1 rows, at most N."""
        return min(self.slots, max(int(state.frontier.max()), low) + self.k + 1)

    def _search(self, state: SparseDNCState, keys: Tensor, exclude: Tensor | None = None) -> Tensor:
        """The content top-K slots of ``keys [B, h, W]`` (int64 ``[B, h, K]``): exact, or ANN candidates re-scored."""
        written = int(state.frontier.max())
        span = min(self.slots, max(written, 0 if exclude is None else int(exclude.max()) + 1) + self.k + 1)  # see _span
        exhaustive = written < (self.ann_probes + 1) ** 2  # every one of the ~sqrt(f) lists probed: that IS the scan
        if not exhaustive and (self.search == "ann" or (self.search == "auto" and span >= self.ann_min_rows)):
            index = state.search_index
            if index is None:
                if not self._warned:
                    self._warned = True
                    warnings.warn(f"{type(self).__name__}: search 'auto' scans all {span} written rows exactly because "
                                  f"the faiss library is not installed; {FAISS_HINT} for the approximate search.", stacklevel=3)
            else:
                count = self.k + (0 if exclude is None else exclude.shape[1])
                candidates = index.candidates(state.memory, state.frontier, keys, count)  # [B, h, C]
                found = rescore_top_k(state.memory, state.norms, keys, self.k, candidates, state.frontier, exclude)
                if found is not None:
                    return found
        return top_k_search(state.memory[:, :span], state.norms[:, :span], keys, self.k, exclude=exclude)

    def _check(self, what: str, tensor: Tensor, shape: tuple) -> None:
        check_shape(tensor, shape, f"{type(self).__name__}.{what}", "the head's parameter layout must match this memory")

    # -- write ----------------------------------------------------------------------------------
    def dnc_write(
        self, state: SparseDNCState, key: Tensor, strength: Tensor, erase: Tensor, vector: Tensor, free_gates: Tensor,
        allocation_gate: Tensor, write_gate: Tensor, record: bool = False,
    ) -> tuple[SparseDNCState, dict[str, Tensor]]:
        """One write: free, allocate, erase and add at K + 1 slots, update usage and links.

        Args:
            key: ``[B, 1, W]``; strength: beta ``[B, 1]``; erase: e ``[B, 1, W]``; vector: v ``[B, 1, W]``;
            free_gates: f ``[B, R]``; allocation_gate: g_a ``[B, 1]``; write_gate: g_w ``[B, 1]`` (activated).
            record: also return ``{"write_weights": [B, 1, N]}`` (a dense copy).

        Returns:
            The new state and the trace.
        """
        B, W, R, K = key.shape[0], self._word_size, state.read_index.shape[1], self.k
        for what, tensor, shape in (
            ("key", key, (B, 1, W)), ("strength", strength, (B, 1)), ("erase", erase, (B, 1, W)), ("vector", vector, (B, 1, W)),
            ("free_gates", free_gates, (B, R)), ("allocation_gate", allocation_gate, (B, 1)), ("write_gate", write_gate, (B, 1)),
        ):
            self._check(f"dnc_write {what}", tensor, shape)
        step = self._advance(state)
        usage = state.usage
        with torch.no_grad():
            if R:  # psi = prod_r (1 - f_r w^r_{t-1}) at the last read supports (DNC retention)
                retention = 1 - free_gates.unsqueeze(-1) * state.read_weights  # [B, R, K]
                usage.scatter_reduce_(1, state.read_index.view(B, R * K), retention.reshape(B, R * K), "prod")  # [B, R, K] -> [B, R K]
            usage.mul_(self.usage_decay)  # u <- lambda u (SAM's discounted usage)
            free_slot = least_used(usage)  # [B, 1]
            content_index = self._search(state, key, exclude=free_slot).view(B, K)  # [B, 1, K] -> [B, K]
            index = torch.cat([content_index, free_slot], dim=1)  # [B, K + 1], distinct
            torch.maximum(state.frontier, index.max(1).values + 1, out=state.frontier)
        rows, token = gather_rows(state.token, state.memory, index)  # M_{t-1}[i_s], [B, K + 1, W]
        content = sparse_content_weights(key, rows[:, None, :K], strength)  # [B, 1, K]
        weights = sparse_write_weights(content[:, 0], allocation_gate, write_gate)  # w^w, [B, K + 1]
        new_rows = erase_add_rows(rows, weights, erase, vector)  # [B, K + 1, W]
        token = scatter_rows(token, state.memory, index, new_rows)
        with torch.no_grad():
            state.norms.scatter_(1, index, new_rows.square().sum(-1).add_(EPS).sqrt_())
            if state.search_index is not None:
                state.search_index.update(state.memory, index, state.frontier)  # the rewritten rows, into the index
            write = (index, weights.detach())
            update_links(state.link_index, state.links, write, (state.precedence_index, state.precedence))
            precedence_index, precedence = update_precedence(state.precedence_index, state.precedence, *write)
            usage.scatter_add_(1, index, write[1])  # u += w^w
        trace = {"write_weights": sparse_to_dense(index, weights.detach(), self.slots).unsqueeze(1)} if record else {}
        return state._replace(token=token, precedence_index=precedence_index, precedence=precedence, step=step), trace

    # -- read -----------------------------------------------------------------------------------
    def dnc_read(
        self, state: SparseDNCState, keys: Tensor, strengths: Tensor, modes: Tensor, record: bool = False,
    ) -> tuple[Tensor, SparseDNCState, dict[str, Tensor]]:
        """R reads, each over K slots: content top-K mixed with the sparse forward/backward link weightings.

        Args:
            keys: ``[B, R, W]``; strengths: beta ``[B, R]``; modes: pi = (backward, content, forward) ``[B, R, 3]``
                (softmaxed).
            record: also return ``{"read_weights": [B, R, N]}`` (a dense copy) and ``read_modes [B, R, 3]``.

        Returns:
            Reads ``[B, R, W]``, the new state and the trace.
        """
        B, R, K, W = keys.shape[0], self._read_heads, self.k, self._word_size
        if state.read_index.shape[1] != R:
            raise ConfigError(
                f"{type(self).__name__}: the state holds {state.read_index.shape[1]} read weightings but {R} read heads are "
                "attached; build the state with initial_state(...) after the heads are bound."
            )
        for what, tensor, shape in (("keys", keys, (B, R, W)), ("strengths", strengths, (B, R)), ("modes", modes, (B, R, 3))):
            self._check(f"dnc_read {what}", tensor, shape)
        step = self._advance(state)
        with torch.no_grad():
            content_index = self._search(state, keys)  # [B, R, K]
        rows, token = gather_rows(state.token, state.memory, content_index.view(B, R * K))  # [B, R K, W]
        content = sparse_content_weights(keys, rows.view(B, R, K, W), strengths)  # c, [B, R, K]
        previous = (state.read_index, state.read_weights)  # w^r_{t-1}
        forward, backward = link_weightings(state.link_index, state.links, *previous)  # f = L w, b = L^T w: [B, R, K L]
        index, weights = mix_read_weights(backward, (content_index, content), forward, modes, K)  # w^r, [B, R, K]
        rows, token = gather_rows(token, state.memory, index.view(B, R * K))  # [B, R K, W]
        reads = (weights.unsqueeze(-1) * rows.view(B, R, K, W)).sum(-2)  # r = sum_k w_k M[i_k], [B, R, W]
        with torch.no_grad():
            state.usage.scatter_add_(1, index.view(B, R * K), weights.detach().view(B, R * K))  # u += w^r
        trace = {}
        if record:  # dense copies for the pictures; modes pi [B, R, 3]
            trace = {"read_weights": sparse_to_dense(index, weights.detach(), self.slots), "read_modes": modes.detach()}
        return reads, state._replace(token=token, read_index=index, read_weights=weights, step=step), trace


def _example_harness(memory: SparseDNCMemory):  # noqa: ANN202
    """The conformance kit's cell around this memory: a tanh MLP with the DNC heads."""
    from mannkit.cell import MemoryCell
    from mannkit.nn import MLPController
    from mannkit.testing import SIZES
    from mannkit_dnc.heads import DNCReadHead, DNCWriteHead

    return MemoryCell(MLPController(hidden_size=SIZES.H, activation="tanh"), memory, [DNCWriteHead(), DNCReadHead(count=SIZES.h)])


def _register_example() -> None:
    from mannkit.testing import register_example

    register_example(SparseDNCMemory, harness=_example_harness)


_register_example()
