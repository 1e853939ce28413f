"""Speed regression check for the dense DNC step: same-run ratios against a yardstick, in about a minute.

    OMP_NUM_THREADS=1 python benchmarks/bench_speed_check.py --short   # about a minute (warm compile cache)
    OMP_NUM_THREADS=1 python benchmarks/bench_speed_check.py           # adds N = 1024 (default settings) and repeats
    OMP_NUM_THREADS=1 python benchmarks/bench_speed_check.py --bandwidth   # the link update against memory bandwidth

Absolute times mean little on a shared machine, so every figure is a ratio of process CPU times
measured in the same run, in fresh interleaved subprocesses (``_dnc_step_worker.py``):

- the yardstick is ``reference-lstm``: a plain ``torch.nn.LSTMCell(9, 64)`` unrolled over the same
  41-step copy batches with Adam. It uses no mannkit code, so ``ours / reference`` moves only when
  mannkit's step does (or torch itself changes), not when the machine is slower or busier;
- where pytorch-dnc's venv exists (see ``bench_dnc_step.py``), ``pytorch-dnc / ours`` at N = 64 is
  printed as well (at N = 64 and 256): the issue's own ratio.

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

#: ours / reference-lstm (process CPU ms per training step), measured 2026-12-03 with
#: ``--short`` (N = 1024: the full mode) on a 2-core AMD EPYC under load 6 with torch 2.13.0
#: (issue 16); the check fails when a ratio grows past ``RECORDED * (1 + tolerance)``.
RECORDED = {
    ("ours-dense", 64): 9.4,  # 11.9 before the C++ addressing and erase/add (9.38 and 8.80 in two runs, 2026-12-04)
    ("ours-dense", 256): 21.0,  # 34.0 before them, 44.0 before the C++ link kernel (22.7 and 19.0 in two runs)
    ("ours-dense-compiled", 64): 6.4,  # the compiled step runs the PyTorch forms: unchanged by the kernels
    ("ours-default", 1024): 300.0,  # 520 before the C++ addressing (249 in one run): memory-bound, it scatters most
}


def _args(ns: argparse.Namespace, steps: int, warmup: int) -> argparse.Namespace:
    """The options bench_dnc_step.run_one reads."""
    return argparse.Namespace(
        steps=steps, warmup=warmup, budget_s=ns.budget_s, threads=1, baseline_hidden_layers=1, clip=20.0,
        checkpoint_every=0, dense_options="{}", sparse_options="{}", baseline_python=ns.baseline_python,
    )  # fmt: skip


def bandwidth(slots: tuple[int, ...] = (64, 256, 1024), batch: int = 16, heads: int = 4) -> None:
    """Bytes the ``[B, N, N]`` link update moves per time step against this machine's measured bandwidth.

    The least traffic a step can cost (each link matrix is kept for the backward pass, so it must
    be written once and read back): forward, read ``L_{t-1}`` and write ``L_t`` (2 link sizes);
    backward, read ``dL_t``, ``L_{t-1}`` and ``L_t`` and write ``dL_{t-1}`` (4). The bound is those
    bytes over the bandwidth of a large ``copy_`` (read + write), timed here in process CPU time
    like the step itself (less disturbed by other processes than wall time). Both forms of the
    link step are timed: the C++ kernel (the default on CPU; its backward recomputes ``L_t`` from
    ``L_{t-1}`` instead of reading it, so it needs only 3 link sizes backward) and the PyTorch form.
    """
    import time

    import torch

    from mannkit_dnc import buffers, fused, link_kernel

    torch.set_num_threads(1)

    def cpu_ms(fn, repeats: int) -> float:
        times = []
        for _ in range(repeats):
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
        return 1000 * statistics.median(times)

    source = torch.rand(64 * 2**20 // 4)
    target = torch.empty_like(source)
    target.copy_(source)
    copy = cpu_ms(lambda: target.copy_(source), 9)
    gbps = 2 * source.numel() * 4 / (copy / 1000) / 1e9
    print(f"copy_ of 64 MiB: {copy:.2f} ms CPU, so {gbps:.1f} GB/s (read + write); load {os.getloadavg()[0]:.1f}\n")
    print("| N | link MiB | link step | forward ms (bound) | x bound | backward ms (bound) | x bound |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n, form in [(n, form) for n in slots for form in ("C++ kernel", "PyTorch")]:
        kernel = link_kernel.ops()
        if form == "PyTorch":
            link_kernel._state["module"] = None  # temporal_step falls back to the PyTorch form
        elif kernel is None:
            continue
        link = (torch.rand(batch, n, n) / n).requires_grad_()
        write = torch.softmax(torch.randn(batch, n), -1).requires_grad_()
        precedence = torch.softmax(torch.randn(batch, n), -1).requires_grad_()
        read = torch.softmax(torch.randn(batch, heads, n), -1).requires_grad_()
        grads = (torch.randn(batch, n, n), torch.randn(batch, n), torch.randn(batch, heads, n), torch.randn(batch, heads, n))
        repeats = 5 if n >= 1024 else 21
        forward = cpu_ms(lambda: fused.temporal_step(link.detach(), write.detach(), precedence.detach(), read.detach()), repeats)
        outputs = fused.temporal_step(link, write, precedence, read)
        d_link = grads[0].clone()

        def backward() -> None:
            buffers._own(d_link)  # as in a sequence: the next step's own buffer, overwritten in place
            torch.autograd.grad(outputs, (link, write, precedence, read), (d_link, *grads[1:]), retain_graph=True)

        back = cpu_ms(backward, repeats)
        size = batch * n * n * 4
        bound_f, bound_b = 2 * size / (gbps * 1e9) * 1000, 4 * size / (gbps * 1e9) * 1000
        link_kernel._state["module"] = kernel
        print(f"| {n} | {size / 2**20:.2f} | {form} | {forward:.2f} ({bound_f:.2f}) | {forward / bound_f:.1f} | {back:.2f} ({bound_b:.2f}) | {back / bound_b:.1f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true", help="N = 64 and 256 only, 2 repeats (about a minute with a warm compile cache)")
    p.add_argument("--repeats", type=int, default=0, help="interleaved repeats (default 2 short, 3 full)")
    p.add_argument("--tolerance", type=float, default=0.3, help="a ratio this much worse than RECORDED is a regression")
    p.add_argument("--budget-s", type=float, default=20.0, help="per subprocess: stop measuring after this many seconds")
    p.add_argument("--baseline-python", type=Path, default=bench.DEFAULT_BASELINE_PYTHON)
    p.add_argument("--bandwidth", action="store_true", help="only the link update's time against the memory-bandwidth bound")
    ns = p.parse_args(argv)
    if ns.bandwidth:
        bandwidth()
        return 0
    repeats = ns.repeats or (2 if ns.short else 3)
    from mannkit.cell import compile_cache_dir

    cache = compile_cache_dir()
    cache_dir = str(cache) if cache is not None else os.path.join(os.path.expanduser("~"), ".cache", "mannkit", "torchinductor")
    os.makedirs(cache_dir, exist_ok=True)
    configs = [("reference-lstm", 64), ("ours-dense", 64), ("ours-dense", 256)]
    if ns.baseline_python.is_file():
        configs += [("baseline", 64), ("baseline", 256)]
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
