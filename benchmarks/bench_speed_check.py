"""Speed regression check for the dense DNC step: same-run ratios against a yardstick, in about a minute.

    OMP_NUM_THREADS=1 python benchmarks/bench_speed_check.py --short   # about a minute (warm compile cache)
    OMP_NUM_THREADS=1 python benchmarks/bench_speed_check.py           # adds N = 1024 (default settings) and repeats

Absolute times mean little on a shared machine, so every figure is a ratio of process CPU times
measured in the same run, in fresh interleaved subprocesses (``_dnc_step_worker.py``):

- the yardstick is ``reference-lstm``: a plain ``torch.nn.LSTMCell(9, 64)`` unrolled over the same
  41-step copy batches with Adam. It uses no mannkit code, so ``ours / reference`` moves only when
  mannkit's step does (or torch itself changes), not when the machine is slower or busier;
- where pytorch-dnc's venv exists (see ``bench_dnc_step.py``), ``pytorch-dnc / ours`` at N = 64 is
  printed as well: the issue's own ratio.

Each ``ours`` figure is compared with the ratio recorded when the speed work of issue 16 was
measured (``RECORDED`` below); a ratio more than ``--tolerance`` (default 30 %) worse is reported
as a regression and the exit status is 1. Measurements of a loaded machine scatter by 10-20 %:
rerun once before hunting a regression. CI runs no timing; run this before and after touching
the cell, the DNC memory or its fused functions, and update ``RECORDED`` (with the RESULTS.md
table) when a change makes the step faster.

The compiled configuration uses the persistent compile cache (``mannkit.cell.compile_cache_dir``):
the first run on a machine compiles cold (about two minutes on a loaded 2-core machine), later
runs load the cache (about ten seconds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT.parent), str(ROOT.parent / "plugins")]

import bench_dnc_step as bench  # noqa: E402

#: ours / reference-lstm (process CPU ms per training step), measured 2026-12-03 on a 2-core AMD EPYC
#: under load 4-6 with torch 2.13.0 (issue 16); the check fails when a ratio grows past
#: ``RECORDED * (1 + tolerance)``.
RECORDED = {
    ("ours-dense", 64): 8.5,
    ("ours-dense", 256): 26.0,
    ("ours-dense-compiled", 64): 3.4,
    ("ours-default", 1024): 420.0,
}


def _args(ns: argparse.Namespace, steps: int, warmup: int) -> argparse.Namespace:
    """The options bench_dnc_step.run_one reads."""
    return argparse.Namespace(
        steps=steps, warmup=warmup, budget_s=ns.budget_s, threads=1, baseline_hidden_layers=1, clip=20.0,
        checkpoint_every=0, dense_options="{}", sparse_options="{}", baseline_python=ns.baseline_python,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true", help="N = 64 and 256 only, 2 repeats (about a minute with a warm compile cache)")
    p.add_argument("--repeats", type=int, default=0, help="interleaved repeats (default 2 short, 3 full)")
    p.add_argument("--tolerance", type=float, default=0.3, help="a ratio this much worse than RECORDED is a regression")
    p.add_argument("--budget-s", type=float, default=20.0, help="per subprocess: stop measuring after this many seconds")
    p.add_argument("--baseline-python", type=Path, default=bench.DEFAULT_BASELINE_PYTHON)
    ns = p.parse_args(argv)
    repeats = ns.repeats or (2 if ns.short else 3)
    from mannkit.cell import compile_cache_dir

    cache = compile_cache_dir()
    cache_dir = str(cache) if cache is not None else os.path.join(os.path.expanduser("~"), ".cache", "mannkit", "torchinductor")
    os.makedirs(cache_dir, exist_ok=True)
    configs = [("reference-lstm", 64), ("ours-dense", 64), ("ours-dense", 256)]
    if ns.baseline_python.is_file():
        configs.append(("baseline", 64))
    else:
        print(f"note: no pytorch-dnc venv at {ns.baseline_python}; ratios against the plain-LSTM reference only")
    once = [("ours-dense-compiled", 64)]  # the compile (cached) is the slow part: one repeat
    if not ns.short:
        once.append(("ours-default", 1024))
    runs: dict[tuple[str, int], list[dict]] = {}
    load = [os.getloadavg()[0]]
    for repeat in range(repeats):
        for impl, slots in configs + (once if repeat == 0 else []):
            print(f"repeat {repeat + 1}/{repeats}: {impl} N={slots} (load {os.getloadavg()[0]:.2f}) ...", file=sys.stderr, flush=True)
            steps, warmup = (2, 1) if slots >= 1024 else (4, 1)
            record = bench.run_one(impl, slots, _args(ns, steps, warmup), cache_dir)
            if record["returncode"] != 0:
                print(f"  failed: {record['error']}", file=sys.stderr)
            runs.setdefault((impl, slots), []).append(record)
            load.append(os.getloadavg()[0])
    cpu = {key: statistics.median([t for r in rs if r["returncode"] == 0 for t in r["cpu_ms"]] or [float("nan")]) for key, rs in runs.items()}
    reference = cpu[("reference-lstm", 64)]
    print(f"\nload average (1 min) over the run: {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} CPUs; reference-lstm step {reference:.1f} ms CPU\n")
    print("| config | N | CPU ms/step | ours / reference | recorded | verdict | pytorch-dnc / ours |")
    print("|---|---:|---:|---:|---:|---|---:|")
    regressions = []
    for (impl, slots), ms in cpu.items():
        if impl in ("reference-lstm", "baseline"):
            continue
        ratio = ms / reference
        recorded = RECORDED.get((impl, slots))
        verdict = ""
        if recorded is not None and ratio == ratio:  # noqa: PLR0124  (not NaN)
            worse = ratio / recorded - 1
            verdict = f"REGRESSION ({worse:+.0%})" if worse > ns.tolerance else f"ok ({worse:+.0%})"
            if worse > ns.tolerance:
                regressions.append(f"{impl} N={slots}")
        base = cpu.get(("baseline", slots))
        versus = f"{base / ms:.2f}x" if base else ""
        first = runs[(impl, slots)][0]
        note = f" (first step {first['first_step_ms'] / 1000:.1f} s)" if impl == "ours-dense-compiled" and first["returncode"] == 0 else ""
        print(f"| {impl}{note} | {slots} | {ms:.1f} | {ratio:.2f} | {recorded if recorded else ''} | {verdict} | {versus} |")
    if regressions:
        print(f"\nslower than recorded by more than {ns.tolerance:.0%}: {', '.join(regressions)}; rerun once (load scatters), then bisect.")
        return 1
    print("\nno regression against the recorded ratios.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
