"""Speed of one NTM training step: mannkit eager, mannkit compiled, and pytorch-ntm as the baseline.

The workload (the issue's): copy length 20, so 41 steps (20 bits + delimiter + 20 reads);
batch 16; 8 bits (+1 delimiter channel); LSTM controller 100; memory 128 x 20; one write
and one read head with NTM addressing (shift range 1); BCE loss on the 20 output steps; one
Adam step. Every variant runs in its own subprocess (so its peak memory is its own and a
compiled cell cannot warm the eager one), ``--rounds`` times, interleaved, and the medians
are taken over every measured step of every round.

    OMP_NUM_THREADS=1 python benchmarks/bench_ntm_step.py --steps 10 --rounds 3 \\
        --baseline-dir benchmarks/out/pytorch-ntm

``--baseline-dir`` is a checkout of https://github.com/loudinthecloud/pytorch-ntm (its
``ntm/`` package with ``aio.py``); without it the baseline is skipped with a note. The
baseline is driven as its own ``train.py`` drives it (``init_sequence``, one call per input
step, then one call per output step with no input, ``BCELoss`` on its sigmoid outputs,
gradients clamped to +-10), with Adam instead of its default RMSprop unless
``--baseline-optimizer rmsprop``.

Reported per variant: median wall-clock ms per step and median process CPU ms per step
(the CPU time is steadier when other work shares the machine), the time of the first step
(for the compiled variant in round 1, with an empty inductor cache: the cold compile; later
rounds share that cache and are listed in the JSON), the peak resident memory of the subprocess (``ru_maxrss``) and how
much it grew from just before the first step, and for compiled variants how many graphs
Dynamo compiled (it must not grow after the warm-up). Prints a markdown table and writes
JSON to ``benchmarks/out/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_BASELINE = ROOT / "out" / "pytorch-ntm"
VARIANTS = ("eager", "compiled", "baseline")

# the workload
BATCH, LENGTH, BITS = 16, 20, 8
HIDDEN, SLOTS, WORD = 100, 128, 20
STEPS_IN, STEPS_OUT = LENGTH + 1, LENGTH  # bits + delimiter, then the reads


def _copy_batch(generator) -> tuple:  # noqa: ANN001
    """Input ``[B, 41, 9]`` (bits, delimiter, zeros) and target ``[B, 20, 8]``."""
    import torch

    bits = torch.randint(0, 2, (BATCH, LENGTH, BITS), generator=generator).float()
    x = torch.zeros(BATCH, STEPS_IN + STEPS_OUT, BITS + 1)
    x[:, :LENGTH, :BITS] = bits
    x[:, LENGTH, BITS] = 1.0  # delimiter channel
    return x, bits


def _rss_mib() -> float:
    """Current resident set size of this process, MiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _mannkit_step_fn(compile_step: bool, compile_options: dict):  # noqa: ANN202
    import torch
    import torch.nn.functional as F

    from mannkit.cell import MemoryCell
    from mannkit.core.registry import load_plugins, registry
    from mannkit.nn import LSTMController, MatrixMemory, ReadHead, WriteHead

    load_plugins()
    addressing = registry.get("NTMAddressing")
    cell = MemoryCell(
        LSTMController(HIDDEN),
        MatrixMemory(SLOTS, WORD, init="constant"),
        [WriteHead(addressing(shift_range=1)), ReadHead(addressing(shift_range=1))],
        clip=20,
        compile=compile_step,
    )
    cell.bind(BITS + 1, BITS)
    if compile_step and compile_options:  # other torch.compile settings for the same step function
        cell.__dict__["_compiled_step"] = torch.compile(cell._step, dynamic=False, **compile_options)
    optimizer = torch.optim.Adam(cell.parameters())

    def step(x, target):  # noqa: ANN001, ANN202
        optimizer.zero_grad()
        logits = cell(x).logits[:, STEPS_IN:]  # the 20 output steps, [B, 20, 8]
        loss = F.binary_cross_entropy_with_logits(logits, target)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def _baseline_step_fn(baseline_dir: str, optimizer_name: str):  # noqa: ANN202
    import torch
    from torch import nn

    sys.path.insert(0, str(Path(baseline_dir).resolve()))
    from ntm.aio import EncapsulatedNTM  # type: ignore[import-not-found]

    net = EncapsulatedNTM(BITS + 1, BITS, HIDDEN, 1, 1, SLOTS, WORD)  # its copy task's sizes
    if optimizer_name == "rmsprop":  # its copy task's optimizer
        optimizer = torch.optim.RMSprop(net.parameters(), momentum=0.9, alpha=0.95, lr=1e-4)
    else:
        optimizer = torch.optim.Adam(net.parameters())
    criterion = nn.BCELoss()

    def step(x, target):  # noqa: ANN001, ANN202
        # as its train.py's train_batch, with time-major tensors
        X, Y = x[:, :STEPS_IN].transpose(0, 1), target.transpose(0, 1)  # [21, B, 9], [20, B, 8]
        optimizer.zero_grad()
        net.init_sequence(BATCH)
        for i in range(X.size(0)):
            net(X[i])
        y_out = torch.zeros(Y.size())
        for i in range(Y.size(0)):
            y_out[i], _ = net()
        loss = criterion(y_out, Y)
        loss.backward()
        for p in net.parameters():  # its clip_grads
            if p.grad is not None:
                p.grad.data.clamp_(-10, 10)
        optimizer.step()
        return loss.item()

    return step


