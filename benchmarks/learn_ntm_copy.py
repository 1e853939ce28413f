"""Learning benchmark: how many training sequences an NTM needs to copy below 1 bit per sequence.

For each seed: train the NTM of ``configs/ntm/copy.yaml`` (or the sizes given here) on copy
sequences of length 1-20, evaluate a fixed validation set (lengths 1-20) every
``--eval-every`` training sequences, and record the first count at which the validation
cost falls below ``--threshold`` bits per sequence. At the end, report the cost at test
lengths 20, 40, 80 and 120 (trained on <= 20). Any NaN or inf in the loss is counted.

    OMP_NUM_THREADS=1 python benchmarks/learn_ntm_copy.py --seeds 0 1 2 3 4 --max-sequences 30000

Writes one JSON line per seed to ``benchmarks/out/learn_ntm_copy.jsonl`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from mannkit.cell import MemoryCell
from mannkit.core.registry import load_plugins, registry
from mannkit.metrics import bits_per_sequence
from mannkit.systems.sequence import masked_bce_loss
from mannkit.nn import LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.tasks import CopyTask
from mannkit.tasks.base import make_generator


def build(args: argparse.Namespace) -> MemoryCell:
    load_plugins()
    addressing = registry.get("NTMAddressing")
    cell = MemoryCell(
        LSTMController(args.hidden),
        MatrixMemory(args.slots, args.word, init=args.init),
        [WriteHead(addressing(shift_range=1)), ReadHead(addressing(shift_range=1))],
        clip=20.0,
        compile=args.compile,
    )
    cell.bind(args.bits + 1, args.bits)
    return cell


def evaluate(cell: MemoryCell, batches: list[dict]) -> float:
    """Mean bits per sequence over fixed batches."""
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            logits = cell(batch["input"]).logits
            cost = bits_per_sequence(logits, batch["target"], batch["mask"])
            total, count = total + cost.sum().item(), count + cost.numel()
    return total / count


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(seed)
    cell = build(args)
    task = CopyTask(bits=args.bits, min_length=1, max_length=args.max_length, seed=seed)
    val_gen = make_generator(10_000 + seed, "val")
    val = [task.generate(val_gen, 16, min_length=n, max_length=n) for n in range(1, args.max_length + 1)]
    tests = {
        n: [task.generate(make_generator(20_000 + seed, "test", n), 16, min_length=n, max_length=n) for _ in range(2)]
        for n in args.test_lengths
    }
    optimizer = torch.optim.Adam(cell.parameters(), lr=args.lr)
    train_gen = make_generator(seed, "train")
    seen, nonfinite, converged_at = 0, 0, None
    curve: list[tuple[int, float]] = []
    start = time.perf_counter()
    next_eval = args.eval_every
    while seen < args.max_sequences:
        batch = task.generate(train_gen, args.batch_size, min_length=1, max_length=args.max_length)
        logits = cell(batch["input"]).logits
        loss = masked_bce_loss(logits, batch["target"], batch["mask"])
        if not torch.isfinite(loss):
            nonfinite += 1
            optimizer.zero_grad(set_to_none=True)
            seen += args.batch_size
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(cell.parameters(), args.clip_grad)
        optimizer.step()
        seen += args.batch_size
        if seen >= next_eval:
            next_eval += args.eval_every
            cost = evaluate(cell, val)
            curve.append((seen, round(cost, 4)))
            if args.verbose:
                print(f"seed {seed} sequences {seen} val bits/seq {cost:.3f} ({time.perf_counter() - start:.0f}s)", flush=True)
            if converged_at is None and cost < args.threshold:
                converged_at = seen
                if not args.train_past_convergence:
                    break
    result = {
        "seed": seed,
        "converged_at_sequences": converged_at,
        "nonfinite_losses": nonfinite,
        "final_val_bits_per_seq": curve[-1][1] if curve else None,
        "test_bits_per_seq": {n: round(evaluate(cell, b), 3) for n, b in tests.items()},
        "seconds": round(time.perf_counter() - start, 1),
        "curve": curve,
    }
    if args.save_dir:
        Path(args.save_dir).mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": cell.state_dict(), "config": cell.to_config()}, Path(args.save_dir) / f"ntm_copy_seed{seed}.pt")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip-grad", type=float, default=50.0)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--slots", type=int, default=128)
    parser.add_argument("--word", type=int, default=20)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--init", default="constant", choices=["constant", "learned", "random"])
    parser.add_argument("--max-length", type=int, default=20)
    parser.add_argument("--max-sequences", type=int, default=30_000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--threshold", type=float, default=1.0)
    parser.add_argument("--test-lengths", type=int, nargs="+", default=[20, 40, 80, 120])
    parser.add_argument("--train-past-convergence", action="store_true", help="keep training to --max-sequences")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--save-dir", default=None, help="save each trained model here")
    parser.add_argument("--out", default="benchmarks/out/learn_ntm_copy.jsonl")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        result = run_seed(seed, args)
        result["settings"] = {k: v for k, v in vars(args).items() if k not in ("seeds", "out", "verbose")}
        results.append(result)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(result) + "\n")
        print(
            f"seed {seed}: converged at {result['converged_at_sequences']} sequences, "
            f"{result['nonfinite_losses']} non-finite losses, test bits/seq {result['test_bits_per_seq']}, "
            f"{result['seconds']} s",
            flush=True,
        )
    counts = [r["converged_at_sequences"] for r in results]
    reached = sorted(c for c in counts if c is not None)
    median = statistics.median([c if c is not None else math.inf for c in counts])
    print(f"threads {args.threads}; converged {len(reached)}/{len(counts)} seeds; median sequences to < {args.threshold} bit: {median}")


if __name__ == "__main__":
    main()
