"""Learning benchmark of the stack presets (issue 11): coarse and fine accuracy against training sequences.

Builds the core, task and optimizer of a ``configs/stack/*.yaml`` preset (through
``benchmarks/learn_from_config.build``, the objects ``mannkit fit`` builds), trains with a plain
loop under the task's own loss (cross-entropy for the transduction tasks, BCE for Dyck), one
thread, the preset's gradient-norm clip, and every ``--eval-every`` training sequences scores the
fixed validation set: coarse accuracy (whole target right) and fine accuracy (share right before
the first error; for BCE tasks a step is right when all its bits are). It stops when the
validation coarse accuracy reaches ``--threshold``, after ``--max-sequences`` or after
``--max-minutes``, then scores every test set (the longer lengths). One JSON line per seed.

    OMP_NUM_THREADS=1 python benchmarks/learn_stack.py --config configs/stack/stack_reversal.yaml \\
        --seeds 0 --max-minutes 60 --eval-every 2000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import yaml  # noqa: E402

from mannkit.core.config import instantiate, resolve_class  # noqa: E402
from mannkit.core.registry import load_plugins  # noqa: E402
from mannkit.metrics import coarse_accuracy, fine_accuracy  # noqa: E402
from mannkit.systems.losses import masked_bce_loss, masked_cross_entropy_loss  # noqa: E402
from mannkit.tasks.base import make_generator  # noqa: E402

from learn_from_config import parse_entry, set_entries  # noqa: E402  (benchmarks/, the script's own folder)


def build(preset: dict, seed: int, overrides: dict, lr: float | None) -> tuple:
    """The preset's core (bound to the task's input and output sizes), task (seeded), optimizer and gradient-norm clip."""
    load_plugins()
    import mannkit.cell  # noqa: F401  (registers the core classes by short name)
    import mannkit.nn  # noqa: F401
    import mannkit.tasks  # noqa: F401

    torch.manual_seed(seed)
    system_args = preset["model"]["init_args"]
    core = instantiate(system_args["core"], "model.init_args.core")
    data = dict(preset["data"])
    data["init_args"] = {**(data.get("init_args") or {}), "seed": seed, **overrides}
    task = instantiate(data, "data")
    core.bind(task.input_size, task.output_size)  # O classes for ce, not the target's last axis
    opt_cfg = system_args.get("optimizer") or {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-3}}
    opt_args = {**(opt_cfg.get("init_args") or {}), **({"lr": lr} if lr is not None else {})}
    optimizer = resolve_class(opt_cfg["class_path"])(core.parameters(), **opt_args)
    return core, task, optimizer, (preset.get("trainer") or {}).get("gradient_clip_val")


def _as_classes(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE bits ``[B, T, O]`` -> one 'class' per step that is right exactly when every bit is: logits ``[B, T, 2]``, target ``[B, T]``."""
    right = ((logits > 0).float() == target).all(-1)  # [B, T]
    return torch.stack([(~right).float(), right.float()], -1), torch.ones_like(right, dtype=torch.long)


def evaluate(core: torch.nn.Module, batches: list[dict], categorical: bool) -> dict[str, float]:
    coarse = fine = count = 0.0
    core.eval()
    with torch.no_grad():
        for batch in batches:
            logits, target = core(batch["input"]).logits, batch["target"]
            if not categorical:
                logits, target = _as_classes(logits, target)
            coarse += coarse_accuracy(logits, target, batch["mask"]).float().sum().item()
            fine += fine_accuracy(logits, target, batch["mask"]).sum().item()
            count += target.shape[0]
    core.train()
    return {"coarse": round(coarse / count, 4), "fine": round(fine / count, 4)}


