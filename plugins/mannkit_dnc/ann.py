"""Approximate candidates for the sparse DNC's top-K content search: one faiss IVF index per batch row.

Shape letters: B batch, N memory slots, W word size, h keys (heads) per search, K sparse
neighbours, C candidates per key, f_b the frontier of batch row b (one past the highest slot
ever written; every row from it on holds ``init_value``).

**The shortcut (approximate candidates).** The exact search ranks every row below the frontier
by ``cos(k, M[n])`` (one pass over ``[B, f, W]`` per search). Here each batch row keeps an
inverted-file index (faiss ``IndexIVFFlat``, inner product on unit rows ``M[n] / |M[n]|``) over
the rows ``n < f_b``. A search asks it for the best ``C`` rows among the ``probes`` lists whose
centroids are nearest the key (``O(sqrt(f) W + probes f / sqrt(f) W)`` per key with
``sqrt(f)`` lists), adds the ``K + 1`` rows ``f_b .. f_b + K`` (all equal to ``init_value``;
they stand for every unwritten row, as in the exact search), and
:func:`~mannkit_dnc.sparse.ann_top_k` re-scores those candidates exactly in the memory's dtype
and keeps the top K. What can differ from the exact search: a row in a list that was not probed
is never a candidate (the recall is below 1; while fewer than ``(probes + 1)^2`` rows are
written, every one of the ``sqrt(f)`` lists would be probed, so the memory runs the exact scan
instead, which finds the same rows without the library calls). The choice
of rows carries no gradient either way; the weights over the K chosen rows are computed on the
gathered rows, exactly as in the exact mode (SAM does the same with its ANN).

**Keeping it current.** Every write upserts its S = K + 1 rows (and any rows the frontier passed
over) into its batch row's index right after the rows change (``remove_ids`` then
``add_with_ids``, ``O(S W)`` with a hash-table id map), so the index never holds a stale row.
The coarse centroids are trained (k-means on at most 64 sampled rows per list) when a batch
row's index is first built and again whenever its number of written rows has grown fourfold
(``sqrt(f)`` lists), so the lists stay near ``sqrt(f)`` rows: amortised over the writes that
grew it, ``O(1)`` training per written row. The index lives in the memory state
(``SparseDNCState.search_index``) and follows its buffer: a state whose memory was replaced or
copied (``copy.deepcopy``) rebuilds its index on the next search.

The index works on float32 CPU copies of the keys and of the changed rows, so a CUDA memory pays
a small device-to-host copy per step. faiss is optional (``pip install mannkit[ann]``).
"""

from __future__ import annotations

import functools
import importlib
import math

import torch
from torch import Tensor

from mannkit.nn.addressing import EPS

__all__ = ["FAISS_HINT", "RowIndex", "load_faiss", "rescore_top_k"]

FAISS_HINT = "pip install mannkit[ann]"
_POINTS_PER_LIST = 64  # k-means sample size per list (faiss's max_points_per_centroid)
_REBUILD_GROWTH = 4  # retrain a batch row's lists once its written rows have grown this many times


@functools.cache
def load_faiss():  # noqa: ANN201
    """The ``faiss`` module, or None when it is not installed (looked for once per process)."""
    try:
        return importlib.import_module("faiss")
    except ImportError:
        return None


def _unit_rows(rows: Tensor) -> Tensor:
    """``M[n] / |M[n]|`` as contiguous float32 on the CPU (zero rows stay zero), ``[..., W]``."""
    rows = rows.detach().to("cpu", torch.float32)
    return (rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-12)).contiguous()


