"""Speed and memory of one DNC training step: mannkit (dense, compiled, sparse) against pytorch-dnc.

The workload (the issue's): copy length 20, so 41 steps (20 input vectors, a delimiter, 20
blank steps); batch 16; 8 bits (+1 delimiter channel); LSTM controller 64 (one layer); word
size 32; 4 read heads and 1 write head; BCE on the 20 output steps; one Adam step; one thread.
Dense memory at N = 64, 256, 1024 for both implementations; the sparse memory (ours only) at
N = 64 ... 65,536.

Every (implementation, N) runs in its own fresh subprocess (``_dnc_step_worker.py``), so its
peak memory is its own and a compiled cell cannot warm an eager one; the configurations are
interleaved (repeat 1 of every configuration, then repeat 2, ...), and the medians are taken
over every measured step of every repeat. The baseline runs under the interpreter of its own
venv (``--baseline-python``), made with

    python3 -m venv benchmarks/out/dnc-venv
    benchmarks/out/dnc-venv/bin/pip install torch==2.13.0 numpy
    benchmarks/out/dnc-venv/bin/pip install --no-deps dnc==1.1.0

One configuration, or a grid (comma-separated lists; ``ours-sparse`` uses ``--sparse-slots``,
the others ``--slots``). ``ours-dense`` is the eager step with every step saved (compile false,
checkpoint_every null), ``ours-dense-compiled`` compile true, ``ours-default`` MemoryCell's own
defaults (compile and checkpoint_every auto: it warms up through the eager steps and the compile
that ``compile: auto`` waits for), ``reference-lstm`` a plain torch LSTM step (the yardstick of
``bench_speed_check.py``):

    OMP_NUM_THREADS=1 python benchmarks/bench_dnc_step.py --impl baseline --slots 64,256 --repeats 3
    OMP_NUM_THREADS=1 python benchmarks/bench_dnc_step.py --grid --repeats 3 --budget-s 120

Reported per configuration: median wall-clock and process-CPU ms per step, the ratio to the
baseline at the same N from the same run, the peak resident memory of the subprocess (read by
the driver from ``os.wait4``'s rusage of that child, cross-checked with the worker's own
``ru_maxrss``), how much it grew from just before the first step, the 1-minute load average
around its runs and the memory available before it started. Writes JSON and a markdown table
to ``benchmarks/out/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent
WORKER = ROOT / "_dnc_step_worker.py"
DEFAULT_BASELINE_PYTHON = ROOT / "out" / "dnc-venv" / "bin" / "python"
IMPLS = ("ours-dense", "ours-dense-compiled", "ours-default", "ours-sparse", "baseline", "reference-lstm")
GRID_IMPLS = ("ours-dense", "ours-default", "ours-sparse", "baseline")
DENSE_SLOTS = "64,256,1024"
SPARSE_SLOTS = "64,256,1024,4096,16384,65536"
TARGETS = {64: 3.0, 256: 3.0, 1024: 5.0}  # the speed-up targets for dense N; at 1024 also <= 1/4 of its memory


def _mem_available_mib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _worker_command(impl: str, slots: int, args: argparse.Namespace) -> list[str]:
    python = str(args.baseline_python) if impl == "baseline" else sys.executable
    command = [
        python, str(WORKER), "--impl", impl, "--slots", str(slots), "--steps", str(args.steps),
        "--warmup", str(args.warmup), "--budget-s", str(args.budget_s), "--threads", str(args.threads),
        "--baseline-hidden-layers", str(args.baseline_hidden_layers),
    ]  # fmt: skip
    if impl.startswith("ours"):
        command += ["--clip", str(args.clip), "--checkpoint-every", str(args.checkpoint_every)]
        options = args.sparse_options if impl == "ours-sparse" else args.dense_options
        command += ["--memory-options", options]
    return command


def run_one(impl: str, slots: int, args: argparse.Namespace, inductor_cache: str) -> dict:
    """One fresh subprocess for one configuration; its peak RSS comes from the kernel's rusage of that child."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache  # the user's compile cache, or an empty one (--cold-cache)
    if impl == "baseline":
        env.pop("PYTHONPATH", None)  # the baseline sees only its venv
    mem_available = _mem_available_mib()
    load_before = os.getloadavg()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(_worker_command(impl, slots, args), env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage (RUSAGE_CHILDREN would be cumulative)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    record = {
        "impl": impl,
        "slots": slots,
        "returncode": child.returncode,
        "child_peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux -> MiB
        "child_user_s": usage.ru_utime,  # the whole child: start-up, build, warm-up and measured steps
        "child_system_s": usage.ru_stime,  # kernel time, mostly zero-filling freshly mapped pages
        "malloc_env": {k: v for k, v in env.items() if k.startswith("MALLOC_")},
        "seconds": seconds,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "mem_available_before_mib": mem_available,
    }
    if child.returncode != 0:
        record["error"] = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {child.returncode}"
        record["stderr_tail"] = stderr[-3000:]
        return record
    record.update(json.loads(stdout.strip().splitlines()[-1]))
    return record


def summarise(runs: list[dict]) -> dict:
    ok = [r for r in runs if r["returncode"] == 0]
    if not ok:
        return {"failed": True, "error": runs[0].get("error", "")}
    wall = [t for r in ok for t in r["wall_ms"]]
    cpu = [t for r in ok for t in r["cpu_ms"]]
    return {
        "failed": False,
        "repeats_ok": len(ok),
        "repeats_failed": len(runs) - len(ok),
        "steps_measured": len(wall),
        "median_wall_ms": statistics.median(wall),
        "median_cpu_ms": statistics.median(cpu),
        "min_wall_ms": min(wall),
        "median_minor_faults_per_step": statistics.median([f for r in ok for f in r.get("minor_faults", [0])]),
        "repeat_median_wall_ms": [statistics.median(r["wall_ms"]) for r in ok],
        "repeat_median_cpu_ms": [statistics.median(r["cpu_ms"]) for r in ok],
        "first_step_ms": ok[0]["first_step_ms"],
        "peak_rss_mib": max(r["child_peak_rss_mib"] for r in ok),
        "worker_peak_rss_mib": max(r["peak_rss_mib"] for r in ok),
        "rss_before_steps_mib": max(r["rss_before_steps_mib"] for r in ok),
        "rss_growth_mib": max(r["peak_rss_mib"] - r["rss_before_steps_mib"] for r in ok),
        "child_system_share": sum(r["child_system_s"] for r in ok) / sum(r["child_user_s"] + r["child_system_s"] for r in ok),
        "load_1min": [round(r["load_before"][0], 2) for r in ok] + [round(ok[-1]["load_after"][0], 2)],
        "graphs_compiled": ok[-1]["graphs_compiled"],
        "recompiled_after_warmup": any(
            r["graphs_after_warmup"] is not None and r["graphs_compiled"] != r["graphs_after_warmup"] for r in ok
        ),
        "losses_finite": all(r["losses_finite"] for r in ok),
        "first_step_cpu_ms": ok[0].get("first_step_cpu_ms"),
        "checkpoint_interval": ok[0].get("options", {}).get("checkpoint_interval"),
        "auto_compiled": ok[0].get("options", {}).get("auto_compiled"),
        "auto_compile_step_ms": [r.get("options", {}).get("auto_compile_step_ms") for r in ok],
        "auto_compile_eager_steps": ok[0].get("options", {}).get("auto_compile_eager_steps"),
    }


def table(summary: dict[str, dict], threads: int) -> str:
    lines = [
        f"| impl ({threads} thread{'s' if threads != 1 else ''}) | N | median ms/step (wall) | median ms/step (CPU) "
        "| baseline / this (wall) | (CPU) | peak RSS MiB | RSS growth MiB | peak vs baseline | steps | load (1 min) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, s in summary.items():
        impl, slots = key.rsplit("@", 1)
        if s["failed"]:
            lines.append(f"| {impl} | {slots} | failed: {s['error'][:120]} | | | | | | | | |")
            continue
        base = summary.get(f"baseline@{slots}")
        has_base = base is not None and not base["failed"] and impl != "baseline"
        ratio_wall = f"{base['median_wall_ms'] / s['median_wall_ms']:.2f}x" if has_base else ""
        ratio_cpu = f"{base['median_cpu_ms'] / s['median_cpu_ms']:.2f}x" if has_base else ""
        mem = f"{s['peak_rss_mib'] / base['peak_rss_mib']:.2f}" if has_base else ""
        loads = "-".join(f"{x:.1f}" for x in (min(s["load_1min"]), max(s["load_1min"])))
        lines.append(
            f"| {impl} | {slots} | {s['median_wall_ms']:.1f} | {s['median_cpu_ms']:.1f} | {ratio_wall} | {ratio_cpu} "
            f"| {s['peak_rss_mib']:.0f} | {s['rss_growth_mib']:.0f} | {mem} | {s['steps_measured']} | {loads} |"
        )
    return "\n".join(lines)


def checks(summary: dict[str, dict]) -> list[str]:
    """The issue's targets, where this run has the figures for them."""
    notes = []
    for slots, target in TARGETS.items():
        ours = summary.get(f"ours-default@{slots}") or summary.get(f"ours-dense@{slots}")
        base = summary.get(f"baseline@{slots}")
        if ours and base and not ours["failed"] and not base["failed"]:
            ratio = base["median_cpu_ms"] / ours["median_cpu_ms"]
            which = "default" if f"ours-default@{slots}" in summary else "eager"
            line = f"dense N={slots} ({which}): {ratio:.2f}x faster (CPU) against a target of {target:.0f}x"
            if slots == 1024:
                share = ours["peak_rss_mib"] / base["peak_rss_mib"]
                line += f"; peak RSS {share:.2f} of the baseline's against a target of <= 0.25"
            notes.append(line)
    small, large = summary.get("ours-sparse@1024"), summary.get("ours-sparse@65536")
    if small and large and not small["failed"] and not large["failed"]:
        ratio = large["median_cpu_ms"] / small["median_cpu_ms"]
        notes.append(f"sparse N=65536 step / N=1024 step: {ratio:.2f} (CPU) against a target of <= 3")
    return notes


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--impl", default="ours-dense,baseline", help=f"comma-separated subset of {','.join(IMPLS)}")
    p.add_argument("--grid", action="store_true", help=f"the full grid: {','.join(GRID_IMPLS)} (overrides --impl)")
    p.add_argument("--slots", default=DENSE_SLOTS, help="memory sizes N for the dense and baseline runs")
    p.add_argument("--sparse-slots", default=SPARSE_SLOTS, help="memory sizes N for ours-sparse")
    p.add_argument("--repeats", type=int, default=3, help="fresh subprocesses per configuration, interleaved")
    p.add_argument("--steps", type=int, default=5, help="measured steps per subprocess, after the warm-up")
    p.add_argument("--warmup", type=int, default=2, help="steps run before measuring (a compiled step compiles here)")
    p.add_argument("--budget-s", type=float, default=0.0, help="per subprocess: stop measuring after this many seconds (>= 1 step)")
    p.add_argument("--threads", type=int, default=1, help="torch (and OpenMP/MKL) threads")
    p.add_argument("--clip", type=float, default=20.0, help="ours: MemoryCell clip of the raw head parameters")
    p.add_argument("--checkpoint-every", type=int, default=0, help="ours: MemoryCell(checkpoint_every=K), 0 leaves it out")
    p.add_argument("--dense-options", default="{}", help="ours: extra DNCMemory arguments as JSON")
    p.add_argument("--sparse-options", default="{}", help='ours: extra SparseDNCMemory arguments as JSON, e.g. \'{"neighbours": 8}\'')
    p.add_argument("--baseline-python", type=Path, default=DEFAULT_BASELINE_PYTHON, help="the baseline venv's python")
    p.add_argument("--baseline-hidden-layers", type=int, default=1, help="baseline: LSTM layers in its controller (its default is 2)")
    p.add_argument("--out", type=Path, default=ROOT / "out", help="folder for the JSON and markdown results")
    p.add_argument("--tag", default="", help="a word added to the output file names")
    p.add_argument("--cold-cache", action="store_true", help="compile into a fresh, empty cache (a cold compile) instead of the user's compile cache")
    args = p.parse_args(argv)

    impls = list(GRID_IMPLS) if args.grid else [v.strip() for v in args.impl.split(",") if v.strip()]
    unknown = sorted(set(impls) - set(IMPLS))
    if unknown:
        p.error(f"--impl has unknown names {unknown}; choose from {', '.join(IMPLS)}")
    if args.repeats < 1 or args.steps < 1 or args.warmup < 0:
        p.error("--repeats and --steps must be at least 1 and --warmup at least 0")
    if "baseline" in impls and not args.baseline_python.is_file():
        print(f"note: no baseline interpreter at {args.baseline_python}; skipping the baseline (see this file's docstring).")
        impls.remove("baseline")
    configs = [(impl, n) for impl in impls for n in _ints(args.sparse_slots if impl == "ours-sparse" else args.slots)]

    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {f"{impl}@{n}": [] for impl, n in configs}
    if args.cold_cache:
        cache_context = tempfile.TemporaryDirectory(prefix="bench_dnc_inductor_")
    else:  # the compile cache a user's runs share (mannkit.cell.compile_cache_dir): a warm compile after the first run
        sys.path[:0] = [str(ROOT.parent), str(ROOT.parent / "plugins")]
        from mannkit.cell import compile_cache_dir

        cache = compile_cache_dir() or Path(tempfile.gettempdir()) / "torchinductor_mannkit_bench"
        cache.mkdir(parents=True, exist_ok=True)
        cache_context = contextlib.nullcontext(str(cache))
    with cache_context as inductor_cache:
        for repeat in range(args.repeats):
            for impl, n in configs:
                print(f"repeat {repeat + 1}/{args.repeats}: {impl} N={n} (load {os.getloadavg()[0]:.2f}) ...", file=sys.stderr, flush=True)
                record = run_one(impl, n, args, inductor_cache)
                runs[f"{impl}@{n}"].append(record)
                if record["returncode"] != 0:
                    print(f"  failed: {record['error']}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    summary = {key: summarise(r) for key, r in runs.items()}
    text = table(summary, args.threads)
    notes = checks(summary)
    footer = [
        f"load average (1, 5, 15 min) before: {load_before}, after: {load_after} on {os.cpu_count()} CPUs",
        *notes,
    ]
    print(text)
    print("\n".join(footer))
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    record = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "load_average_before_after": [load_before, load_after],
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "workload": {"batch": 16, "steps": 41, "bits": 8, "hidden": 64, "word": 32, "read_heads": 4, "write_heads": 1},
        "options": {k: str(v) for k, v in vars(args).items()},
        "summary": summary,
        "runs": runs,
        "table": text,
        "checks": notes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"bench_dnc_step_{args.tag + '_' if args.tag else ''}{stamp}"
    (args.out / f"{name}.json").write_text(json.dumps(record, indent=2))
    (args.out / f"{name}.md").write_text(
        f"# DNC training step ({record['date']}, {record['machine']}, {args.threads} thread(s))\n\n"
        f"`{record['command']}`\n\n{text}\n\n" + "\n".join(f"- {line}" for line in footer) + "\n"
    )
    print(f"wrote {args.out / name}.json and .md")


if __name__ == "__main__":
    main()
