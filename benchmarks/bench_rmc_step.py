"""Speed of the Relational Memory Core (issue 13): a training step against the DNC's at a similar parameter count,
and the cost of its attention as the slots grow.

1. **Training step.** One Adam step (forward over T steps, masked cross-entropy, backward, update) on
   N-th farthest batches at the paper's size (8 vectors of 16 dimensions: T = 8, I = 40, O = 8),
   batch 32, for the ``configs/relational`` presets' models (each about 23k parameters at the CPU size;
   their sizes are kept, only I and O follow the task): the RMC model, the LSTM alone, the dense DNC,
   and the RMC as the DNC's controller.
2. **Attention against slots.** One step of the core alone (forward and backward; word size 32,
   2 heads, one block, unit gating, batch 32) at N = 8, 32, 128 slots, and the attention maths alone
   (``mannkit.nn.attention.attend`` over N + 1 rows) at the same N; attention is O(N^2) per step.

Each configuration is timed ``--repeats`` times (``--steps`` steps after ``--warmup``); the figure is
the median over repeats of the mean ms per step, wall-clock and process CPU. One thread (``torch.set_num_threads(1)``); the
machine is shared, so the 1-minute load average is printed beside the table.

    OMP_NUM_THREADS=1 python benchmarks/bench_rmc_step.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from mannkit.core.config import instantiate
from mannkit.core.registry import load_plugins
from mannkit.tasks import NthFarthestTask
from mannkit.tasks.base import make_generator

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {
    "RMC (RelationalMemoryModel)": "nth_farthest_rmc.yaml",
    "LSTM 68 (ControllerCell)": "nth_farthest_lstm.yaml",
    "DNC (LSTM 48, 16 x 16, R = 2)": "nth_farthest_dnc.yaml",
    "RMC controller + DNC memory": "nth_farthest_rmc_dnc.yaml",
}


def timed(step: Callable[[], None], warmup: int, steps: int, repeats: int) -> str:
    """``"wall / cpu"``: medians over ``repeats`` of the mean wall-clock and process-CPU ms of ``step`` over ``steps`` calls.

    The CPU time counts only this process's work, so it moves less than the wall time when other
    processes share the cores."""
    for _ in range(warmup):
        step()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        walls.append((time.perf_counter() - wall) * 1000 / steps)
        cpus.append((time.process_time() - cpu) * 1000 / steps)
    return f"{statistics.median(walls):.2f} / {statistics.median(cpus):.2f}"


def training_step(name: str, batch_size: int) -> tuple[Callable[[], None], int]:
    """A closure doing one Adam step of the preset's model on paper-size N-th farthest, and its parameter count."""
    preset = yaml.safe_load((ROOT / "configs" / "relational" / PRESETS[name]).read_text())
    torch.manual_seed(0)
    core = instantiate(preset["model"]["init_args"]["core"], "model.init_args.core")
    task = NthFarthestTask(label_space=8, dims=16, min_objects=8, max_objects=8, test_objects=[8])
    core.bind(task.input_size, task.output_size)
    optimizer = torch.optim.Adam(core.parameters(), lr=1e-4)
    batch = task.generate(make_generator(0, "bench"), batch_size, **task.train_difficulty())

    def step() -> None:
        logits = core(batch["input"]).logits  # [B, T, O]
        loss = (F.cross_entropy(logits.transpose(1, 2), batch["target"], reduction="none") * batch["mask"]).sum() / batch["mask"].sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, sum(p.numel() for p in core.parameters())


def core_step(slots: int, batch_size: int) -> Callable[[], None]:
    """One forward and backward step of a Relational Memory Core with N = ``slots``."""
    from mannkit_relational import RelationalMemoryCore

    torch.manual_seed(0)
    core = RelationalMemoryCore(slots=slots, word_size=32, num_heads=2)
    core.bind(40)
    x = torch.randn(batch_size, 40)
    memory = core.initial_state(batch_size, torch.device("cpu"), torch.float32)

    def step() -> None:
        h, _ = core(x, memory)
        h.sum().backward()

    return step


def attention_only(slots: int, batch_size: int) -> Callable[[], None]:
    """``attend`` over N + 1 rows (queries, keys and values from every row; 2 heads of 16)."""
    from mannkit.nn.attention import attend

    q, k, v = (torch.randn(batch_size, slots + 1, 2, 16) for _ in range(3))
    return lambda: attend(q, k, v, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--slots", default="8,32,128")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_plugins()
    import mannkit.cell  # noqa: F401  (registers the core classes by short name)
    import mannkit.nn  # noqa: F401

    print(f"threads {torch.get_num_threads()}, batch {args.batch_size}, median of {args.repeats} repeats of "
          f"{args.steps} steps, load average {os.getloadavg()[0]:.2f}\n")
    print("| model (N-th farthest, 8 x 16, T = 8) | parameters | ms per training step, wall / CPU |\n|---|---|---|")
    for name in PRESETS:
        step, count = training_step(name, args.batch_size)
        print(f"| {name} | {count:,} | {timed(step, args.warmup, args.steps, args.repeats)} |", flush=True)
    print("\n| slots N | RMC core step, forward + backward, wall / CPU (ms) | attention alone, forward, wall / CPU (ms) |\n|---|---|---|")
    for slots in (int(s) for s in args.slots.split(",")):
        core_ms = timed(core_step(slots, args.batch_size), args.warmup, args.steps, args.repeats)
        attention_ms = timed(attention_only(slots, args.batch_size), args.warmup, args.steps, args.repeats)
        print(f"| {slots} | {core_ms} | {attention_ms} |", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
