"""Training-step time of the neural stack (and queue, deque) against the sequence length (issue 11).

The workload (the issue's): batch 10, LSTM controller 256, values of W = 64, reversal with a
vocabulary of 128 at source lengths L = 64, 128, 256, 512, so T = 2L + 1 steps and up to 2L + 1
stored values (2 (2L + 1) for the deque); cross-entropy on the L target steps; one RMSprop step.
One torch thread. For each length: ``--warmup`` untimed steps, then the median over ``--runs``
timed steps (wall clock and process CPU). The per-step cost of a stack step is linear in the
stored values t (the cumulative sums and the read are O(t W)), so a whole sequence costs about
``a T + b T^2`` and the time per *unrolled step* should grow about linearly in T once the
stack's term dominates. Also prints the peak resident memory (the autograd graph keeps each
step's ``[B, t, W]`` values: O(T^2 W) for the sequence). Writes JSON to ``benchmarks/out/``.

    OMP_NUM_THREADS=1 python benchmarks/bench_stack_step.py --lengths 64 128 256 512 --runs 5
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from mannkit.cell import MemoryCell
from mannkit.nn import LSTMController
from mannkit.systems.losses import masked_cross_entropy_loss
from mannkit.tasks import ReversalTask
from mannkit.nn import ControllerCell
from mannkit_stack import NeuralDeque, NeuralQueue, NeuralStack, NeuralStackHead

OUT = Path(__file__).resolve().parent / "out"
MEMORIES = {"stack": NeuralStack, "queue": NeuralQueue, "deque": NeuralDeque}


def build(kind: str) -> torch.nn.Module:
    """The model: an LSTM 256 with a NeuralStack/Queue/Deque of W = 64 and its head, or the LSTM alone."""
    if kind == "lstm":
        model = ControllerCell(LSTMController(256))
    else:
        model = MemoryCell(LSTMController(256), MEMORIES[kind](word_size=64), [NeuralStackHead()], clip=20.0)
    model.bind(129, 128)
    return model


def time_steps(kind: str, length: int, runs: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = build(kind)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    batch = ReversalTask(min_length=length, max_length=length, test_lengths=[length], batch_size=10).example_batch(10)
    walls, cpus = [], []
    for i in range(warmup + runs):
        wall, cpu = time.perf_counter(), time.process_time()
        loss = masked_cross_entropy_loss(model(batch["input"]).logits, batch["target"], batch["mask"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= warmup:
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    T = batch["input"].shape[1]
    return {
        "memory": kind, "length": length, "T": T, "runs": runs,
        "median_s": statistics.median(walls), "median_cpu_s": statistics.median(cpus),
        "ms_per_unrolled_step": 1000 * statistics.median(cpus) / T,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--memories", nargs="+", default=["stack"], choices=[*MEMORIES, "lstm"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [time_steps(kind, length, args.runs, args.warmup) for kind in args.memories for length in args.lengths]
    print("| memory | L | T | median s / training step (wall) | median CPU s | CPU ms per unrolled step | peak RSS MB (process) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['memory']} | {r['length']} | {r['T']} | {r['median_s']:.3f} | {r['median_cpu_s']:.3f} | "
              f"{r['ms_per_unrolled_step']:.2f} | {r['peak_rss_mb']:.0f} |")
    OUT.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    (OUT / f"bench_stack_step_{stamp}.json").write_text(json.dumps({"threads": 1, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
