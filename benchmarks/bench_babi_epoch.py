"""How long one bAbI training epoch takes per recurrent model, and which part of it is data loading.

Reads the bAbI files once into :class:`~mannkit.tasks.BabiSequenceTask` (timed: parsing and encoding), runs one
whole training epoch of the data loader alone (timed: gathering the batches and their one-hot input), then for
each preset trains on the first ``--batches`` batches of an epoch (forward, backward, the preset's gradient clip,
the optimizer step), and extrapolates the model's epoch from its time per padded word step (T summed over the
batches) to the epoch's padded word steps. One thread unless ``--threads`` says otherwise.

    OMP_NUM_THREADS=1 python benchmarks/bench_babi_epoch.py --data-dir PATH/en-10k --tasks 1 2 4 5 \\
        --configs configs/dnc/babi_small.yaml configs/ntm/babi_small.yaml configs/lstm/babi_small.yaml --batches 30

Prints a Markdown table and writes one JSON line per preset to ``--out`` (default ``benchmarks/out/bench_babi_epoch.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import yaml

from mannkit.core.config import instantiate, resolve_class
from mannkit.core.registry import load_plugins


def build(path: str, task) -> tuple[torch.nn.Module, torch.optim.Optimizer, float | None, int]:  # noqa: ANN001
    """The preset's core (bound to the task's sizes), its optimizer, its gradient clip and its parameter count."""
    preset = yaml.safe_load(Path(path).read_text())
    args = preset["model"]["init_args"]
    torch.manual_seed(0)
    core = instantiate(args["core"], "model.init_args.core")
    core.bind(task.input_size, task.output_size)
    config = args.get("optimizer") or {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-3}}
    optimizer = resolve_class(config["class_path"])(core.parameters(), **(config.get("init_args") or {}))
    clip = (preset.get("trainer") or {}).get("gradient_clip_val")
    return core, optimizer, clip, sum(p.numel() for p in core.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 2, 4, 5])
    parser.add_argument("--configs", nargs="+",
                        default=["configs/dnc/babi_small.yaml", "configs/ntm/babi_small.yaml", "configs/lstm/babi_small.yaml"])
    parser.add_argument("--batches", type=int, default=30, help="training batches timed per preset")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/out/bench_babi_epoch.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_plugins()
    import mannkit.cell  # noqa: F401  (registers the core classes by short name)
    import mannkit.nn  # noqa: F401
    from mannkit.systems.losses import masked_cross_entropy_loss
    from mannkit.tasks import BabiSequenceTask

    start = time.perf_counter()
    task = BabiSequenceTask(args.data_dir, tasks=args.tasks, batch_size=args.batch_size)
    task.setup("fit")
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    epoch_steps, batches = 0, 0
    for batch in task.train_dataloader():  # one whole epoch of the loader alone
        epoch_steps += batch["input"].shape[1]
        batches += 1
    data_s = time.perf_counter() - start
    print(f"tasks {args.tasks}: {len(task.split('train'))} training streams in {batches} batches of {args.batch_size}, "
          f"{epoch_steps} padded word steps; reading and encoding the files {setup_s:.1f} s; data loader epoch {data_s:.2f} s "
          f"({1e3 * data_s / batches:.2f} ms a batch); threads {torch.get_num_threads()}")
    rows = []
    for path in args.configs:
        core, optimizer, clip, params = build(path, task)
        loader = iter(task.train_dataloader())
        timed_steps, model_s = 0, 0.0
        for k in range(args.batches + 1):
            batch = next(loader)
            start = time.perf_counter()
            loss = masked_cross_entropy_loss(core(batch["input"]).logits, batch["target"], batch["mask"])
            optimizer.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(core.parameters(), clip)
            optimizer.step()
            if k:  # the first batch warms up
                model_s += time.perf_counter() - start
                timed_steps += batch["input"].shape[1]
        epoch_model_s = model_s / timed_steps * epoch_steps
        row = {
            "config": path, "params": params, "tasks": args.tasks, "threads": torch.get_num_threads(), "batches": batches,
            "ms_per_word_step": 1e3 * model_s / timed_steps, "model_epoch_s": epoch_model_s, "data_epoch_s": data_s,
            "setup_s": setup_s, "data_share": data_s / (data_s + epoch_model_s),
        }
        rows.append(row)
        print(json.dumps(row))
    print("\n| preset | parameters | ms per word step (batch 16) | training epoch (min) | data loading in it (s, %) |")
    print("|:---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| `{r['config']}` | {r['params']:,} | {r['ms_per_word_step']:.2f} | {r['model_epoch_s'] / 60:.1f} | "
              f"{r['data_epoch_s']:.1f} ({100 * r['data_share']:.2f}%) |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as handle:
        for r in rows:
            handle.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
