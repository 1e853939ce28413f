"""Learning benchmark for the ACT presets: sequence error and ponder time, with the task's loss plus the ponder cost.

Builds the core, task and optimizer of a ``configs/act/*.yaml`` preset, trains it with a plain loop
(one thread, the preset's gradient-norm clip) on the task's loss plus every term of
``SequenceOutput.losses`` (ACT's ponder cost), evaluates the fixed validation set every
``--eval-every`` steps (sequence error = 1 - sequence accuracy, mean ponder steps), and at the end
every test set (sequence error and mean ponder steps per set: ponder time against difficulty).
``--override`` changes task settings (a CPU-sized parity: ``size=16 max_entries=16 test_entries=[8,16]``);
``--tau`` the ACT time penalty; ``--set`` any entry of the preset by its dotted path (a smaller controller). One JSON line per seed goes to ``--out``.

    OMP_NUM_THREADS=1 python benchmarks/learn_act.py --config configs/act/parity.yaml --seeds 0 1 2 \\
        --override size=16 max_entries=16 'test_entries=[4,8,12,16]' --max-seconds 600
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from mannkit.core.config import instantiate
from mannkit.core.registry import load_plugins
from mannkit.systems.losses import objective
from mannkit.tasks.base import make_generator

from learn_from_config import parse_entry, set_entries  # benchmarks/, the script's own folder



def evaluate(core: torch.nn.Module, batches: list[dict], loss: str) -> dict[str, float]:
    """Sequence error and mean/max ponder steps over fixed batches (eval mode, no gradients)."""
    metric = objective(loss).metrics()["seq_accuracy"]
    ponder: list[float] = []
    core.eval()
    with torch.no_grad():
        for batch in batches:
            out = core(batch["input"])
            metric.update(out.logits, batch["target"], batch["mask"])
            if getattr(out, "stats", None):
                ponder.append(float(out.stats["ponder_mean"]))
    core.train()
    return {"seq_error": 1.0 - float(metric.compute()), "ponder_mean": statistics.mean(ponder) if ponder else 1.0}


def run(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    load_plugins()
    import mannkit.cell  # noqa: F401
    import mannkit.nn  # noqa: F401
    import mannkit.tasks  # noqa: F401

    preset = yaml.safe_load(Path(args.config).read_text())
    set_entries(preset, args.set)  # e.g. model.init_args.core.init_args.cell.init_args.controller.init_args.hidden_size=128
    torch.manual_seed(seed)
    core_config = preset["model"]["init_args"]["core"]
    if args.tau is not None:
        core_config["init_args"]["tau"] = args.tau
    core = instantiate(core_config, "model.init_args.core")
    data = dict(preset["data"])
    data["init_args"] = {**(data.get("init_args") or {}), "seed": seed, **dict(args.override)}
    task = instantiate(data, "data")
    core.bind(task.input_size, task.output_size)
    lr = args.lr or preset["model"]["init_args"]["optimizer"]["init_args"]["lr"]
    optimizer = torch.optim.Adam(core.parameters(), lr=lr)
    clip = preset.get("trainer", {}).get("gradient_clip_val")
    task_loss = objective(task.loss).loss
    generator = make_generator(seed, "learn_act")
    val = task.val_set
    curve, start, step = [], time.time(), 0
    while step < args.max_steps and time.time() - start < args.max_seconds:
        batch = task.make_batch(generator, task.batch_size, **task.train_difficulty())
        out = core(batch["input"])
        loss = task_loss(out.logits, batch["target"], batch["mask"])
        for term in (getattr(out, "losses", None) or {}).values():
            loss = loss + term
        optimizer.zero_grad()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(core.parameters(), clip)
        optimizer.step()
        step += 1
        if step % args.eval_every == 0:
            point = {"step": step, "sequences": step * task.batch_size, "seconds": round(time.time() - start, 1),
                     "loss": loss.item(), **evaluate(core, val, task.loss)}
            curve.append(point)
            if args.verbose:
                print(json.dumps(point), flush=True)
    tests = {name: evaluate(core, batches, task.loss) for name, batches in zip(task.test_set_names, task.test_sets)}
    if args.pictures:  # MemoryPictures' drawings of the trained core on the first example of the last test set
        from matplotlib.image import imsave

        from mannkit.callbacks.memory_pictures import example_figures
        from mannkit.viz import safe_name, to_rgb

        folder = Path(args.pictures)
        folder.mkdir(parents=True, exist_ok=True)
        for name, figure in example_figures(core, task.test_sets[-1][0]).items():
            imsave(folder / f"{Path(args.config).stem}_seed{seed}_{safe_name(name)}.png", to_rgb(figure))
        from mannkit.viz import draw_curve

        for axis, values in task.test_axes():  # ponder time against the difficulty of each test set
            ponder = [tests[name]["ponder_mean"] for name in task.test_set_names]
            figure = draw_curve(values, ponder, axis, "mean ponder steps", title=f"ponder time by {axis} (test sets)")
            imsave(folder / f"{Path(args.config).stem}_seed{seed}_ponder_by_{safe_name(axis)}.png", to_rgb(figure))
    final = evaluate(core, val, task.loss)
    return {"config": args.config, "seed": seed, "tau": args.tau, "override": dict(args.override), "set": dict(args.set),
            "lr": lr, "steps": step,
            "sequences": step * task.batch_size, "seconds": round(time.time() - start, 1), "final": final,
            "best_val_seq_error": min([p["seq_error"] for p in curve] + [final["seq_error"]]), "tests": tests, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--override", type=parse_entry, nargs="*", default=[])
    parser.add_argument("--set", type=parse_entry, nargs="*", default=[],
                        help="change the preset itself: dotted.path=value (e.g. a controller's hidden_size)")
    parser.add_argument("--tau", type=float, default=None, help="ACT's time penalty (default: the preset's)")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--max-steps", type=int, default=10**9)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="wall time per seed")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    parser.add_argument("--pictures", default=None, help="a folder for PNGs of the trained core (MemoryPictures' drawings)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out or f"benchmarks/out/learn_act_{Path(args.config).stem}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        result = run(args, seed)
        with out.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)


if __name__ == "__main__":
    main()
