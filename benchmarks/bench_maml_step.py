"""Cost of one MAML meta-step: mannkit's MetaSystem (task loop, and vmap over tasks) against ``higher``.

The workload (issue 14's): sinusoid regression, meta-batch 25 tasks, K = 5 support and 10 query points,
a ReLU MLP 1-40-40-1, one inner SGD step (alpha 0.01), second order unless ``--first-order``; the meta-step
is zero_grad, the meta-loss (mean over tasks of the query MSE after adaptation), backward, one Adam step.
Every variant sees the same fixed meta-batches and starts from the same weights. Rounds are interleaved
(variant A, B, C, A, B, C, ...) so load on the shared machine hits all alike; reported: the median over
rounds of each round's median ms per step, and the spread (min-max of the round medians). One thread.

    OMP_NUM_THREADS=1 python benchmarks/bench_maml_step.py --steps 30 --rounds 5

The baseline: learn2learn's ``MAML`` wrapper was the issue's first choice, but its 0.2.0 sdist does not
build on Python 3.11 (its pre-generated Cython C includes ``longintrepr.h``) and, regenerated, its import
needs torchvision, gym, gsutil and qpth; so ``higher`` (``pip install higher``, pure Python) runs in its
place, driven as its MAML example drives it: ``innerloop_ctx(model, SGD(lr=alpha), copy_initial_weights=False)``,
``diffopt.step(support_loss)``, then the query loss of each task, backward per task (divided by E).
Without ``higher`` installed that row is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from mannkit.systems import FewShotMLP, MetaSystem
from mannkit.tasks import SinusoidTask

OUT = Path(__file__).parent / "out"


def _batches(count: int, seed: int) -> list[dict]:
    task = SinusoidTask(shots=5, queries=10, meta_batch=25, val_batches=count, seed=seed)
    return task.val_set


def ours(vectorise: bool, first_order: bool, alpha: float) -> Callable[[dict], None]:
    torch.manual_seed(0)
    system = MetaSystem(FewShotMLP([40, 40]), inner_lr=alpha, first_order=first_order, vectorise=vectorise,
                        input_size=1, output_size=1, loss="mse")
    optimizer = torch.optim.Adam(system.parameters(), 1e-3)

    def step(batch: dict) -> None:
        optimizer.zero_grad()
        system.meta_loss(batch).backward()
        optimizer.step()

    return step


def with_higher(first_order: bool, alpha: float) -> Callable[[dict], None] | None:
    try:
        import higher
    except ImportError:
        return None
    torch.manual_seed(0)
    net = FewShotMLP([40, 40])
    net.bind(1, 1)
    model: nn.Module = net.net  # the same layers, as a plain Sequential
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    inner = torch.optim.SGD(model.parameters(), lr=alpha)
    mse = nn.functional.mse_loss

    def step(batch: dict) -> None:
        optimizer.zero_grad()
        E = batch["support_x"].shape[0]
        for e in range(E):
            with higher.innerloop_ctx(model, inner, copy_initial_weights=False, track_higher_grads=not first_order) as (fmodel, diffopt):
                diffopt.step(mse(fmodel(batch["support_x"][e]), batch["support_y"][e]))
                (mse(fmodel(batch["query_x"][e]), batch["query_y"][e]) / E).backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="measured meta-steps per round (after 3 warm-up steps)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--alpha", type=float, default=0.01)
    args = parser.parse_args()
    torch.set_num_threads(1)
    batches = _batches(args.steps + 3, seed=0)
    variants = {"mannkit MetaSystem (task loop)": ours(False, args.first_order, args.alpha),
                "mannkit MetaSystem (vectorise: vmap)": ours(True, args.first_order, args.alpha)}
    baseline = with_higher(args.first_order, args.alpha)
    if baseline is None:
        print("note: higher is not installed (pip install higher); its row is skipped")
    else:
        variants["higher 0.2.1 innerloop_ctx"] = baseline
    rounds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, step in variants.items():
            times = []
            for i, batch in enumerate(batches):
                start = time.perf_counter()
                step(batch)
                if i >= 3:
                    times.append(1000 * (time.perf_counter() - start))
            rounds[name].append(statistics.median(times))
    order = "first" if args.first_order else "second"
    print(f"\nMAML meta-step, {order} order, meta-batch 25, 1 inner step, MLP 1-40-40-1, torch {torch.__version__}, 1 thread, "
          f"{platform.processor() or platform.machine()}\n")
    print("| variant | ms per meta-step (median of rounds) | round medians min-max |")
    print("|---|---|---|")
    for name, values in rounds.items():
        print(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f}-{max(values):.1f} |")
    OUT.mkdir(exist_ok=True)
    (OUT / f"bench_maml_step_{order}.json").write_text(json.dumps({"args": vars(args), "rounds_ms": rounds}, indent=1))


if __name__ == "__main__":
    main()