class RowIndex:
    """The faiss IVF indices of one memory buffer's batch rows (see the module docs).

    Args:
        probes: how many inverted lists a search visits per key.
    """

    def __init__(self, probes: int) -> None:
        self.probes = probes
        self._faiss = load_faiss()
        self._buffer: Tensor | None = None  # the memory buffer the indices describe
        self._lists: list = []  # one faiss IndexIVFFlat per batch row
        self._indexed: list[int] = []  # rows 0 .. f_b - 1 are in row b's index
        self._trained: list[int] = []  # how many rows row b's lists were trained on
        self.builds = 0  # (re)trainings so far, summed over batch rows (for tests and benchmarks)

    def __deepcopy__(self, memo: dict) -> RowIndex:
        return RowIndex(self.probes)  # a copied state rebuilds its index from its own buffer on the next search

    def __reduce__(self):  # noqa: ANN204
        return (RowIndex, (self.probes,))  # faiss objects are not pickled either: rebuilt on the next search

    def _describes(self, memory: Tensor) -> bool:
        """Whether the indices describe ``memory``'s storage (a detached view of the buffer counts, a copy does not)."""
        held = self._buffer
        return held is not None and held.data_ptr() == memory.data_ptr() and held.shape == memory.shape

    @property
    def active(self) -> bool:
        """Whether the indices are built (``auto`` builds them only once the written part is large)."""
        return self._buffer is not None

    # -- building -------------------------------------------------------------------------------
    def _build_row(self, memory: Tensor, b: int, rows: int) -> None:
        """(Re)train and fill row b's index with rows ``0 .. rows - 1`` of ``memory [B, N, W]``."""
        faiss, W = self._faiss, memory.shape[-1]
        lists = max(1, math.isqrt(rows))
        quantizer = faiss.IndexFlatIP(W)
        index = faiss.IndexIVFFlat(quantizer, W, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.max_points_per_centroid = _POINTS_PER_LIST
        index.cp.min_points_per_centroid = 1  # few rows per list is fine (and no warning about it)
        index.cp.niter = 10
        data = _unit_rows(memory[b, :rows]).numpy()
        index.train(data)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        index.add_with_ids(data, torch.arange(rows, dtype=torch.int64).numpy())
        index.nprobe = min(self.probes, lists)
        self._lists[b], self._indexed[b], self._trained[b] = index, rows, rows
        self.builds += 1

    def sync(self, memory: Tensor, frontier: Tensor) -> None:
        """Build the indices if they describe another buffer (or none), retrain rows that grew fourfold."""
        B = memory.shape[0]
        if not self._describes(memory) or len(self._lists) != B:
            self._buffer, self._lists, self._indexed, self._trained = memory, [None] * B, [0] * B, [0] * B
        for b, f in enumerate(frontier.tolist()):
            if f and (self._lists[b] is None or f >= _REBUILD_GROWTH * self._trained[b]):
                self._build_row(memory, b, f)  # (no index while nothing is written: the K + 1 tail rows suffice)
            elif self._lists[b] is not None:
                self._fill_to(memory, b, f)

    # -- use ------------------------------------------------------------------------------------
    def _upsert(self, b: int, ids: Tensor, unit_rows: Tensor) -> None:
        """Replace (or add) rows ``ids [S]`` (distinct) of row b's index by ``unit_rows [S, W]``."""
        index, ids = self._lists[b], ids.numpy()
        index.remove_ids(ids)  # with the hash-table id map: O(S)
        index.add_with_ids(unit_rows.numpy(), ids)

    def _fill_to(self, memory: Tensor, b: int, frontier: int) -> None:
        """Add the rows the frontier passed over without writing them (they hold init_value)."""
        if frontier > self._indexed[b]:
            ids = torch.arange(self._indexed[b], frontier)
            self._upsert(b, ids, _unit_rows(memory[b, self._indexed[b] : frontier]))
            self._indexed[b] = frontier

    def update(self, memory: Tensor, slots: Tensor, frontier: Tensor) -> None:
        """After a write: put the rewritten rows ``slots [B, S]`` (distinct per batch row) of ``memory`` in.

        Rows below the new frontier that no write touched are added too. Does nothing while the
        indices are not built; drops them if ``memory`` is another buffer.
        """
        if self._buffer is None:
            return
        if not self._describes(memory):
            self._buffer = None  # rebuilt on the next search
            return
        W = memory.shape[-1]
        unit = _unit_rows(memory.gather(1, slots.unsqueeze(-1).expand(-1, -1, W)))  # [B, S, W], float32 CPU
        slots = slots.detach().cpu()
        for b, f in enumerate(frontier.tolist()):
            if self._lists[b] is None:
                continue  # built from the buffer by the next search
            self._fill_to(memory, b, f)
            self._upsert(b, slots[b], unit[b])

    def candidates(self, memory: Tensor, frontier: Tensor, keys: Tensor, count: int) -> Tensor:
        """Up to ``count`` rows below each batch row's frontier per key, best inner product with the unit rows first.

        Args:
            memory: M, ``[B, N, W]``; frontier: f, int64 ``[B]``; keys: ``[B, h, W]``; count: C.

        Returns:
            int64 ``[B, h, C]`` on the keys' device; -1 where the probed lists held fewer than C rows.
        """
        self.sync(memory, frontier)
        queries = keys.detach().to("cpu", torch.float32).contiguous().numpy()  # [B, h, W]
        none = torch.full((keys.shape[1], count), -1, dtype=torch.int64)
        found = [none if index is None else torch.from_numpy(index.search(queries[b], count)[1])  # [h, C] each
                 for b, index in enumerate(self._lists)]
        return torch.stack(found).to(keys.device)  # [B, h, C]


def rescore_top_k(memory: Tensor, norms: Tensor, keys: Tensor, k: int, candidates: Tensor, frontier: Tensor,
                  exclude: Tensor | None = None) -> Tensor | None:
    """The K best of the candidates and of the K + 1 rows from the frontier on, by the exact score ``k . M[n] / |M[n]|``.

    Args:
        memory: M, ``[B, N, W]``; norms: ``|M[n]|``, ``[B, N]``; keys: ``[B, h, W]``; k: K.
        candidates: int64 ``[B, h, C]`` rows below the frontier (-1: none), from :meth:`RowIndex.candidates`.
        frontier: f, int64 ``[B]``.
        exclude: int64 ``[B, E]``, slots never to choose, or None.

    Returns:
        int64 ``[B, h, K]``, distinct slots per head; None if fewer than K valid candidates were found
        (the caller then searches exactly).
    """
    B, h, _ = candidates.shape
    N, W = memory.shape[1], memory.shape[2]
    tail = frontier.unsqueeze(1) + torch.arange(k + 1, device=frontier.device)  # f_b .. f_b + K, [B, K + 1]
    slots = torch.cat([candidates, tail.unsqueeze(1).expand(-1, h, -1)], dim=-1)  # [B, h, C + K + 1]
    valid = (slots >= 0) & (slots < N)
    slots = slots.clamp(0, N - 1)
    if exclude is not None:
        valid &= (slots.unsqueeze(-1) != exclude.view(B, 1, 1, -1)).all(-1)  # [B, h, C', E] -> [B, h, C']
    C = slots.shape[-1]
    rows = memory.gather(1, slots.view(B, h * C, 1).expand(-1, -1, W)).view(B, h, C, W)  # [B, h C, W] -> [B, h, C, W]
    scores = (rows @ keys.unsqueeze(-1)).squeeze(-1)  # k . M[n], [B, h, C, W] @ [B, h, W, 1] -> [B, h, C]
    scores = scores / norms.gather(1, slots.view(B, h * C)).view(B, h, C).clamp_min(EPS)
    scores = scores.masked_fill(~valid, float("-inf"))
    best = scores.topk(k, dim=-1)
    if bool(best.values.isneginf().any()):
        return None
    return slots.gather(-1, best.indices)
