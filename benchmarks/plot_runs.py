"""Draw one logged scalar of several ``mannkit fit`` runs against training steps, one line per run.

Reads the TensorBoard events each run wrote (the newest events file below each folder that logged the tag) and writes
one PNG; prints each run's last value and its best:

    python benchmarks/plot_runs.py runs/meta/mann_sequential_omniglot runs/meta/lstm_sequential_omniglot \
        --labels MANN LSTM --tag val/step_accuracy --out omniglot_curve.png
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="each run's default_root_dir (its events are found below it)")
    parser.add_argument("--tag", required=True, help="the logged scalar, e.g. val/step_accuracy")
    parser.add_argument("--labels", nargs="+", default=None, help="one legend label per run (default: folder names)")
    parser.add_argument("--per-step", type=float, default=1.0, help="multiply steps by this on the x axis (e.g. the batch size)")
    parser.add_argument("--xlabel", default="training step")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()
    labels = args.labels or [run.name for run in args.runs]
    if len(labels) != len(args.runs):
        raise SystemExit(f"--labels: {len(labels)} labels for {len(args.runs)} runs; give one per run.")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    figure, axes = plt.subplots(figsize=(6, 4))
    for run, label in zip(args.runs, labels):
        files = sorted(run.rglob("events.out.tfevents*"), key=lambda p: p.stat().st_mtime, reverse=True)
        if not files:
            raise SystemExit(f"no TensorBoard events under {run}; give the run's default_root_dir.")
        found = []
        for file in files:  # the newest that logged the tag (a later `mannkit test` of the run writes its own)
            events = EventAccumulator(str(file), size_guidance={"scalars": 0})
            events.Reload()
            found.append(events)
            if args.tag in events.Tags()["scalars"]:
                break
        else:
            raise SystemExit(f"{run} logged no '{args.tag}'; it logged {sorted(found[0].Tags()['scalars'])}.")
        points = events.Scalars(args.tag)
        axes.plot([(p.step + 1) * args.per_step for p in points], [p.value for p in points], label=label)
        best = max(p.value for p in points)
        print(f"{label}: {args.tag} = {points[-1].value:.4f} at step {points[-1].step + 1} (highest {best:.4f})")
    axes.set_xlabel(args.xlabel)
    axes.set_ylabel(args.tag)
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
