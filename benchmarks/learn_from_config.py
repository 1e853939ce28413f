"""Learning benchmark driven by a preset: how many training sequences until a target is met.

Builds the model, optimizer and task of a ``configs/**.yaml`` preset (the same objects
``mannkit fit --config`` builds), trains it with a plain loop (one thread, the preset's
gradient-norm clip), evaluates the task's fixed validation set every ``--eval-every``
training sequences, and records the first count at which the target is met:

- ``--target bits``: validation cost below ``--threshold`` bits per sequence (copy: 1 bit);
- ``--target accuracy``: validation sequence accuracy (every scored bit right) at or above
  ``--threshold`` (traversal: 0.9).

It also records the learning curve, any NaN or inf loss, the test sets' figures at the end,
and the wall time (the machine is shared: compare times only within one run).

    OMP_NUM_THREADS=1 python benchmarks/learn_from_config.py --config configs/dnc/copy.yaml \\
        --seeds 0 1 2 --max-sequences 40000 --target bits --threshold 1.0

Writes one JSON line per seed to ``--out`` (default ``benchmarks/out/learn_<preset>.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from mannkit.core.config import instantiate, resolve_class
from mannkit.core.registry import load_plugins
from mannkit.metrics import bits_per_sequence, sequence_accuracy
from mannkit.systems.sequence import masked_bce_loss
from mannkit.tasks.base import make_generator


def load_preset(path: str) -> dict[str, Any]:
    with open(path) as fh:
        return yaml.safe_load(fh)


def build(preset: dict[str, Any], seed: int, overrides: dict[str, Any], lr: float | None = None) -> tuple[torch.nn.Module, Any, torch.optim.Optimizer, float | None]:
    """The preset's core, task (seeded with ``seed``) and optimizer, and its gradient-norm clip."""
    load_plugins()
    import mannkit.cell  # noqa: F401  (registers the core classes by short name)
    import mannkit.nn  # noqa: F401
    import mannkit.systems  # noqa: F401
    import mannkit.tasks  # noqa: F401

    torch.manual_seed(seed)
    system_args = preset["model"]["init_args"]
    core = instantiate(system_args["core"], "model.init_args.core")
    data = dict(preset["data"])
    data["init_args"] = {**(data.get("init_args") or {}), "seed": seed, **overrides}
    task = instantiate(data, "data")
    batch = task.example_batch(1)
    core.bind(batch["input"].shape[-1], batch["target"].shape[-1])
    opt_cfg = system_args.get("optimizer") or {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-3}}
    opt_args = {**(opt_cfg.get("init_args") or {}), **({"lr": lr} if lr is not None else {})}
    optimizer = resolve_class(opt_cfg["class_path"])(core.parameters(), **opt_args)
    clip = (preset.get("trainer") or {}).get("gradient_clip_val")
    return core, task, optimizer, clip


def evaluate(core: torch.nn.Module, batches: list[dict]) -> tuple[float, float]:
    """Mean bits per sequence and sequence accuracy over fixed batches."""
    bits, acc, count = 0.0, 0.0, 0
    core.eval()
    with torch.no_grad():
        for batch in batches:
            logits = core(batch["input"]).logits
            bits += bits_per_sequence(logits, batch["target"], batch["mask"]).sum().item()
            acc += sequence_accuracy(logits, batch["target"], batch["mask"]).sum().item()
            count += batch["input"].shape[0]
    core.train()
    return bits / count, acc / count


