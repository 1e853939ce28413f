"""Draw a MetaSystem run's validation curves: query loss (or accuracy) after k inner steps against meta-steps.

Reads the TensorBoard events a ``mannkit fit`` run wrote (``val/query_loss_step<k>``, ``val/query_accuracy_step<k>``)
and writes one PNG with a line per k asked for, and prints the last values:

    python benchmarks/plot_meta_curve.py benchmarks/out/maml_sinusoid --steps 0 1 5 10 --out benchmarks/out/maml_sinusoid.png
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="the run's default_root_dir (its events are found below it)")
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 1, 5, 10], help="inner steps k to draw")
    parser.add_argument("--metric", default="query_loss", choices=["query_loss", "query_accuracy"])
    parser.add_argument("--out", type=Path, default=None, help="PNG path (default: <run>/<metric>.png)")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(args.run.rglob("events.out.tfevents*"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not files:
        raise SystemExit(f"no TensorBoard events under {args.run}; give the run's default_root_dir.")
    wanted = {f"val/{args.metric}_step{k}" for k in args.steps}
    for file in files:  # the newest with validation curves (a later `mannkit test` of the run writes its own file)
        events = EventAccumulator(str(file), size_guidance={"scalars": 0})
        events.Reload()
        if wanted & set(events.Tags()["scalars"]):
            break
    else:
        raise SystemExit(f"no run under {args.run} logged any of {sorted(wanted)}.")
    figure, axes = plt.subplots(figsize=(6, 4))
    for k in args.steps:
        tag = f"val/{args.metric}_step{k}"
        if tag not in events.Tags()["scalars"]:
            continue
        points = events.Scalars(tag)
        axes.plot([p.step + 1 for p in points], [p.value for p in points], label=f"after {k} inner steps")
        print(f"{tag}: {points[-1].value:.3f} at meta-step {points[-1].step + 1}")
    axes.set_xlabel("meta-step")
    axes.set_ylabel(args.metric.replace("_", " "))
    if args.metric == "query_loss":
        axes.set_yscale("log")
    axes.legend()
    axes.grid(alpha=0.3)
    out = args.out or args.run / f"{args.metric}.png"
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
