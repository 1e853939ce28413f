"""The sparse DNC's approximate search (plugins/mannkit_dnc/ann.py, ``SparseDNCMemory(search=...)``, issue 16):
recall against the exact search, the index following row updates, gradients, the optional library, conformance.

The tests that build an index skip when faiss is not installed (``pip install mannkit[ann]``).
"""

import copy
import pickle

import pytest
import torch

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError
from mannkit.nn import LSTMController
from mannkit.nn.addressing import EPS
from mannkit.testing import check_component
from mannkit_dnc import sparse
from mannkit_dnc.ann import RowIndex, load_faiss, rescore_top_k
from mannkit_dnc.heads import DNCReadHead, DNCWriteHead
from mannkit_dnc.sparse import SparseDNCMemory, top_k_search

needs_faiss = pytest.mark.skipif(load_faiss() is None, reason="faiss is not installed (pip install mannkit[ann])")
CPU = torch.device("cpu")
B, R, K, W = 3, 2, 4, 16


def _memory(slots: int, **options) -> SparseDNCMemory:
    memory = SparseDNCMemory(**(dict(slots=slots, word_size=W, k=K, link_k=3) | options))
    memory.attach_read_heads(R)
    return memory


def _filled(memory: SparseDNCMemory, rows: torch.Tensor):
    """A state whose every row is written with ``rows [B, N, W]``."""
    state = memory.initial_state(rows.shape[0], CPU, rows.dtype)
    state.memory.copy_(rows)
    state.norms.copy_(rows.square().sum(-1).add(EPS).sqrt())
    state.frontier.fill_(rows.shape[1])
    return state


def _clusters(n_clusters: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows in well-separated groups of ``size`` around unit centres, and the centres ``[B, n_clusters, W]``."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(B, n_clusters, W, generator=g), dim=-1)
    rows = centres.repeat_interleave(size, dim=1) + 0.02 * torch.randn(B, n_clusters * size, W, generator=g)
    return rows, centres


def _sets_agree(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per head: the fraction of b's slots that a holds, ``[B, h]``."""
    return (a.unsqueeze(-1) == b.unsqueeze(-2)).any(-1).float().mean(-1)


@needs_faiss
def test_on_well_separated_rows_the_ann_search_finds_the_exact_top_k():
    rows, centres = _clusters(n_clusters=128, size=K, seed=1)  # N = 512: 22 lists, 2 probed
    memory = _memory(512, search="ann", ann_probes=2)
    state = _filled(memory, rows)
    keys = centres[:, torch.randperm(128, generator=torch.Generator().manual_seed(2))[: 3 * R]]  # [B, 6, W]
    keys = keys + 0.01 * torch.randn(keys.shape, generator=torch.Generator().manual_seed(3))
    found = memory._search(state, keys)  # [B, 6, K]
    exact = top_k_search(state.memory, state.norms, keys, K)
    assert found.shape == (B, 3 * R, K)
    assert _sets_agree(found, exact).mean() >= 0.95  # recall
    assert state.search_index.builds == B and state.search_index._lists[0].nprobe == 2 < state.search_index._lists[0].nlist


@needs_faiss
def test_probing_every_list_is_the_exact_search():
    rows = torch.randn(B, 300, W, generator=torch.Generator().manual_seed(4))  # 17 lists, all probed
    state = _filled(_memory(300), rows)
    keys = torch.randn(B, R, W, generator=torch.Generator().manual_seed(5))
    index = RowIndex(probes=32)

    def search(keys, exclude=None):  # noqa: ANN001, ANN202
        candidates = index.candidates(state.memory, state.frontier, keys, K + (exclude is not None))
        return rescore_top_k(state.memory, state.norms, keys, K, candidates, state.frontier, exclude).sort(-1).values

    assert torch.equal(search(keys), top_k_search(state.memory, state.norms, keys, K).sort(-1).values)
    assert index._lists[0].nprobe == index._lists[0].nlist == 17
    free = torch.tensor([[7], [0], [299]])
    found = search(keys[:, :1], free)
    assert not (found == free.unsqueeze(-1)).any()
    assert torch.equal(found, top_k_search(state.memory, state.norms, keys[:, :1], K, exclude=free).sort(-1).values)


def test_while_every_list_would_be_probed_the_ann_memory_runs_the_exact_scan():
    x = torch.randn(2, 12, 5, generator=torch.Generator().manual_seed(12))
    exact, ann = _cell("exact"), _cell("auto", ann_probes=8, ann_min_rows=1)  # 12 steps write fewer than 9^2 rows
    torch.testing.assert_close(ann(x).logits, exact(x).logits, rtol=0, atol=0)


@needs_faiss
def test_the_index_follows_row_updates_and_the_frontier():
    N = 400
    memory_rows = torch.randn(B, N, W, generator=torch.Generator().manual_seed(6))
    frontier = torch.tensor([N, N, 100])
    index = RowIndex(probes=1)
    index.sync(memory_rows, frontier)
    direction = torch.zeros(W)
    direction[0] = 1.0
    slots = torch.tensor([[3, 50], [399, 1], [0, 250]])  # row 2: slot 250 is past its frontier of 100
    memory_rows[torch.arange(B).unsqueeze(1), slots] = direction * 10  # rows no earlier row resembles
    frontier = torch.tensor([N, N, 251])
    found = index.candidates(memory_rows, frontier, direction.expand(B, 1, W), 2)  # before the update: stale
    assert not torch.equal(found[0, 0].sort().values, slots[0].sort().values)  # the index still holds the old rows 3, 50
    assert (found[2] == 250).any()  # rows the frontier passed are read from the buffer as they are now
    index.update(memory_rows, slots, frontier)
    found = index.candidates(memory_rows, frontier, direction.expand(B, 1, W), 2)  # [B, 1, 2]
    assert torch.equal(found[:, 0].sort(-1).values, slots.sort(-1).values)
    assert index._indexed == [N, N, 251] and index.builds == B  # updated in place, not rebuilt
    # a buffer that is replaced (not the one indexed) is indexed anew
    other = torch.randn(B, N, W, generator=torch.Generator().manual_seed(7))
    index.candidates(other, frontier, direction.expand(B, 1, W), 2)
    assert index.builds == 2 * B


def test_rescoring_takes_the_k_best_candidates_and_the_unwritten_rows():
    N = 10
    rows = torch.zeros(1, N, 2, dtype=torch.float64)
    rows[0, :4] = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.7, 0.7]])  # frontier 4; rows 4.. hold 0
    norms = rows.square().sum(-1).add(EPS).sqrt()
    key = torch.tensor([[[1.0, 0.1]]], dtype=torch.float64)
    candidates = torch.tensor([[[0, 2, -1]]])  # the index missed row 3
    found = rescore_top_k(rows, norms, key, 2, candidates, torch.tensor([4]))
    best, second = sorted(found.flatten().tolist())
    assert found.shape == (1, 1, 2) and best == 0 and second >= 4  # row 0, then an unwritten row (cos 0) over row 2 (cos < 0)
    assert rescore_top_k(rows, norms, key, 2, torch.tensor([[[-1, -1, -1]]]), torch.tensor([9])) is None  # one row left


