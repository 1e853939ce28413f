"""Learning benchmark for N-th farthest (issue 13): accuracy reached by each preset within a wall-time budget.

Builds the core, the task and the optimizer of each ``configs/relational/nth_farthest_*.yaml`` preset
given (as ``mannkit fit`` would), trains with a plain loop under one thread (masked cross-entropy over
the scored step, the preset's gradient-norm clip), evaluates the fixed validation set every
``--eval-every`` training sequences, and records the learning curve, the best and the last validation
accuracy, the test sets' accuracy at the end, and the sequences seen. The presets run one after the
other, each for ``--max-seconds`` (the machine is shared: compare sequences, not seconds).

    OMP_NUM_THREADS=1 python benchmarks/learn_nth_farthest.py \\
        --configs configs/relational/nth_farthest_rmc.yaml configs/relational/nth_farthest_lstm.yaml \\
        --seed 0 --max-seconds 2400 --eval-every 20000

Writes one JSON line per preset to ``--out`` (default ``benchmarks/out/learn_nth_farthest.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml

from mannkit.core.config import instantiate, resolve_class
from mannkit.core.registry import load_plugins
from mannkit.tasks.base import make_generator


def build(path: str, seed: int, overrides: dict[str, Any]) -> tuple[torch.nn.Module, Any, torch.optim.Optimizer, float | None]:
    """The preset's core, task (seeded with ``seed``), optimizer and gradient-norm clip."""
    load_plugins()
    import mannkit.cell  # noqa: F401  (registers the core classes by short name)
    import mannkit.nn  # noqa: F401
    import mannkit.tasks  # noqa: F401

    preset = yaml.safe_load(Path(path).read_text())
    torch.manual_seed(seed)
    system = preset["model"]["init_args"]
    core = instantiate(system["core"], "model.init_args.core")
    data = dict(preset["data"])
    data["init_args"] = {**(data.get("init_args") or {}), "seed": seed, **overrides}
    task = instantiate(data, "data")
    core.bind(task.input_size, task.output_size)
    optimizer_config = system["optimizer"]
    optimizer = resolve_class(optimizer_config["class_path"])(core.parameters(), **(optimizer_config.get("init_args") or {}))
    return core, task, optimizer, (preset.get("trainer") or {}).get("gradient_clip_val")


def masked_ce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the scored steps: ``logits [B, T, O]``, ``target [B, T]``, ``mask [B, T]``."""
    per_step = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # [B, O, T] -> [B, T]
    return (per_step * mask).sum() / mask.sum()


def accuracy(core: torch.nn.Module, batches: list[dict]) -> float:
    """The fraction of scored steps whose arg-max class is the target."""
    right, count = 0.0, 0.0
    core.eval()
    with torch.no_grad():
        for batch in batches:
            hits = core(batch["input"]).logits.argmax(-1).eq(batch["target"]).float()  # [B, T]
            right += (hits * batch["mask"]).sum().item()
            count += batch["mask"].sum().item()
    core.train()
    return right / count


def run(path: str, args: argparse.Namespace) -> dict[str, Any]:
    core, task, optimizer, clip = build(path, args.seed, args.override)
    val = task.val_set
    generator = make_generator(args.seed, "learn", "train")
    seen, next_eval, curve = 0, args.eval_every, []
    start = time.perf_counter()
    while time.perf_counter() - start < args.max_seconds:
        batch = task.generate(generator, task.batch_size, **task.train_difficulty())
        loss = masked_ce(core(batch["input"]).logits, batch["target"], batch["mask"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(core.parameters(), clip)
        optimizer.step()
        seen += task.batch_size
        if seen >= next_eval:
            next_eval += args.eval_every
            curve.append((seen, round(accuracy(core, val), 4), round(time.perf_counter() - start)))
            print(f"{Path(path).stem} sequences {seen} val accuracy {curve[-1][1]:.4f} ({curve[-1][2]}s)", flush=True)
    return {
        "preset": path,
        "seed": args.seed,
        "parameters": sum(p.numel() for p in core.parameters()),
        "sequences": seen,
        "seconds": round(time.perf_counter() - start),
        "best_val_accuracy": max((c[1] for c in curve), default=None),
        "last_val_accuracy": curve[-1][1] if curve else None,
        "test_accuracy": {name: round(accuracy(core, b), 4) for name, b in zip(task.test_set_names, task.test_sets)},
        "curve": curve,
    }


def _override(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    return key, yaml.safe_load(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="wall time per preset")
    parser.add_argument("--eval-every", type=int, default=20_000, help="training sequences between evaluations")
    parser.add_argument("--override", type=_override, nargs="*", default=[], help="task init_args, e.g. dims=16")
    parser.add_argument("--out", default="benchmarks/out/learn_nth_farthest.jsonl")
    args = parser.parse_args()
    args.override = dict(args.override)
    torch.set_num_threads(1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for path in args.configs:
        result = run(path, args)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(result) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)


if __name__ == "__main__":
    main()
