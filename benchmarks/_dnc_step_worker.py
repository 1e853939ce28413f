"""One DNC training-step measurement in this process: the worker of ``bench_dnc_step.py``.

Runs under either interpreter: the project's (``ours-*``, imports mannkit lazily) or the
baseline venv's (``baseline``, imports only torch and pytorch-dnc's ``dnc`` package), so this
file imports nothing but the standard library at module level. Prints one JSON line.

    OMP_NUM_THREADS=1 benchmarks/out/dnc-venv/bin/python benchmarks/_dnc_step_worker.py \\
        --impl baseline --slots 64 --steps 5 --warmup 2

The workload: copy length 20, so 41 steps (20 input vectors, a delimiter, 20 blank steps);
batch 16; 8 bits (+1 delimiter channel); LSTM controller 64 (one layer); word size 32; 4 read
heads and 1 write head; BCE on the 20 output steps; one Adam step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository root
IMPLS = ("ours-dense", "ours-dense-compiled", "ours-default", "ours-sparse", "baseline", "reference-lstm")

# the workload
BATCH, LENGTH, BITS = 16, 20, 8
HIDDEN, WORD, READ_HEADS = 64, 32, 4
STEPS_IN, STEPS_OUT = LENGTH + 1, LENGTH  # bits + delimiter, then 20 blank steps


def copy_batch(generator) -> tuple:  # noqa: ANN001
    """Input ``[B, 41, 9]`` (bits, delimiter, zeros) and target ``[B, 20, 8]``."""
    import torch

    bits = torch.randint(0, 2, (BATCH, LENGTH, BITS), generator=generator).float()
    x = torch.zeros(BATCH, STEPS_IN + STEPS_OUT, BITS + 1)
    x[:, :LENGTH, :BITS] = bits
    x[:, LENGTH, BITS] = 1.0  # delimiter channel
    return x, bits


def rss_mib() -> float:
    """Current resident set size of this process, MiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _ours_step_fn(args: argparse.Namespace):  # noqa: ANN202
    """mannkit: MemoryCell(LSTMController(64), DNCMemory or SparseDNCMemory, [DNCWriteHead(), DNCReadHead(count=4)])."""
    import inspect

    import torch
    import torch.nn.functional as F

    for path in (ROOT, ROOT / "plugins"):  # works from a checkout without an install too
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import mannkit_dnc
    from mannkit.cell import MemoryCell
    from mannkit.nn import LSTMController

    memory_options = json.loads(args.memory_options)
    if args.impl == "ours-sparse":
        if not hasattr(mannkit_dnc, "SparseDNCMemory"):  # not yet re-exported by the package
            import mannkit_dnc.sparse
        memory = getattr(mannkit_dnc, "SparseDNCMemory", None) or mannkit_dnc.sparse.SparseDNCMemory
        memory = memory(slots=args.slots, word_size=WORD, **memory_options)
    else:
        memory = mannkit_dnc.DNCMemory(slots=args.slots, word_size=WORD, **memory_options)
    heads = [mannkit_dnc.DNCWriteHead(), mannkit_dnc.DNCReadHead(count=READ_HEADS)]
    cell_options: dict = {"clip": args.clip}
    if args.impl != "ours-default":  # ours-default: MemoryCell's own defaults (compile and checkpoint_every auto)
        cell_options["compile"] = args.impl.endswith("-compiled")
        if "checkpoint_every" in inspect.signature(MemoryCell).parameters:
            cell_options["checkpoint_every"] = None
    if args.checkpoint_every:
        if "checkpoint_every" not in inspect.signature(MemoryCell).parameters:
            raise SystemExit("--checkpoint-every: this MemoryCell has no checkpoint_every argument yet; leave it out.")
        cell_options["checkpoint_every"] = args.checkpoint_every
    cell = MemoryCell(LSTMController(HIDDEN), memory, heads, **cell_options)
    cell.bind(BITS + 1, BITS)
    optimizer = torch.optim.Adam(cell.parameters())

    def step(x, target):  # noqa: ANN001, ANN202
        optimizer.zero_grad()
        logits = cell(x).logits[:, STEPS_IN:]  # the 20 output steps, [B, 20, 8]
        loss = F.binary_cross_entropy_with_logits(logits, target)
        loss.backward()
        optimizer.step()
        return loss.item()

    extra = {"cell_options": cell_options, "memory_options": memory_options}
    if hasattr(cell, "checkpoint_interval"):
        extra["checkpoint_interval"] = cell.checkpoint_interval(BATCH, STEPS_IN + STEPS_OUT, torch.float32)
    step.cell = cell  # for the warm-up of ours-default (see measure)
    return step, extra