def run(args: argparse.Namespace, seed: int) -> dict:
    preset = yaml.safe_load(Path(args.config).read_text())
    set_entries(preset, args.set)  # e.g. model.init_args.core.init_args.controller.init_args.hidden_size=64
    overrides = json.loads(args.data_overrides) if args.data_overrides else {}
    core, task, optimizer, clip = build(preset, seed, overrides, args.lr)
    categorical = task.loss == "ce"
    loss_fn = masked_cross_entropy_loss if categorical else masked_bce_loss
    generator, val = make_generator(seed, "learn"), task.val_set
    seen, curve, reached, start = 0, [], None, time.time()
    params = sum(p.numel() for p in core.parameters())
    print(f"seed {seed}: {params} parameters", flush=True)
    while seen < args.max_sequences and time.time() - start < 60 * args.max_minutes:
        batch = task.make_batch(generator, task.batch_size, **task.train_difficulty())
        loss = loss_fn(core(batch["input"]).logits, batch["target"], batch["mask"])
        optimizer.zero_grad()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(core.parameters(), clip)
        optimizer.step()
        seen += batch["input"].shape[0]
        if seen % args.eval_every < batch["input"].shape[0]:
            scores = evaluate(core, val, categorical)
            curve.append((seen, round(loss.item(), 4), scores["coarse"], scores["fine"]))
            print(f"seed {seed} sequences {seen} loss {loss.item():.4f} val coarse {scores['coarse']:.3f} "
                  f"fine {scores['fine']:.3f} ({time.time() - start:.0f} s)", flush=True)
            if reached is None and scores["coarse"] >= args.threshold:
                reached = seen
                break
    tests = {name: evaluate(core, batches, categorical) for name, batches in zip(task.test_set_names, task.test_sets)}
    return {"config": args.config, "set": dict(args.set), "seed": seed, "parameters": params, "sequences": seen,
            "reached_at_sequences": reached, "threshold": args.threshold, "minutes": round((time.time() - start) / 60, 1),
            "curve": curve, "test": tests}


def _set_label(changes: dict) -> str:
    """``{"...controller.init_args.hidden_size": 64}`` -> ``" (controller.hidden_size=64)"``; a list index stays
    with its list (``heads.0.pop_bias``)."""
    def short(key: str) -> str:
        names = [part for part in key.split(".") if part != "init_args"]
        return ".".join(names[-3:] if len(names) > 2 and names[-2].isdigit() else names[-2:])

    parts = [f"{short(k)}={v}" for k, v in changes.items()]
    return f" ({', '.join(parts)})" if parts else ""


def summary(path: Path) -> str:
    """A markdown table of the JSON lines in ``path``: one row per run, then the median per preset."""
    import statistics

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    names = list(dict.fromkeys(name for r in rows for name in r["test"]))
    head = ("| preset | seed | parameters | sequences to val coarse >= threshold | test coarse "
            + " / ".join(names) + " | test fine " + " / ".join(names) + " | minutes |")
    lines = [head, "|" + "---|" * 7]
    by_preset: dict[str, list[dict]] = {}
    for r in rows:
        label = Path(r["config"]).stem + _set_label(r.get("set", {}))
        by_preset.setdefault(label, []).append(r)
        reached = (f"**{r['reached_at_sequences']:,}**" if r["reached_at_sequences"] is not None
                   else f"not within {r['sequences']:,} (last val coarse {r['curve'][-1][2] if r['curve'] else '-'})")
        coarse = " / ".join(f"{r['test'][n]['coarse']:.2f}" if n in r["test"] else "-" for n in names)
        fine = " / ".join(f"{r['test'][n]['fine']:.2f}" if n in r["test"] else "-" for n in names)
        lines.append(f"| {label} | {r['seed']} | {r['parameters']:,} | {reached} | {coarse} | {fine} | {r['minutes']} |")
    lines.append("")
    for preset, runs in by_preset.items():
        longest = names[-1] if names else None
        med = statistics.median(r["test"][longest]["coarse"] for r in runs if longest in r["test"]) if longest else float("nan")
        hit = sum(r["reached_at_sequences"] is not None for r in runs)
        lines.append(f"- {preset}: {hit} of {len(runs)} seeds reached the threshold; median test coarse at {longest}: {med:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", type=Path, default=None, help="print a markdown table of this JSON-lines file and stop")
    parser.add_argument("--config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-sequences", type=int, default=1_000_000)
    parser.add_argument("--max-minutes", type=float, default=60.0)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--threshold", type=float, default=0.99)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--set", type=parse_entry, nargs="*", default=[],
                        help="change the preset itself: dotted.path=value (e.g. a controller's hidden_size)")
    parser.add_argument("--data-overrides", default="", help='JSON, e.g. \'{"test_batches": 4}\'')
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.summary is not None:
        print(summary(args.summary))
        return
    if not args.config:
        parser.error("--config is required (or --summary FILE)")
    torch.set_num_threads(1)
    out = Path(args.out or Path(__file__).resolve().parent / "out" / f"learn_stack_{Path(args.config).stem}.jsonl")
    out.parent.mkdir(exist_ok=True)
    for seed in args.seeds:
        result = run(args, seed)
        print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)
        with out.open("a") as fh:
            fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