def _cell(search: str, slots: int = 64, **options) -> MemoryCell:
    torch.manual_seed(0)
    memory = SparseDNCMemory(slots=slots, word_size=8, k=3, link_k=3, search=search, **options)
    cell = MemoryCell(LSTMController(16), memory, [DNCWriteHead(), DNCReadHead(count=2)], clip=20.0)
    cell.bind(5, 4)
    return cell


@needs_faiss
def test_an_ann_cell_trains_gradients_flow_and_shapes_hold():
    cell = _cell("ann", ann_probes=1)  # one list of about sqrt(f) probed: approximate from the start
    x = torch.randn(B, 30, 5, generator=torch.Generator().manual_seed(8))
    out = cell(x, record=True)
    assert out.logits.shape == (B, 30, 4) and torch.isfinite(out.logits).all()
    assert out.trace["write_weights"].shape == (B, 30, 1, 64) and out.trace["read_weights"].shape == (B, 30, 2, 64)
    assert ((out.trace["read_weights"] > 0).sum(-1) <= 3).all()  # still K slots per head
    out.logits.square().mean().backward()
    for name, parameter in cell.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert cell.project.weight.grad.abs().sum() > 0


@needs_faiss
def test_auto_is_exact_below_the_threshold_and_builds_the_index_once_past_it():
    x = torch.randn(2, 12, 5, generator=torch.Generator().manual_seed(9))
    exact, auto = _cell("exact"), _cell("auto", ann_min_rows=1000)
    torch.testing.assert_close(auto(x).logits, exact(x).logits, rtol=0, atol=0)  # never switched: identical
    cell = _cell("auto", ann_min_rows=10, ann_probes=1)  # from 4 rows on, 1 of about sqrt(f) lists is probed
    state = cell.initial_state(2, CPU, torch.float32)
    for t in range(12):
        _, state, _ = cell.step(x[:, t], state)
    assert state.memory.search_index.active and state.memory.search_index.builds >= 2


@needs_faiss
def test_a_copied_or_pickled_state_rebuilds_its_own_index():
    memory = _memory(200, search="ann")
    state = _filled(memory, torch.randn(B, 200, W, generator=torch.Generator().manual_seed(10)))
    keys = torch.randn(B, R, W, generator=torch.Generator().manual_seed(11))
    found = memory._search(state, keys)
    twin = copy.deepcopy(state)
    assert not twin.search_index.active and torch.equal(memory._search(twin, keys), found)
    assert not pickle.loads(pickle.dumps(state.search_index)).active


def test_asking_for_ann_without_the_library_names_the_fix(monkeypatch):
    monkeypatch.setattr(sparse, "load_faiss", lambda: None)
    with pytest.raises(ConfigError, match=(r"^SparseDNCMemory: search is 'ann' but the faiss library is not installed; "
                                           r"pip install mannkit\[ann\] or set search to 'exact'\.$")):
        SparseDNCMemory(slots=16, word_size=4, search="ann")
    cell = _cell("auto", ann_min_rows=8, ann_probes=1)  # auto without the library: exact, with one warning
    assert cell.initial_state(2, CPU, torch.float32).memory.search_index is None
    with pytest.warns(UserWarning, match=r"search 'auto' scans all \d+ written rows exactly .* pip install mannkit\[ann\]"):
        cell(torch.randn(2, 10, 5))


@pytest.mark.parametrize("options, message", [
    ({"search": "fast"}, r"^SparseDNCMemory: search must be one of exact, ann, auto, got 'fast'; use e\.g\. 'auto'\.$"),
    ({"ann_probes": 0}, r"^SparseDNCMemory: ann_probes must be a positive integer, got 0"),
    ({"ann_min_rows": 1.5}, r"^SparseDNCMemory: ann_min_rows must be a positive integer, got 1\.5"),
])
def test_bad_search_settings_are_refused_in_one_sentence(options, message):
    with pytest.raises(ConfigError, match=message):
        SparseDNCMemory(slots=16, word_size=4, **options)


@needs_faiss
def test_conformance_with_the_ann_search():
    check_component(lambda: SparseDNCMemory(slots=11, word_size=5, k=2, link_k=2, search="ann", ann_probes=1))
