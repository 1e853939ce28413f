"""What a training step costs through ``mannkit fit``, and how much of it is logging.

Runs ``mannkit fit`` of each preset in this process for ``--steps`` steps (no validation, no
checkpoints, the progress bar drawn to a null stream) and times the steps after ``--warmup`` with a
callback. Each preset runs twice per repeat:

- ``every step``: ``--trainer.log_every_n_steps 1``, so every value a step logs goes through
  ``self.log`` at every step (what every step cost before training-step values that only the
  logger reads were logged on its steps alone);
- ``preset``: the preset's own ``log_every_n_steps`` (25 or 100): those values go through
  ``self.log`` on the logger's steps only; the progress bar's (``train/loss`` and the task's
  headline figure) at every step.

The two alternate in order within a repeat; the table gives the median milliseconds per step over
the repeats and their ratio (the same machine, the same minute). ``every step`` also has the
logger write every step, which the old code did not; to compare with an older mannkit instead, run
``--preset-only`` alternately under each version (``PYTHONPATH`` pointing at each tree).

    OMP_NUM_THREADS=1 python benchmarks/bench_fit_step.py --configs configs/ntm/copy.yaml \\
        configs/act/addition_cpu.yaml configs/act/addition_cpu_no_act.yaml --steps 300 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so the CLI finds bench_fit_step.StepTimer

TIMES: list[float] = []


class StepTimer(Callback):
    """Milliseconds per training step from step ``warmup`` to the end of fit, appended to ``TIMES``."""

    def __init__(self, warmup: int = 20) -> None:
        self.warmup, self.start = warmup, 0.0

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        TIMES.append((time.perf_counter() - self.start) * 1e3 / max(1, trainer.global_step - self.warmup))


def step_ms(config: str, steps: int, warmup: int, log_every: int | None) -> float:
    """One ``mannkit fit`` of ``config``; milliseconds per step after the warm-up."""
    from mannkit.cli import main

    with tempfile.TemporaryDirectory() as root:
        argv = [
            "fit", "--config", config, "--trainer.default_root_dir", root, "--trainer.max_steps", str(steps),
            "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
            "--trainer.enable_checkpointing", "false", "--trainer.callbacks", "[]",
            "--trainer.callbacks+=bench_fit_step.StepTimer", "--trainer.callbacks.warmup", str(warmup),
            *(["--trainer.log_every_n_steps", str(log_every)] if log_every else []),
        ]
        quiet = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
        levels = [q.level for q in quiet]
        try:
            for q in quiet:
                q.setLevel(logging.WARNING)
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                main(argv)
        finally:
            for q, level in zip(quiet, levels):
                q.setLevel(level)
    import bench_fit_step  # the module the CLI built the callback from (this file runs as __main__)

    return bench_fit_step.TIMES[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["configs/ntm/copy.yaml", "configs/act/addition_cpu.yaml"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="append one JSON line per preset here")
    parser.add_argument("--preset-only", action="store_true",
                        help="time the preset's own logging only (to compare two versions of mannkit, one process each)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"{args.steps} steps ({args.warmup} warm-up), {args.repeats} repeats, median ms per step")
    print("| preset | every step: ms | preset's log_every_n_steps: ms | ratio |")
    print("|---|---:|---:|---:|")
    for config in args.configs:
        every, preset = [], []
        for repeat in range(args.repeats):
            order = [(every, 1), (preset, None)] if repeat % 2 == 0 else [(preset, None), (every, 1)]
            for bucket, log_every in order:
                if log_every is None or not args.preset_only:
                    bucket.append(step_ms(config, args.steps, args.warmup, log_every))
        a, b = statistics.median(every) if every else math.nan, statistics.median(preset)
        print(f"| `{config}` | {a:.2f} | {b:.2f} | {b / a:.2f} |", flush=True)
        if args.out:
            with args.out.open("a") as handle:
                handle.write(json.dumps({"config": config, "every_step_ms": every, "preset_ms": preset}) + "\n")


if __name__ == "__main__":
    main()
