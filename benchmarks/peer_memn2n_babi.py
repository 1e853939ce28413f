"""The peer baseline for MemN2N on bAbI: vinhkhuc/MemN2N-babi-python, a NumPy port of the paper's Matlab code.

Runs the peer's joint training ("PE LS RN JOINT": 3 hops, adjacent tying, 30 linear-start epochs, then 60) on any
list of bAbI tasks, with a seed, and writes its per-task test errors as JSON, so that our MemN2N can be compared
with the original algorithm on the same machine and the same task subsets (``run_memn2n_babi.py --tasks LIST``).

The peer is Python 2 code. This script copies a checkout of it (commit 84f6351 was measured) into a temporary
folder and makes three mechanical changes so that it runs on Python 3 and NumPy 2, none of which touches the
algorithm: ``np.int`` -> ``np.int64``; the index tuples its cross-entropy builds with ``zip`` become arrays; and
its joint runner reads the tasks and the seed from the environment (``TASKS``, ``SEED``; the peer fixes seed 42
and all 20 tasks). Under Python 3 the peer's ``(in_dim + 1) / 2`` in the position encoding is a true division, as
in the Matlab code (Python 2 floored it).

    git clone https://github.com/vinhkhuc/MemN2N-babi-python PEER   # commit 84f6351
    OMP_NUM_THREADS=1 python benchmarks/peer_memn2n_babi.py --peer PEER --data-dir PATH/tasks_1-20_v1-2/en --tasks 1,16 --seed 1

Needs only NumPy. Writes ``benchmarks/out/peer_memn2n_babi_task{LIST}_seed{S}.json`` (``--out``): per-task test
error (%), the last epoch's training and validation error, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

#: (file, old text, new text): the Python 3 / NumPy 2 changes, each of which must apply exactly once or more.
PATCHES = [
    ("memn2n/nn.py", "z = zip(*tmp)", "z = tuple(np.array(a, dtype=np.int64) for a in zip(*tmp))"),
    ("babi_runner.py", "seed_val = 42", "seed_val = int(os.environ.get('SEED', 42))"),
    ("babi_runner.py", "    tasks = range(20)\n",
     "    tasks = [int(t) - 1 for t in os.environ.get('TASKS', ','.join(map(str, range(1, 21)))).split(',')]\n"),
]


def prepare(peer: Path, into: Path) -> Path:
    """Copy the peer's Python files into ``into`` and apply :data:`PATCHES`; returns the copy's folder."""
    if not (peer / "babi_runner.py").is_file():
        raise SystemExit(f"--peer {peer}: no babi_runner.py there; give a checkout of vinhkhuc/MemN2N-babi-python.")
    target = into / "peer"
    shutil.copytree(peer, target, ignore=shutil.ignore_patterns(".git", "trained_model", "demo", "data"))
    for name, old, new in PATCHES:
        path = target / name
        text = path.read_text()
        if old not in text:
            raise SystemExit(f"{name}: {old!r} not found; this script was written for commit 84f6351 of the peer.")
        path.write_text(text.replace(old, new))
    for path in target.rglob("*.py"):  # np.int / np.float aliases anywhere else
        text = path.read_text()
        path.write_text(re.sub(r"np\.int\b(?!64)", "np.int64", re.sub(r"np\.float\b(?!32|64)", "np.float64", text)))
    return target


def parse_log(text: str) -> dict:
    """Per-task test error (%) and the last epoch's errors from the peer's output."""
    errors, task = {}, None
    for line in text.replace("\r", "\n").splitlines():
        found = re.search(r"Testing for task (\d+)", line)
        if found:
            task = int(found.group(1))
        found = re.search(r"Test error: ([0-9.]+)", line)
        if found and task is not None:
            errors[task] = round(100.0 * float(found.group(1)), 2)
    epochs = re.findall(r"(\d+) \| train error: ([0-9.e-]+) \| val error: ([0-9.e-]+)", text)
    last = epochs[-1] if epochs else (0, "nan", "nan")
    return {"test_error_percent": errors, "last_epoch": int(last[0]), "train_error_percent": 100.0 * float(last[1]),
            "val_error_percent": 100.0 * float(last[2])}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peer", type=Path, required=True, help="a checkout of vinhkhuc/MemN2N-babi-python")
    p.add_argument("--data-dir", type=Path, required=True, help="folder of qaN_*_{train,test}.txt files, e.g. .../en")
    p.add_argument("--tasks", default="all", help="'all' or task numbers, e.g. 1,16 (trained jointly)")
    p.add_argument("--seed", type=int, default=42, help="NumPy's seed (the peer's default is 42)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if not args.data_dir.is_dir():
        raise SystemExit(f"--data-dir {args.data_dir} is not a folder; give the bAbI folder that holds qa1_*_train.txt.")
    tasks = list(range(1, 21)) if args.tasks == "all" else [int(t) for t in args.tasks.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        peer = prepare(args.peer.resolve(), Path(tmp))
        env = {**os.environ, "TASKS": ",".join(map(str, tasks)), "SEED": str(args.seed)}
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "babi_runner.py", "-d", str(args.data_dir.resolve()), "-j"], cwd=peer,
                             env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"the peer failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
    result = {"peer": "vinhkhuc/MemN2N-babi-python", "tasks": tasks, "seed": args.seed, **parse_log(run.stdout),
              "seconds": round(seconds, 1), "threads": os.environ.get("OMP_NUM_THREADS")}
    errors = result["test_error_percent"]
    result["mean_test_error_percent"] = round(sum(errors.values()) / max(len(errors), 1), 2)
    result["failed_tasks"] = sum(e > 5.0 for e in errors.values())
    args.out.mkdir(parents=True, exist_ok=True)
    name = "joint" if args.tasks == "all" else "task" + "-".join(map(str, tasks))
    path = args.out / f"peer_memn2n_babi_{name}_seed{args.seed}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    table = "  ".join(f"{t}:{e:.1f}" for t, e in errors.items())
    print(f"peer MemN2N {name} seed {args.seed}: mean test error {result['mean_test_error_percent']:.1f}% "
          f"({result['failed_tasks']} above 5%), training error {result['train_error_percent']:.1f}%, "
          f"{seconds / 60:.1f} min; per task: {table}; wrote {path}")


if __name__ == "__main__":
    main()