def _reference_step_fn(args: argparse.Namespace):  # noqa: ANN202, ARG001
    """A fixed plain-LSTM step on the same batches (torch only, no mannkit): the yardstick of a speed check.

    ``nn.LSTMCell(9, 64)`` unrolled over the 41 steps, a linear read-out, BCE on the 20 output
    steps, one Adam step. Its cost depends only on torch and the machine, so ``ours / reference``
    from the same run moves only when mannkit's own step does.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    lstm, out = nn.LSTMCell(BITS + 1, HIDDEN), nn.Linear(HIDDEN, BITS)
    optimizer = torch.optim.Adam([*lstm.parameters(), *out.parameters()])

    def step(x, target):  # noqa: ANN001, ANN202
        optimizer.zero_grad()
        h = c = x.new_zeros(BATCH, HIDDEN)
        outputs = []
        for t in range(x.shape[1]):
            h, c = lstm(x[:, t], (h, c))
            outputs.append(out(h))
        logits = torch.stack(outputs, 1)[:, STEPS_IN:]
        loss = F.binary_cross_entropy_with_logits(logits, target)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, {}


def _baseline_step_fn(args: argparse.Namespace):  # noqa: ANN202
    """pytorch-dnc (``dnc==1.1.0``): ``DNC`` with a one-layer LSTM 64, N x 32 memory, 4 read heads, on CPU."""
    import torch
    import torch.nn.functional as F
    from dnc import DNC  # type: ignore[import-not-found]

    net = DNC(
        input_size=BITS + 1,  # its output layer maps back to input_size: 9 logits, the first 8 are scored
        hidden_size=HIDDEN,
        rnn_type="lstm",
        num_layers=1,  # DNC layers (controller + memory); the LSTM depth inside is num_hidden_layers
        num_hidden_layers=args.baseline_hidden_layers,
        nr_cells=args.slots,
        cell_size=WORD,
        read_heads=READ_HEADS,
        batch_first=True,
        gpu_id=-1,
    )
    optimizer = torch.optim.Adam(net.parameters())

    def step(x, target):  # noqa: ANN001, ANN202
        optimizer.zero_grad()
        # hx (None, None, None): a fresh controller state, empty memory, zero reads for every batch,
        # as its copy task does with reset_experience=True
        output, _ = net(x, (None, None, None), reset_experience=True)  # [B, 41, 9]
        logits = output[:, STEPS_IN:, :BITS]  # [B, 20, 8]
        loss = F.binary_cross_entropy_with_logits(logits, target)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, {"num_hidden_layers": args.baseline_hidden_layers, "dnc_version": _dist_version("dnc")}


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _graphs_compiled() -> int | None:
    """Frames Dynamo has compiled so far in this process (None if Dynamo was never imported)."""
    if "torch._dynamo" not in sys.modules:
        return None
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def measure(args: argparse.Namespace) -> dict:
    """Build the implementation, run ``warmup + steps`` training steps (or fewer, see ``budget_s``)."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    rss_start = rss_mib()
    make = {"baseline": _baseline_step_fn, "reference-lstm": _reference_step_fn}.get(args.impl, _ours_step_fn)
    build, extra = make(args)
    rss_before = rss_mib()
    wall, cpu, faults, losses = [], [], [], []
    graphs_after_warmup = None
    warmup = args.warmup
    cell = getattr(build, "cell", None)
    if args.impl == "ours-default" and cell is not None and getattr(cell, "_compile_pays", False):
        # compile: auto compiles once the eager training forwards have taken AUTO_COMPILE_AFTER_S:
        # warm up through the eager steps, the compiling step and args.warmup steps after it
        from mannkit import cell as cell_module

        x, target = copy_batch(generator)
        eager_steps, w0 = 0, time.perf_counter()
        while cell._eager_seconds < cell_module.AUTO_COMPILE_AFTER_S and eager_steps < 10_000:
            build(x, target)
            eager_steps += 1
        extra["auto_compile_eager_steps"] = eager_steps
        extra["auto_compile_eager_s"] = time.perf_counter() - w0
        c0, w0 = time.process_time(), time.perf_counter()
        build(x, target)  # the step that compiles
        extra["auto_compile_step_ms"] = 1000 * (time.perf_counter() - w0)
        extra["auto_compile_step_cpu_ms"] = 1000 * (time.process_time() - c0)
        extra["auto_compiled"] = "_compiled_step" in cell.__dict__ and not cell._compile_failed
    started = time.perf_counter()
    for i in range(warmup + args.steps):
        if i == warmup:
            graphs_after_warmup = _graphs_compiled()
        x, target = copy_batch(generator)
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        w0, c0 = time.perf_counter(), time.process_time()
        losses.append(build(x, target))
        wall.append(1000 * (time.perf_counter() - w0))
        cpu.append(1000 * (time.process_time() - c0))
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)  # pages first touched (fresh buffers)
        measured = i + 1 - warmup
        if args.budget_s and measured >= 1 and time.perf_counter() - started > args.budget_s:
            break  # a slow configuration: stop after at least one measured step
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB
    return {
        "impl": args.impl,
        "slots": args.slots,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "warmup": warmup,
        "first_step_ms": wall[0],
        "first_step_cpu_ms": cpu[0],
        "wall_ms": wall[warmup:],
        "cpu_ms": cpu[warmup:],
        "minor_faults": faults[warmup:],
        "peak_rss_mib": peak,
        "rss_at_start_mib": rss_start,
        "rss_before_steps_mib": rss_before,
        "rss_growth_mib": peak - rss_before,
        "graphs_compiled": _graphs_compiled(),
        "graphs_after_warmup": graphs_after_warmup,
        "losses": losses,
        "losses_finite": all(l == l and abs(l) != float("inf") for l in losses),  # noqa: PLR0124
        "options": extra,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="One DNC training-step measurement (the worker of bench_dnc_step.py).")
    p.add_argument("--impl", choices=IMPLS, required=True)
    p.add_argument("--slots", type=int, required=True, help="memory slots N")
    p.add_argument("--steps", type=int, default=5, help="measured steps after the warm-up")
    p.add_argument("--warmup", type=int, default=2, help="steps run before measuring")
    p.add_argument("--budget-s", type=float, default=0.0, help="stop measuring once this many seconds have passed (0: never)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clip", type=float, default=20.0, help="ours: MemoryCell clip of the raw head parameters")
    p.add_argument("--checkpoint-every", type=int, default=0, help="ours: MemoryCell(checkpoint_every=K); 0 leaves it out")
    p.add_argument("--memory-options", default="{}", help="ours: extra DNCMemory/SparseDNCMemory arguments as JSON")
    p.add_argument("--baseline-hidden-layers", type=int, default=1, help="baseline: LSTM layers inside its controller")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    print(json.dumps(measure(args)))


if __name__ == "__main__":
    main()