def run_seed(seed: int, args: argparse.Namespace, preset: dict[str, Any]) -> dict[str, Any]:
    core, task, optimizer, clip = build(preset, seed, args.override, args.lr)
    val = task.val_set
    tests = dict(zip(task.test_set_names, task.test_sets))
    generator = make_generator(seed, "learn", "train")
    batch_size = args.batch_size or task.batch_size
    seen, nonfinite, reached = 0, 0, None
    curve: list[tuple[int, float, float]] = []
    start = time.perf_counter()
    next_eval = args.eval_every
    while seen < args.max_sequences and (args.max_seconds is None or time.perf_counter() - start < args.max_seconds):
        batch = task.generate(generator, batch_size, **task.train_difficulty())
        loss = masked_bce_loss(core(batch["input"]).logits, batch["target"], batch["mask"])
        optimizer.zero_grad(set_to_none=True)
        seen += batch_size
        if not torch.isfinite(loss):
            nonfinite += 1
            continue
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(core.parameters(), clip)
        optimizer.step()
        if seen >= next_eval:
            next_eval += args.eval_every
            bits, acc = evaluate(core, val)
            curve.append((seen, round(bits, 4), round(acc, 4)))
            if args.verbose:
                print(f"seed {seed} sequences {seen} val bits/seq {bits:.3f} accuracy {acc:.3f} "
                      f"({time.perf_counter() - start:.0f}s)", flush=True)
            met = bits < args.threshold if args.target == "bits" else acc >= args.threshold
            if reached is None and met:
                reached = seen
                if not args.train_past_target:
                    break
    return {
        "seed": seed,
        "reached_at_sequences": reached,
        "nonfinite_losses": nonfinite,
        "final_val": {"bits_per_seq": curve[-1][1], "accuracy": curve[-1][2]} if curve else None,
        "test": {name: dict(zip(("bits_per_seq", "accuracy"), (round(v, 4) for v in evaluate(core, b)))) for name, b in tests.items()},
        "seconds": round(time.perf_counter() - start, 1),
        "curve": curve,
    }


def parse_entry(text: str) -> tuple[str, Any]:
    """``"dotted.path=value"`` -> ``("dotted.path", value)``, the value read as YAML (``--override`` / ``--set``)."""
    key, _, value = text.partition("=")
    return key, yaml.safe_load(value)



def set_entries(preset: dict[str, Any], entries: list[tuple[str, Any]]) -> None:
    """Change a loaded preset in place: each ``(dotted.path, value)``, e.g. a controller's ``hidden_size``.

    A number in the path indexes a list, e.g. ``model.init_args.core.init_args.heads.0.init_args.pop_bias``.
    """
    for path, value in entries:  # e.g. model.init_args.core.init_args.controller.init_args.hidden_size
        *parents, leaf = path.split(".")
        node: Any = preset
        for depth, key in enumerate([*parents, leaf]):
            if isinstance(node, list) and not (key.isdigit() and int(key) < len(node)):
                where = ".".join([*parents, leaf][:depth]) or "(top)"
                raise SystemExit(
                    f"--set {path}: {where} is a list of {len(node)} entries, so {key!r} must be an index from 0 to "
                    f"{len(node) - 1}; fix that part of the path."
                )
            if depth == len(parents):
                break
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a preset, e.g. configs/dnc/copy.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", choices=["bits", "accuracy"], default="bits")
    parser.add_argument("--threshold", type=float, default=1.0)
    parser.add_argument("--max-sequences", type=int, default=40_000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--lr", type=float, default=None, help="default: the preset's optimizer's")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop a seed after this much wall time")
    parser.add_argument("--override", type=parse_entry, nargs="*", default=[], help="task init_args, e.g. max_length=10")
    parser.add_argument("--train-past-target", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    args.override = dict(args.override)
    torch.set_num_threads(args.threads)
    preset = load_preset(args.config)
    out = Path(args.out or f"benchmarks/out/learn_{Path(args.config).parent.name}_{Path(args.config).stem}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        result = run_seed(seed, args, preset)
        result["settings"] = {"config": args.config, **{k: v for k, v in vars(args).items() if k not in ("seeds", "out", "verbose", "config")}}
        results.append(result)
        with open(out, "a") as fh:
            fh.write(json.dumps(result) + "\n")
        print(f"seed {seed}: target reached at {result['reached_at_sequences']} sequences, "
              f"{result['nonfinite_losses']} non-finite losses, final val {result['final_val']}, test {result['test']}, "
              f"{result['seconds']} s", flush=True)
    counts = [r["reached_at_sequences"] for r in results]
    median = statistics.median([c if c is not None else math.inf for c in counts])
    print(f"{args.config}: threads {args.threads}; target met by {sum(c is not None for c in counts)}/{len(counts)} seeds; "
          f"median sequences: {median}")


if __name__ == "__main__":
    main()
