"""The sparse DNC's training step with a FULLY WRITTEN memory: exact search against the ANN index (issue 16).

The workload is the DNC step benchmark's (``bench_dnc_step.py``): batch 16, LSTM 64, word size 32,
4 read heads, 1 write head, ``SparseDNCMemory(slots=N, word_size=32, k=8, link_k=8)``, one
thread, BCE on every output, one Adam step. What differs: the memory is **pre-filled**, so the
step being timed searches all N rows. Before the first step every row ``M[b, n]`` is set to a
written value (``--fill gaussian``: unit-variance noise, the ANN's hardest case; ``clusters``:
N / 16 centres plus small noise), every slot has positive usage (so allocation takes a used slot,
as in a full memory) and the frontier is N (every row counts as written). The links start empty
(their cost per step does not depend on their values). A sequence that wrote all N rows through
the cell would take N or more steps (one fresh slot per step); pre-filling gives the same buffers
without running them.

Then ``--warmup + --segments`` training segments of ``--steps`` cell steps run back to back from
that state (truncated backpropagation: the memory carries over, the gradient stops at the segment
start), so every timed step searches a fully written memory and writes K + 1 rows of it; the
ANN index is built in the first warm-up segment (its build time is reported separately). The
figure is the median over segments of CPU and wall ms per cell step (forward + backward + Adam,
divided by ``--steps``), with the ratio to N = 1,024 of the same mode from the same run. Every
(mode, N) runs in a fresh subprocess (its peak RSS is its own; ``ru_maxrss``), configurations
interleaved over ``--repeats``. Also reported: the recall of the search's top-K against an exact
search for the same keys on the same memory (outside the timing), for random keys and for keys
near stored rows (what a trained read key looks like), and how often such a key's own row is
among the K found; recall is 1 for the exact mode by construction.

    OMP_NUM_THREADS=1 python benchmarks/bench_sparse_fill.py                       # the curve, ~5 min
    OMP_NUM_THREADS=1 python benchmarks/bench_sparse_fill.py --slots 1024,65536 --segments 3 --tag short
    OMP_NUM_THREADS=1 python benchmarks/bench_sparse_fill.py --libraries 2       # hnswlib against faiss, ~1 min

Writes ``benchmarks/out/sparse_fill_<tag>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BATCH, BITS, HIDDEN, WORD, READ_HEADS, K = 16, 8, 64, 32, 4, 8


def _load() -> tuple[float, float, float]:
    return os.getloadavg()


# -- the worker: one (mode, N) in this process ---------------------------------------------------
def _detached(state):  # noqa: ANN001, ANN202
    """The cell state with the gradient cut (the memory buffers and the search index carry over)."""
    import torch

    from mannkit_dnc.sparse import SparseDNCState
    from mannkit_dnc.sparse_ops import new_token

    if isinstance(state, SparseDNCState):
        return state._replace(token=new_token(state.memory), read_weights=state.read_weights.detach(),
                              precedence=state.precedence.detach())
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(_detached(v) for v in state))
    if isinstance(state, (tuple, list)):
        return type(state)(_detached(v) for v in state)
    return state


def _fill(memory_state, fill: str, generator) -> None:  # noqa: ANN001
    """Every row written: M, its norms, positive usage everywhere, frontier N."""
    import torch

    from mannkit.nn.addressing import EPS

    B, N, W = memory_state.memory.shape
    if fill == "clusters":
        centres = torch.randn(B, max(1, N // 16), W, generator=generator)
        pick = torch.randint(0, centres.shape[1], (B, N), generator=generator)
        rows = centres.gather(1, pick.unsqueeze(-1).expand(-1, -1, W)) + 0.1 * torch.randn(B, N, W, generator=generator)
    else:
        rows = torch.randn(B, N, W, generator=generator)
    memory_state.memory.copy_(rows)
    memory_state.norms.copy_(rows.square().sum(-1).add(EPS).sqrt())
    memory_state.usage.copy_(torch.rand(B, N, generator=generator) * 0.9 + 0.05)
    memory_state.frontier.fill_(N)


def _recall(memory, memory_state, generator, near: bool, trials: int = 8) -> tuple[float, float]:  # noqa: ANN001
    """Fraction of the exact top-K rows the memory's search finds (outside the timing), for random keys or,
    with ``near``, for keys near stored rows (a stored row plus noise of a tenth of its norm); and, for
    those, the fraction of keys whose own row is among the K found."""
    import torch

    from mannkit_dnc.sparse import top_k_search

    found = total = own = 0
    B, N, W = memory_state.memory.shape
    with torch.no_grad():
        for _ in range(trials):
            keys = torch.randn(BATCH, READ_HEADS, WORD, generator=generator)
            source = torch.randint(0, N, (B, READ_HEADS, 1), generator=generator)
            if near:
                rows = memory_state.memory.gather(1, source.expand(-1, -1, W))
                keys = rows + 0.1 * rows.norm(dim=-1, keepdim=True) / W**0.5 * keys
            ours = memory._search(memory_state, keys)
            exact = top_k_search(memory_state.memory, memory_state.norms, keys, K)
            found += int((ours.unsqueeze(-1) == exact.unsqueeze(-2)).any(-1).sum())
            own += int((ours == source).any(-1).sum())
            total += exact.numel()
    return found / total, own / (total / K)


def worker(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F

    for path in (ROOT, ROOT / "plugins"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    from mannkit.cell import MemoryCell
    from mannkit.nn import LSTMController
    from mannkit_dnc.heads import DNCReadHead, DNCWriteHead
    from mannkit_dnc.sparse import SparseDNCMemory

    torch.set_num_threads(1)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    search = {"exact": "exact", "ann": "ann", "auto": "auto"}[args.mode]
    memory = SparseDNCMemory(slots=args.slots, word_size=WORD, k=K, link_k=8, search=search, ann_probes=args.probes)
    cell = MemoryCell(LSTMController(HIDDEN), memory, [DNCWriteHead(), DNCReadHead(count=READ_HEADS)], clip=20.0)
    cell.bind(BITS + 1, BITS)
    optimizer = torch.optim.Adam(cell.parameters())
    state = cell.initial_state(BATCH, torch.device("cpu"), torch.float32)
    _fill(state.memory, args.fill, generator)
    rss_filled = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu, losses, build_ms = [], [], [], None
    for segment in range(args.warmup + args.segments):
        x = torch.randint(0, 2, (BATCH, args.steps, BITS + 1), generator=generator).float()
        w0, c0 = time.perf_counter(), time.process_time()
        optimizer.zero_grad()
        state = _detached(state)
        outputs = []
        for t in range(args.steps):
            y, state, _ = cell.step(x[:, t], state)
            outputs.append(y)
        loss = F.binary_cross_entropy_with_logits(torch.stack(outputs, 1), x[..., :BITS])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        w, c = 1000 * (time.perf_counter() - w0) / args.steps, 1000 * (time.process_time() - c0) / args.steps
        if segment == 0:
            build_ms = w * args.steps  # the whole first segment (with the index build)
        if segment >= args.warmup:
            wall.append(w)
            cpu.append(c)
    index = state.memory.search_index
    return {
        "mode": args.mode, "slots": args.slots, "fill": args.fill, "probes": args.probes, "steps": args.steps,
        "cpu_ms": cpu, "wall_ms": wall, "first_segment_ms": build_ms,
        "index_builds": None if index is None else index.builds,
        "recall": _recall(memory, state.memory, generator, near=False)[0],
        **dict(zip(("recall_near", "own_row_found"), _recall(memory, state.memory, generator, near=True))),
        "frontier_min": int(state.memory.frontier.min()),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_after_fill_mib": rss_filled,
        "losses_finite": all(l == l and abs(l) != float("inf") for l in losses),  # noqa: PLR0124
        "torch": torch.__version__,
    }


# -- the libraries on their own ------------------------------------------------------------------
def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def compare_libraries(slots: int, batch_rows: int, steps: int = 50) -> list[dict]:
    """hnswlib HNSW against faiss IVF (and the exact torch scan) on this memory's access pattern.

    Per batch row, an index over ``slots`` unit rows of width 32 (Gaussian, the hardest case);
    one step = for each of ``batch_rows`` rows: replace K + 1 = 9 rows (hnswlib: ``add_items``
    with existing labels; faiss: ``remove_ids`` + ``add_with_ids``), then one search of 1 key for
    9 and one of 4 keys for 8. Reported: build seconds per index, CPU ms per step scaled to
    B = 16, and recall@8 of random keys after the updates.
    """
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    unit = lambda a: (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)  # noqa: E731
    data = [unit(rng.standard_normal((slots, WORD))) for _ in range(batch_rows)]

    def run(name: str, build, upsert, search) -> dict:  # noqa: ANN001
        t0 = time.process_time()
        indexes = [build(d) for d in data]
        built = (time.process_time() - t0) / batch_rows
        t0 = time.process_time()
        for _ in range(steps):
            for b, index in enumerate(indexes):
                ids = rng.choice(slots, K + 1, replace=False).astype(np.int64)
                rows = unit(rng.standard_normal((K + 1, WORD)))
                data[b][ids] = rows
                upsert(index, ids, rows)
                search(index, unit(rng.standard_normal((1, WORD))), K + 1)
                search(index, unit(rng.standard_normal((READ_HEADS, WORD))), K)
        step_ms = 1000 * (time.process_time() - t0) / steps * BATCH / batch_rows
        hits = 0
        for _ in range(50):
            key = unit(rng.standard_normal((1, WORD)))
            exact = set(np.argsort(-(data[0] @ key[0]))[:K].tolist())
            hits += len(exact & set(search(indexes[0], key, K)[0].tolist()))
        return {"library": name, "build_s_per_index": built, "ms_per_step_b16": step_ms, "recall": hits / (50 * K)}

    results = []
    try:
        import hnswlib
    except ImportError:
        hnswlib = None
    for m, ef_construction, ef in ((8, 40, 32), (16, 64, 48)) if hnswlib else ():
        def build(d, m=m, efc=ef_construction, ef=ef):  # noqa: ANN001, ANN202
            index = hnswlib.Index(space="ip", dim=WORD)
            index.init_index(max_elements=slots, M=m, ef_construction=efc)
            index.set_num_threads(1)
            index.add_items(d, np.arange(slots))
            index.set_ef(ef)
            return index
        results.append(run(f"hnswlib {_version('hnswlib')} M={m} ef_construction={ef_construction} ef={ef}",
                           build, lambda i, ids, rows: i.add_items(rows, ids), lambda i, q, k: i.knn_query(q, k)[0]))
    import faiss

    for probes in (4, 8, 16):
        def build(d, probes=probes):  # noqa: ANN001, ANN202
            lists = int(slots**0.5)
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(WORD), WORD, lists, faiss.METRIC_INNER_PRODUCT)
            index.cp.max_points_per_centroid, index.cp.niter = 64, 10
            index.train(d)
            index.set_direct_map_type(faiss.DirectMap.Hashtable)
            index.add_with_ids(d, np.arange(slots, dtype=np.int64))
            index.nprobe = probes
            return index

        def upsert(index, ids, rows):  # noqa: ANN001, ANN202
            index.remove_ids(ids)
            index.add_with_ids(rows, ids)
        results.append(run(f"faiss {faiss.__version__} IVF-flat {int(slots**0.5)} lists, {probes} probed", build, upsert,
                           lambda i, q, k: i.search(q, k)[1]))
    torch.set_num_threads(1)
    memory = torch.randn(BATCH, slots, WORD)
    norms = memory.norm(dim=-1)
    t0 = time.process_time()
    for _ in range(steps // 5):
        for h in (1, READ_HEADS):
            (torch.randn(BATCH, h, WORD) @ memory.mT).div_(norms.unsqueeze(1)).topk(K, dim=-1, sorted=False)
    results.append({"library": "torch exact scan (bmm + topk)", "build_s_per_index": 0.0,
                    "ms_per_step_b16": 1000 * (time.process_time() - t0) / (steps // 5), "recall": 1.0})
    return results


# -- the driver ----------------------------------------------------------------------------------
def _run(args: argparse.Namespace, mode: str, slots: int) -> dict:
    command = [sys.executable, __file__, "--worker", "--mode", mode, "--slots", str(slots), "--steps", str(args.steps),
               "--segments", str(args.segments), "--warmup", str(args.warmup), "--fill", args.fill, "--probes", str(args.probes)]
    before = _load()[0]
    out = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"}, check=False)
    if out.returncode:
        raise SystemExit(f"worker {mode}@{slots} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_1min"] = [before, _load()[0]]
    return result


def _table(summary: dict, modes: list[str], slots: list[int]) -> str:
    lines = ["| mode | N | CPU ms/step | wall ms/step | CPU ratio to N=1024 | wall ratio | peak RSS MiB | recall (random keys / near rows) | own row found | index builds | first segment ms | load |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for mode in modes:
        base = summary.get(f"{mode}@1024")
        for n in slots:
            s = summary.get(f"{mode}@{n}")
            if s is None:
                continue
            ratio = lambda key: f"{s[key] / base[key]:.2f}" if base else "-"  # noqa: E731
            lines.append(f"| {mode} | {n:,} | {s['cpu_ms']:.1f} | {s['wall_ms']:.1f} | {ratio('cpu_ms')} | {ratio('wall_ms')} | "
                         f"{s['peak_rss_mib']:.0f} | {s['recall']:.2f} / {s['recall_near']:.2f} | {s['own_row_found']:.2f} | {s['index_builds']} | {s['first_segment_ms']:.0f} | "
                         f"{s['load'][0]:.1f}-{s['load'][1]:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="exact,ann,auto", help="comma-separated: exact, ann, auto (exact below 8,192 rows)")
    p.add_argument("--slots", default="1024,4096,16384,65536", help="comma-separated memory sizes N")
    p.add_argument("--steps", type=int, default=20, help="cell steps per training segment")
    p.add_argument("--segments", type=int, default=4, help="measured segments per repeat")
    p.add_argument("--warmup", type=int, default=1, help="segments run before measuring (the first builds the index)")
    p.add_argument("--repeats", type=int, default=1, help="interleaved repeats of every configuration")
    p.add_argument("--fill", choices=("gaussian", "clusters"), default="gaussian")
    p.add_argument("--probes", type=int, default=8, help="SparseDNCMemory ann_probes")
    p.add_argument("--tag", default="default")
    p.add_argument("--libraries", type=int, default=0, metavar="ROWS",
                   help="instead: compare hnswlib and faiss on this access pattern at the largest N over ROWS batch rows")
    args = p.parse_args(argv)
    if args.libraries:
        slots = max(int(n) for n in args.slots.split(","))
        print(f"N={slots}, W={WORD}, {args.libraries} batch rows (scaled to B={BATCH}), load {_load()}")
        print("| library | build s / index | CPU ms / step (B=16) | recall@8, random keys |\n|---|---:|---:|---:|")
        for r in compare_libraries(slots, args.libraries):
            print(f"| {r['library']} | {r['build_s_per_index']:.2f} | {r['ms_per_step_b16']:.1f} | {r['recall']:.2f} |", flush=True)
        return
    if args.worker:
        args.slots = int(args.slots)
        print(json.dumps(worker(args)))
        return
    modes, slots = args.mode.split(","), [int(n) for n in args.slots.split(",")]
    runs: dict[str, list[dict]] = {}
    started = time.time()
    for repeat in range(args.repeats):
        for n in slots:
            for mode in modes:
                result = _run(args, mode, n)
                runs.setdefault(f"{mode}@{n}", []).append(result)
                print(f"[{repeat}] {mode}@{n}: CPU {statistics.median(result['cpu_ms']):.1f} ms/step, wall "
                      f"{statistics.median(result['wall_ms']):.1f}, recall {result['recall']:.2f}/{result['recall_near']:.2f}, "
                      f"peak {result['peak_rss_mib']:.0f} MiB, load {result['load_1min'][0]:.1f}", flush=True)
    summary = {}
    for key, results in runs.items():
        summary[key] = {
            "cpu_ms": statistics.median(c for r in results for c in r["cpu_ms"]),
            "wall_ms": statistics.median(w for r in results for w in r["wall_ms"]),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
            "recall": statistics.mean(r["recall"] for r in results),
            "recall_near": statistics.mean(r["recall_near"] for r in results),
            "own_row_found": statistics.mean(r["own_row_found"] for r in results),
            "index_builds": results[0]["index_builds"],
            "first_segment_ms": statistics.median(r["first_segment_ms"] for r in results),
            "load": [min(r["load_1min"][0] for r in results), max(r["load_1min"][1] for r in results)],
        }
    table = _table(summary, modes, slots)
    header = (f"sparse DNC, memory pre-filled ({args.fill}), B={BATCH}, W={WORD}, K=K_L={K}, R={READ_HEADS}, "
              f"{args.steps} steps/segment x {args.segments} segments x {args.repeats} repeats, probes={args.probes}, "
              f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {time.time() - started:.0f} s, load now {_load()}")
    print(header)
    print(table)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / f"sparse_fill_{args.tag}.json").write_text(json.dumps({"args": vars(args), "summary": summary, "runs": runs}, indent=1))
    (out / f"sparse_fill_{args.tag}.md").write_text(header + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()
