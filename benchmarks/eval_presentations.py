"""Accuracy by the n-th presentation of a class on sequential Omniglot (Santoro et al. 2016, table 1).

Evaluates checkpoints of ``SequenceSystem`` runs (``configs/meta/mann_sequential_omniglot.yaml``,
``lstm_sequential_omniglot.yaml``) on the fixed test episodes of ``SequentialOmniglotTask`` and prints one
row per checkpoint: accuracy at the 1st, 2nd, 3rd, 5th and 10th presentation (percent).

    mannkit fit --config configs/meta/mann_sequential_omniglot.yaml --data.init_args.data_dir PATH/omniglot
    python benchmarks/eval_presentations.py --data-dir PATH/omniglot --ckpt runs/meta/mann_sequential_omniglot/.../last.ckpt \\
        runs/meta/lstm_sequential_omniglot/.../last.ckpt
"""

from __future__ import annotations

import argparse

import torch

from mannkit.core.registry import load_plugins
from mannkit.systems import SequenceSystem

SHOWN = (1, 2, 3, 5, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--ckpt", nargs="+", required=True)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--side", type=int, default=20)
    parser.add_argument("--train-characters", type=int, default=1200)
    parser.add_argument("--val-characters", type=int, default=100)
    parser.add_argument("--test-batches", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_plugins()
    from mannkit_mann import PresentationAccuracy, SequentialOmniglotTask

    task = SequentialOmniglotTask(args.data_dir, classes=args.classes, samples=args.samples, side=args.side,
                                  train_characters=args.train_characters, val_characters=args.val_characters,
                                  batch_size=args.batch_size, test_batches=args.test_batches, seed=args.seed)
    episodes = task.test_sets[0]
    print("| checkpoint | " + " | ".join(f"{n}th" if n > 3 else ("1st", "2nd", "3rd")[n - 1] for n in SHOWN) + " |")
    print("|---|" + "---|" * len(SHOWN))
    for path in args.ckpt:
        system = SequenceSystem.load_from_checkpoint(path, weights_only=True).eval()
        metric = PresentationAccuracy(max(SHOWN))
        with torch.no_grad():
            for batch in episodes:
                metric.update(system(batch["input"]).logits, batch["target"])
        accuracy = metric.compute()
        print(f"| {path} | " + " | ".join(f"{100 * accuracy[n - 1]:.1f}" for n in SHOWN) + " |")


if __name__ == "__main__":
    main()
