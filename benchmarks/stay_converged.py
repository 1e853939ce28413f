"""Do converged models stay converged? Train a preset past its convergence point and watch validation.

Runs ``mannkit fit --config PRESET --seed_everything S`` (the command a user runs) for each seed, with
one extra callback, :class:`StayConverged`, which

- marks the **convergence step**: the first validation whose headline metric (``val/bits_per_seq``
  for the copy presets) is below ``--threshold`` (1 bit per sequence);
- keeps training until the global step reaches ``--multiple`` (3) times the convergence step, then
  stops the run (or until the preset's ``max_steps``, raised by ``--max-steps``);
- records every validation after convergence: the worst (maximum) value, the last value, and how many
  validations were above ``--collapse`` (5 bits: a collapse back towards chance is 19-68 bits).

One JSON line per seed goes to ``--out`` (default ``benchmarks/out/stay_converged_<preset>.jsonl``);
the summary prints how many seeds converged and how many of those stayed converged to 3x.

    OMP_NUM_THREADS=1 python benchmarks/stay_converged.py --config configs/dnc/copy.yaml \\
        --seeds 1 2 3 4 5 --jobs 2 --max-steps 12000
    OMP_NUM_THREADS=1 python benchmarks/stay_converged.py --config configs/ntm/copy_batch2.yaml \\
        --seeds 1 2 3 4 5 --jobs 2 --max-steps 30000
    OMP_NUM_THREADS=1 python benchmarks/stay_converged.py --config configs/ntm/copy_curriculum.yaml \\
        --level max_length=20 --seeds 1 2 3 4 5 --max-steps 40000   # converged = below 1 bit at length 20

Each run writes its TensorBoard logs and checkpoints under ``benchmarks/out/stay_converged/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

ROOT = Path(__file__).resolve().parent


class StayConverged(Callback):
    """Stops at ``multiple`` x the first step whose validation ``metric`` is below ``threshold``; writes a JSON line."""

    def __init__(
        self, out: str, seed: int = 0, metric: str = "val/bits_per_seq", threshold: float = 1.0,
        multiple: float = 3.0, collapse: float = 5.0, preset: str = "", level: str = "",
    ) -> None:
        self.out, self.seed, self.metric, self.threshold = out, seed, metric, threshold
        self.multiple, self.collapse, self.preset = multiple, collapse, preset
        # "max_length=20": a validation counts towards convergence only when the task's attribute was at
        # least that value while it ran (a curriculum raises the level in the same hook, before this one)
        self.level_attribute, _, value = level.partition("=")
        self.level_value = float(value) if value else 0.0
        self.level_seen: float | None = None
        self.converged_at: int | None = None
        self.curve: list[tuple[int, float]] = []
        self.started = time.time()

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if self.level_attribute:
            self.level_seen = float(getattr(trainer.datamodule, self.level_attribute))

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or self.metric not in trainer.callback_metrics:
            return
        step, value = trainer.global_step, float(trainer.callback_metrics[self.metric])
        self.curve.append((step, value) if not self.level_attribute else (step, value, self.level_seen))
        at_level = not self.level_attribute or (self.level_seen or 0.0) >= self.level_value
        if self.converged_at is None and value < self.threshold and at_level:
            self.converged_at = step
        if self.converged_at is not None and step >= self.multiple * self.converged_at:
            trainer.should_stop = True

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        after = [p[1] for p in self.curve if self.converged_at is not None and p[0] > self.converged_at]
        clips = [c.clipped for c in trainer.callbacks if type(c).__name__ == "SpikeClip"]
        reached = self.converged_at is not None and trainer.global_step >= self.multiple * self.converged_at
        record = {
            "preset": self.preset, "seed": self.seed, "converged_at": self.converged_at,
            "steps": trainer.global_step, "reached_multiple": reached, "multiple": self.multiple,
            "worst_after": max(after) if after else None, "last": self.curve[-1][1] if self.curve else None,
            "collapses": sum(v > self.collapse for v in after), "validations_after": len(after),
            "stayed": bool(after) and reached and max(after) <= self.collapse,
            "spike_clips": clips[0] if clips else None, "curve": self.curve, "wall_s": round(time.time() - self.started, 1),
        }
        with open(self.out, "a") as fh:
            fh.write(json.dumps(record) + "\n")


def run_seed(args: argparse.Namespace, seed: int, out: Path) -> int:
    name = Path(args.config).stem
    root = ROOT / "out" / "stay_converged" / f"{Path(args.config).parent.name}_{name}" / f"seed{seed}"
    command = [
        str(Path(sys.executable).parent / "mannkit"), "fit", "--config", args.config, "--seed_everything", str(seed),
        "--trainer.max_steps", str(args.max_steps), "--trainer.default_root_dir", str(root),
        "--trainer.enable_progress_bar", "false",
        "--trainer.callbacks+=stay_converged.StayConverged", "--trainer.callbacks.out", str(out),
        "--trainer.callbacks.seed", str(seed), "--trainer.callbacks.threshold", str(args.threshold),
        "--trainer.callbacks.multiple", str(args.multiple), "--trainer.callbacks.collapse", str(args.collapse),
        "--trainer.callbacks.preset", args.config,
        *(["--trainer.callbacks.level", args.level] if args.level else []), *args.extra,
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "fit.log", "w") as log:
        return subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode


def summarise(out: Path, config: str) -> None:
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    records = [r for r in records if r["preset"] == config]
    for r in records:
        worst = "-" if r["worst_after"] is None else f"{r['worst_after']:.3g}"
        print(f"seed {r['seed']}: converged at {r['converged_at']}, trained {r['steps']} steps "
              f"({'reached' if r['reached_multiple'] else 'did NOT reach'} {r['multiple']}x), worst after {worst}, "
              f"last {r['last']:.3g}, validations above collapse bound {r['collapses']}/{r['validations_after']}")
    converged = [r for r in records if r["converged_at"] is not None]
    print(f"{config}: {len(converged)}/{len(records)} converged; {sum(r['stayed'] for r in converged)} stayed converged to "
          f"{records[0]['multiple'] if records else '?'}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one torch thread each)")
    parser.add_argument("--max-steps", type=int, default=20000, help="upper bound on each run's steps")
    parser.add_argument("--threshold", type=float, default=1.0, help="converged below this validation value")
    parser.add_argument("--multiple", type=float, default=3.0, help="train to this multiple of the convergence step")
    parser.add_argument("--collapse", type=float, default=5.0, help="a validation above this after convergence is a collapse")
    parser.add_argument("--level", default="", help="ATTR=VALUE: count only validations run with the task's ATTR >= VALUE "
                        "(a curriculum preset: max_length=20)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("extra", nargs="*", help="further `mannkit fit` arguments (after --)")
    args = parser.parse_args()
    out = args.out or ROOT / "out" / f"stay_converged_{Path(args.config).parent.name}_{Path(args.config).stem}.jsonl"
    if not args.summary_only:
        out.parent.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            codes = list(pool.map(lambda s: run_seed(args, s, out), args.seeds))
        if any(codes):
            print(f"exit codes by seed: {dict(zip(args.seeds, codes))}", file=sys.stderr)
    summarise(out, args.config)


if __name__ == "__main__":
    main()
