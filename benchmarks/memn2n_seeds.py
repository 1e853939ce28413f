"""The MemN2N paper's protocol through the preset: train seeds 0-9 with ``mannkit fit``, test each with ``mannkit test``, pick one.

Sukhbaatar et al. (2015, sec. 4.2) repeat each training 10 times from different random initialisations
and report the run with the lowest *training* error (12.4% mean test error for "PE LS RN joint" on the 1k
set). This script runs that protocol exactly as a user would, one seed after another (or ``--jobs`` at
once, one thread each):

    mannkit fit  --config CONFIG --data.init_args.data_dir DATA --seed_everything S --trainer.default_root_dir OUT/seedS
    mannkit test --config CONFIG --data.init_args.data_dir DATA --trainer.default_root_dir OUT/seedS --ckpt_path .../last.ckpt

then reads the test table ``mannkit test`` wrote (``qa_results.csv``), measures the same final weights' error on the
training and validation splits (per task, averaged over tasks, as the benchmark does), and prints one row
per seed, the mean and spread over seeds, and the run the selection rule picks (``--select train``, the
paper's, or ``--select val``) with its per-task test errors. The final weights (``last.ckpt``) are tested, as
the paper and ``benchmarks/run_memn2n_babi.py`` do. With the preset as it is, seed S trains the same weights
as ``run_memn2n_babi.py --seed S`` (tests/plugins/memn2n/test_memn2n_preset_matches_benchmark.py).

    OMP_NUM_THREADS=1 python benchmarks/memn2n_seeds.py --data-dir PATH/tasks_1-20_v1-2/en            # seeds 0-9
    OMP_NUM_THREADS=1 python benchmarks/memn2n_seeds.py --data-dir PATH/en --jobs 2 --seeds 0-4
    OMP_NUM_THREADS=1 python benchmarks/memn2n_seeds.py --data-dir PATH/en --seeds 0 --out /tmp/smoke -- --trainer.max_epochs 2

Arguments after ``--`` go to ``mannkit fit`` (not to ``mannkit test``). A seed whose ``result.json`` exists
in its folder is not run again, so an interrupted protocol continues where it stopped; ``--summary-only``
prints the table of what is there. Writes ``OUT/seedS/result.json`` per seed and ``OUT/summary.json`` and
``OUT/summary.md``.

Time: one seed of the 1k joint preset is one full training, 90 epochs (30 linear ones, then 60). With
``--jobs 2`` on this 2-core machine each epoch took 7.4-12 s (``s/epoch`` in the table, for every seed), so
a seed took 11-18 minutes and ten seeds about 75 minutes (2026-12-03).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "memn2n" / "babi_1k_joint.yaml"
OUT = Path(__file__).resolve().parent / "out" / "memn2n_seeds"
FAILED = 5.0  # percent: a task above it fails (the paper's threshold)


def parse_seeds(text: str) -> list[int]:
    """``0-9``, ``3`` or ``0,2,5-7`` -> the seeds, in order.

    >>> parse_seeds("0-2,5")
    [0, 1, 2, 5]
    """
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        seeds += list(range(int(low), int(high) + 1)) if high else [int(low)]
    return seeds


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="the bAbI en folder (1k) of tasks_1-20_v1-2")
    p.add_argument("--config", type=Path, default=PRESET, help="the preset (default configs/memn2n/babi_1k_joint.yaml)")
    p.add_argument("--seeds", default="0-9", help="seeds to run: 0-9, or e.g. 0,3,5-7")
    p.add_argument("--jobs", type=int, default=1, help="seeds trained at once (one thread each)")
    p.add_argument("--select", choices=("train", "val"), default="train",
                   help="the selection rule: lowest mean training error (the paper) or lowest mean validation error")
    p.add_argument("--out", type=Path, default=OUT, help="one folder per seed, and the summary, under here")
    p.add_argument("--summary-only", action="store_true", help="run nothing; print the table of the seeds already done")
    args = p.parse_args(argv)
    args.seeds = parse_seeds(args.seeds)
    if args.jobs < 1:
        p.error("--jobs must be 1 or more")
    return args, extra


def _mannkit() -> list[str]:
    found = shutil.which("mannkit", path=str(Path(sys.executable).parent)) or shutil.which("mannkit")
    return [found] if found else [sys.executable, "-c", "from mannkit.cli import main; main()"]


def _run(command: list[str], log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with log.open("w") as handle:
        handle.write(" ".join(command) + "\n")
        handle.flush()
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    if code != 0:
        raise RuntimeError(f"{command[1] if len(command) > 1 else command[0]} failed with exit status {code}; see {log}")


def _newest(folder: Path, name: str) -> Path:
    found = sorted(folder.rglob(name), key=lambda p: p.stat().st_mtime)
    if not found:
        raise RuntimeError(f"no {name} under {folder}")
    return found[-1]


def read_test_table(path: Path) -> dict[int, float]:
    """task -> test error (%) from the ``qa_results.csv`` that ``mannkit test`` wrote (its ``mean`` row left out)."""
    with path.open() as handle:
        return {int(row["task"]): float(row["error_percent"]) for row in csv.DictReader(handle) if row["task"] != "mean"}


def split_errors(checkpoint: Path, config: Path, data_dir: str, splits: tuple[str, ...] = ("train", "val")) -> dict[str, dict[int, float]]:
    """The checkpoint's per-task error (%) on ``splits`` of the config's data (the benchmark's ``evaluate``)."""
    import torch
    import yaml

    from mannkit.core.registry import load_plugins
    from mannkit.systems.qa import QASystem
    from mannkit.tasks import BabiDataModule

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run_memn2n_babi import evaluate

    load_plugins()
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    hparams = {k: v for k, v in saved["hyper_parameters"].items() if not k.startswith("_")}
    system = QASystem(**hparams)
    system.load_state_dict(saved["state_dict"])
    settings = dict((yaml.safe_load(config.read_text()).get("data") or {}).get("init_args") or {})
    settings.update(data_dir=data_dir)
    settings.pop("num_workers", None)
    data = BabiDataModule(**settings)
    data.setup("test" if "test" in splits else "fit")
    return {name: evaluate(system.model, data.split(name))["per_task"] for name in splits}


def _schedule_state(checkpoint: Path) -> dict:
    import torch

    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = next((s for k, s in (saved.get("callbacks") or {}).items() if "LinearStart" in k), {})
    main_from = state.get("main_from_epoch")
    return {"epochs": int(saved["epoch"]) + 1, "linear_epochs": main_from if main_from is not None else int(saved["epoch"]) + 1,
            "linear_start_ended": not state.get("active", True)}


def run_seed(seed: int, args: argparse.Namespace, extra: list[str]) -> dict:
    """Train, test and measure one seed (or read its result.json if it is there)."""
    folder = args.out / f"seed{seed}"
    done = folder / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    common = ["--config", str(args.config), "--data.init_args.data_dir", str(args.data_dir),
              "--trainer.default_root_dir", str(folder), "--trainer.enable_progress_bar", "false"]
    started = time.perf_counter()
    _run([*_mannkit(), "fit", *common, "--seed_everything", str(seed), *extra], folder / "fit.log")
    fit_seconds = time.perf_counter() - started
    checkpoint = _newest(folder, "last.ckpt")
    _run([*_mannkit(), "test", *common, "--ckpt_path", str(checkpoint)], folder / "test.log")
    test = read_test_table(_newest(folder, "qa_results.csv"))
    errors = split_errors(checkpoint, args.config, str(args.data_dir))
    schedule = _schedule_state(checkpoint)
    result = {
        "seed": seed,
        "checkpoint": str(checkpoint),
        **schedule,
        "fit_seconds": round(fit_seconds, 1),
        "seconds_per_epoch": round(fit_seconds / max(schedule["epochs"], 1), 2),
        "test_error_percent": test,
        "mean_test_error_percent": statistics.fmean(test.values()),
        "failed_tasks": sum(e > FAILED for e in test.values()),
        "train_error_percent": errors["train"],
        "mean_train_error_percent": statistics.fmean(errors["train"].values()),
        "val_error_percent": errors["val"],
        "mean_val_error_percent": statistics.fmean(errors["val"].values()),
        "fit_arguments": extra,
    }
    done.write_text(json.dumps(result, indent=1) + "\n")
    return result


def summarise(results: list[dict], select: str) -> tuple[str, dict]:
    """The markdown table of the seeds, the spread of their test error and the selected run's per-task errors."""
    key = {"train": "mean_train_error_percent", "val": "mean_val_error_percent"}[select]
    lines = ["| seed | epochs (linear) | s/epoch | train error (%) | val error (%) | test error (%) | failed tasks |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['seed']} | {r['epochs']} ({r['linear_epochs']}) | {r['seconds_per_epoch']:.1f} | "
                     f"{r['mean_train_error_percent']:.1f} | {r['mean_val_error_percent']:.1f} | "
                     f"{r['mean_test_error_percent']:.1f} | {r['failed_tasks']} |")
    tests = [r["mean_test_error_percent"] for r in results]
    chosen = min(results, key=lambda r: r[key])
    spread = statistics.stdev(tests) if len(tests) > 1 else math.nan
    lines += ["", f"{len(results)} seeds: mean test error {statistics.fmean(tests):.1f}% (sd {spread:.1f}), "
                  f"lowest {min(tests):.1f}%, highest {max(tests):.1f}%." if len(tests) > 1 else
              f"1 seed: test error {tests[0]:.1f}%.",
              f"Selected by the lowest {'training' if select == 'train' else 'validation'} error (the paper's rule: training "
              f"error): seed {chosen['seed']}, mean test error {chosen['mean_test_error_percent']:.1f}%, "
              f"{chosen['failed_tasks']} failed tasks (> {FAILED:g}%); the paper: 12.4%.",
              "", "| task | " + " | ".join(str(t) for t in chosen["test_error_percent"]) + " |",
              "|---|" + "---:|" * len(chosen["test_error_percent"]),
              "| test error (%) | " + " | ".join(f"{e:.1f}" for e in chosen["test_error_percent"].values()) + " |"]
    summary = {"select": select, "selected_seed": chosen["seed"], "selected": chosen,
               "mean_test_error_percent": statistics.fmean(tests), "sd_test_error_percent": spread, "seeds": results}
    return "\n".join(lines) + "\n", summary


def main(argv: list[str] | None = None) -> None:
    args, extra = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.summary_only:
        results = [json.loads(p.read_text()) for s in args.seeds if (p := args.out / f"seed{s}" / "result.json").is_file()]
    else:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_seed, seed, args, extra) for seed in args.seeds]
            results = []
            for seed, future in zip(args.seeds, futures):
                result = future.result()
                print(f"seed {seed}: mean test error {result['mean_test_error_percent']:.1f}%, "
                      f"training error {result['mean_train_error_percent']:.1f}%, {result['epochs']} epochs "
                      f"({result['linear_epochs']} linear), {result['fit_seconds'] / 60:.1f} min", flush=True)
                results.append(result)
    if not results:
        raise SystemExit(f"no finished seed under {args.out}")
    table, summary = summarise(results, args.select)
    (args.out / "summary.md").write_text(table)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(table, end="")


if __name__ == "__main__":
    main()
