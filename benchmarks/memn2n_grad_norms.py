"""Gradient norms of the MemN2N joint preset, per weight and all together: what a clip at 40 does to them.

Builds ``configs/memn2n/babi_1k_joint.yaml``'s system (a fresh one, or the weights of ``--checkpoint``), then for
``--batches`` training batches of the 1k set computes the summed cost's gradient, with linear start on (no
softmax) or off, and prints the median norm of each weight's gradient (Frobenius and spectral) and of all of
them together, and how often each is above 40: a joint clip (``gradient_clip_val``) scales every weight's
step by 40 / joint norm, ``ClipEachGradient`` only the weights above 40 on their own.

    OMP_NUM_THREADS=1 python benchmarks/memn2n_grad_norms.py --data-dir PATH/tasks_1-20_v1-2/en              # fresh weights
    OMP_NUM_THREADS=1 python benchmarks/memn2n_grad_norms.py --data-dir PATH/en --checkpoint .../last.ckpt --softmax
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from mannkit.callbacks.clip_each import gradient_norm
from mannkit.core.registry import load_plugins
from mannkit.systems.qa import SIZE_NAMES, QASystem
from mannkit.tasks import BabiDataModule

PRESET = Path(__file__).resolve().parents[1] / "configs" / "memn2n" / "babi_1k_joint.yaml"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="the bAbI en folder (1k)")
    p.add_argument("--checkpoint", type=Path, default=None, help="weights to probe (default: a fresh model, seed 0)")
    p.add_argument("--softmax", action="store_true", help="probe with the softmax (after linear start) instead of without")
    p.add_argument("--tasks", default="all", help="bAbI tasks, e.g. all (the preset's) or 1,8")
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--bound", type=float, default=40.0)
    args = p.parse_args(argv)
    load_plugins()
    torch.manual_seed(0)
    config = yaml.safe_load(PRESET.read_text())
    tasks = "all" if args.tasks == "all" else [int(t) for t in args.tasks.split(",")]
    settings = {**config["data"]["init_args"], "data_dir": args.data_dir, "tasks": tasks}
    data = BabiDataModule(**settings)
    data.setup("fit")
    if args.checkpoint is not None:
        saved = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        system = QASystem(**{k: v for k, v in saved["hyper_parameters"].items() if not k.startswith("_")})
        system.load_state_dict(saved["state_dict"])
    else:  # the preset's MemN2N (its addressing is the default DotProductAddressing), bound as QASystem binds it
        from mannkit_memn2n import MemN2N

        options = {k: v for k, v in config["model"]["init_args"]["model"]["init_args"].items() if k != "addressing"}
        system = QASystem(model=MemN2N(**options), loss_reduction="sum")
        system._bind({name: int(getattr(data, name)) for name in SIZE_NAMES}, list(data.vocab), list(data.answers))
    model = system.model
    model.train()
    model.set_linear_start(not args.softmax)
    norms: dict[str, list[tuple[float, float]]] = {}
    joint: list[float] = []
    for i, batch in enumerate(data.train_dataloader()):
        if i == args.batches:
            break
        model.zero_grad()
        F.cross_entropy(model(batch["story"], batch["question"]).logits, batch["answer"], reduction="sum").backward()
        grads = {n: q.grad for n, q in model.named_parameters() if q.grad is not None}
        joint.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads.values()]))))
        for name, g in grads.items():
            norms.setdefault(name, []).append((float(gradient_norm(g, "frobenius")), float(gradient_norm(g, "spectral"))))
    print(f"{'weight':40s} {'Frobenius':>10s} {'spectral':>10s} {'> bound':>8s}  (medians over {len(joint)} batches)")
    for name, values in norms.items():
        over = sum(s > args.bound for _, s in values) / len(values)
        print(f"{name:40s} {statistics.median(f for f, _ in values):10.1f} {statistics.median(s for _, s in values):10.1f} {over:8.0%}")
    over = sum(j > args.bound for j in joint) / len(joint)
    print(f"{'all together (joint 2-norm)':40s} {statistics.median(joint):10.1f} {'':>10s} {over:8.0%}")


if __name__ == "__main__":
    main()