def worker(args: argparse.Namespace) -> dict:
    """Run one variant in this process and return its measurements."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    batches = [_copy_batch(generator) for _ in range(args.warmup + args.steps)]
    if args.worker == "baseline":
        step = _baseline_step_fn(args.baseline_dir, args.baseline_optimizer)
    else:
        step = _mannkit_step_fn(args.worker == "compiled", json.loads(args.compile_options))
    rss_before = _rss_mib()
    wall, cpu, losses = [], [], []
    graphs_after_warmup = None
    for i, (x, target) in enumerate(batches):
        if i == args.warmup:
            graphs_after_warmup = _graphs_compiled()
        w0, c0 = time.perf_counter(), time.process_time()
        losses.append(step(x, target))
        wall.append(1000 * (time.perf_counter() - w0))
        cpu.append(1000 * (time.process_time() - c0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB
    return {
        "variant": args.worker,
        "threads": torch.get_num_threads(),
        "first_step_ms": wall[0],
        "wall_ms": wall[args.warmup :],
        "cpu_ms": cpu[args.warmup :],
        "peak_rss_mib": peak,
        "rss_before_steps_mib": rss_before,
        "rss_growth_mib": peak - rss_before,
        "graphs_compiled": _graphs_compiled(),
        "graphs_after_warmup": graphs_after_warmup,
        "losses_finite": all(l == l and abs(l) != float("inf") for l in losses),  # noqa: PLR0124
    }


def _graphs_compiled() -> int | None:
    """Frames Dynamo has compiled so far in this process (None if Dynamo was never imported)."""
    if "torch._dynamo" not in sys.modules:
        return None
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _run_variant(variant: str, args: argparse.Namespace, inductor_cache: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache  # empty for the first compiled round: a cold compile
    command = [
        sys.executable, __file__, "--worker", variant, "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--threads", str(args.threads), "--baseline-optimizer", args.baseline_optimizer,
        "--compile-options", args.compile_options,
    ]  # fmt: skip
    if args.baseline_dir:
        command += ["--baseline-dir", str(args.baseline_dir)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_ntm_step: the {variant} variant failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _summarise(runs: list[dict]) -> dict:
    wall = [t for r in runs for t in r["wall_ms"]]
    cpu = [t for r in runs for t in r["cpu_ms"]]
    return {
        "steps_measured": len(wall),
        "median_wall_ms": statistics.median(wall),
        "median_cpu_ms": statistics.median(cpu),
        "min_wall_ms": min(wall),
        "round_median_wall_ms": [statistics.median(r["wall_ms"]) for r in runs],
        "round_median_cpu_ms": [statistics.median(r["cpu_ms"]) for r in runs],
        "first_step_ms": runs[0]["first_step_ms"],  # round 1: for a compiled variant, the cold compile
        "first_step_ms_later_rounds": [r["first_step_ms"] for r in runs[1:]],  # compiled: inductor's cache is warm
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "rss_growth_mib": max(r["rss_growth_mib"] for r in runs),
        "graphs_compiled": runs[-1]["graphs_compiled"],
        "recompiled_after_warmup": any(
            r["graphs_after_warmup"] is not None and r["graphs_compiled"] != r["graphs_after_warmup"] for r in runs
        ),
        "losses_finite": all(r["losses_finite"] for r in runs),
    }


def _table(summary: dict, threads: int) -> str:
    base = summary.get("baseline")
    lines = [
        f"| variant ({threads} thread{'s' if threads != 1 else ''}) | median ms/step (wall) | median ms/step (CPU) "
        "| vs baseline (wall) | vs baseline (CPU) | first step s (cold compile) | peak RSS MiB | RSS growth MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        ratio_wall = f"{base['median_wall_ms'] / s['median_wall_ms']:.2f}x" if base else "n/a"
        ratio_cpu = f"{base['median_cpu_ms'] / s['median_cpu_ms']:.2f}x" if base else "n/a"
        lines.append(
            f"| {name} | {s['median_wall_ms']:.1f} | {s['median_cpu_ms']:.1f} | {ratio_wall} | {ratio_cpu} "
            f"| {s['first_step_ms'] / 1000:.1f} | {s['peak_rss_mib']:.0f} | {s['rss_growth_mib']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="measured steps per round, after the warm-up (>= 10)")
    parser.add_argument("--warmup", type=int, default=3, help="steps run before measuring (the first one compiles)")
    parser.add_argument("--rounds", type=int, default=1, help="times each variant runs, interleaved, in fresh processes")
    parser.add_argument("--threads", type=int, default=1, help="torch (and OpenMP/MKL) threads")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}")
    parser.add_argument("--baseline-dir", type=Path, default=DEFAULT_BASELINE, help="a pytorch-ntm checkout (has ntm/aio.py)")
    parser.add_argument("--baseline-optimizer", choices=("adam", "rmsprop"), default="adam")
    parser.add_argument("--compile-options", default="{}", help='extra torch.compile options as JSON, e.g. \'{"fullgraph": true}\'')
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="folder for the JSON results")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.steps < 10:
        parser.error(f"--steps must be at least 10 (the issue asks for the median of >= 10 steps), got {args.steps}")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants has unknown names {unknown}; choose from {', '.join(VARIANTS)}")
    if "baseline" in variants and not (args.baseline_dir / "ntm" / "aio.py").is_file():
        print(
            f"note: no pytorch-ntm checkout at {args.baseline_dir} (expected ntm/aio.py there); skipping the baseline. "
            "Pass --baseline-dir pointing at a clone of github.com/loudinthecloud/pytorch-ntm to include it."
        )
        variants.remove("baseline")
    if "baseline" not in variants:
        args.baseline_dir = None

    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="bench_ntm_inductor_") as inductor_cache:
        for round_index in range(args.rounds):
            for variant in variants:
                print(f"round {round_index + 1}/{args.rounds}: {variant} ...", file=sys.stderr, flush=True)
                runs[variant].append(_run_variant(variant, args, inductor_cache))
    summary = {v: _summarise(r) for v, r in runs.items()}
    table = _table(summary, args.threads)
    load_after = os.getloadavg()
    print(table)
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_after} on {os.cpu_count()} CPUs")
    for name, s in summary.items():
        if name == "compiled":
            print(f"{name}: {s['graphs_compiled']} graph(s) compiled; recompiled after warm-up: {s['recompiled_after_warmup']}")
    record = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "load_average_before_after": [load_before, load_after],
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "workload": {"batch": BATCH, "steps": STEPS_IN + STEPS_OUT, "hidden": HIDDEN, "memory": [SLOTS, WORD]},
        "baseline_optimizer": args.baseline_optimizer,
        "compile_options": json.loads(args.compile_options),
        "summary": summary,
        "runs": runs,
        "table": table,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_ntm_step_{datetime.now().strftime('%Y%m%d_%H%M%S')}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
