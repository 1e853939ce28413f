"""Where does an addition model go wrong? Its wrong steps by what the step asks, and how often training asks it.

``mannkit test`` gives an addition model's sequence error per test set (numbers of 1, 2, 3 digits); a
3-digit set 15 % wrong says nothing of which additions fail. This script loads ``SequenceSystem``
checkpoints of an addition preset (as ``mannkit fit`` writes them), draws fresh sequences with the
preset's task and the lengths and digits given here, and prints per checkpoint the error of single
steps (a step is wrong when any of its 6 output digits is) by

- the step's index t in its sequence,
- the **case** ``P+K``: a sum of P digits before the step (0 at the first step) plus a number of K
  digits (the input gives a number most significant digit first, so for P > K the number's units
  must be added P - K places left of where it gives them),
- the number of carries of that addition, and
- the place of the wrong output digits, counted from the sum's units (0).

Beside the error of each case it prints how often training steps are that case, drawn from the
preset's own training ranges, so that a failing case can be read against its share of the training data.

    OMP_NUM_THREADS=1 python benchmarks/addition_errors.py --config configs/act/addition_cpu.yaml \\
        --lengths 1 3 --digits 3 3 --ckpt runs/act/addition_cpu/lightning_logs/version_0/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import torch
import yaml

from mannkit.core.config import instantiate
from mannkit.core.registry import load_plugins


def numbers_of(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The numbers ``[B, L]`` and their digit counts ``[B, L]`` read back from an addition batch's one-hot input."""
    B, L, _ = batch["input"].shape
    x = batch["input"].view(B, L, 5, 10)
    k = x.sum(dim=(-1, -2)).long()  # digits per number
    place = (k.unsqueeze(-1) - 1 - torch.arange(5)).clamp_min(0)
    present = torch.arange(5) < k.unsqueeze(-1)
    return (x.argmax(-1) * 10**place * present).sum(-1), k


def digit_count(n: torch.Tensor) -> torch.Tensor:
    """Digits of each non-negative integer of ``n``; 0 has none (the empty sum before the first step)."""
    return torch.where(n > 0, torch.floor(torch.log10(n.clamp_min(1).double())).long() + 1, torch.zeros_like(n))


def carries(a: int, b: int) -> int:
    """Carries of the written addition ``a + b``."""
    count = carry = 0
    while a or b or carry:
        carry = int(a % 10 + b % 10 + carry >= 10)
        count += carry
        a, b = a // 10, b // 10
    return count


def step_cases(batch: dict) -> dict[str, torch.Tensor]:
    """Per step ``[B, L]``: ``t`` (1-based), ``case`` (``10 P + K``), ``carries`` and ``sum_digits`` of the running sum after it."""
    numbers, k = numbers_of(batch)
    running = numbers.cumsum(1)
    before = torch.cat([torch.zeros_like(running[:, :1]), running[:, :-1]], 1)
    carry = torch.tensor([[carries(int(p), int(n)) for p, n in zip(pr, nr)] for pr, nr in zip(before, numbers)])
    t = torch.arange(1, numbers.shape[1] + 1).expand_as(numbers)
    return {"t": t, "case": 10 * digit_count(before) + k, "carries": carry, "sum_digits": digit_count(running)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the addition preset the checkpoints were trained with")
    parser.add_argument("--ckpt", nargs="+", required=True)
    parser.add_argument("--lengths", type=int, nargs=2, default=[1, 3], metavar=("MIN", "MAX"), help="numbers per sequence")
    parser.add_argument("--digits", type=int, nargs=2, default=[3, 3], metavar=("MIN", "MAX"), help="digits per number")
    parser.add_argument("--batches", type=int, default=40, help="batches of 64 per length")
    parser.add_argument("--seed", type=int, default=123, help="seed of the drawn sequences")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_plugins()
    import mannkit.tasks  # noqa: F401
    from mannkit.systems import SequenceSystem

    data = yaml.safe_load(Path(args.config).read_text())["data"]
    task = instantiate(data, "data")
    train = {key: getattr(task, key) for key in ("min_length", "max_length", "min_digits", "max_digits")}
    share: dict[int, int] = defaultdict(int)
    generator = torch.Generator().manual_seed(args.seed + 1)
    for _ in range(2000):  # the training distribution's cases
        for case in step_cases(task.generate(generator, 32, **train))["case"].flatten().tolist():
            share[case] += 1
    total = sum(share.values())

    batches = []
    generator = torch.Generator().manual_seed(args.seed)
    for length in range(args.lengths[0], args.lengths[1] + 1):
        for _ in range(args.batches):
            batches.append(task.generate(generator, 64, min_length=length, max_length=length,
                                         min_digits=args.digits[0], max_digits=args.digits[1]))
    cases = [step_cases(batch) for batch in batches]
    for path in args.ckpt:
        system = SequenceSystem.load_from_checkpoint(path, weights_only=True).eval()
        tallies: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        wrong_sequences = sequences = 0
        for batch, case in zip(batches, cases):
            with torch.no_grad():
                logits = system(batch["input"]).logits
            B, L, D = batch["target"].shape
            wrong_digit = logits.view(B, L, D, -1).argmax(-1) != batch["target"]  # [B, L, D]
            wrong = wrong_digit.any(-1)  # [B, L]
            wrong_sequences += int(wrong.any(-1).sum())
            sequences += B
            for name in ("t", "case", "carries"):
                for value, w in zip(case[name].flatten().tolist(), wrong.flatten().tolist()):
                    tallies[name, value][0] += int(w)
                    tallies[name, value][1] += 1
            places = case["sum_digits"].unsqueeze(-1) - 1 - torch.arange(D)  # [B, L, D]: place from the units
            for place in places[wrong_digit].tolist():
                tallies["place", place][0] += 1
        print(f"## {path}: {wrong_sequences} of {sequences} sequences wrong ({wrong_sequences / sequences:.1%}); "
              f"lengths {args.lengths[0]}-{args.lengths[1]}, digits {args.digits[0]}-{args.digits[1]}")
        for name, label in (("t", "step t"), ("case", "P+K"), ("carries", "carries")):
            rows = []
            for (kind, value), (w, n) in sorted(tallies.items()):
                if kind == name:
                    shown = f"{value // 10}+{value % 10}" if name == "case" else str(value)
                    extra = f", {share.get(value, 0) / total:.2%} of training steps" if name == "case" else ""
                    rows.append(f"{shown}: {w / n:.1%} of {n}{extra}")
            print(f"{label:8s} " + "; ".join(rows))
        places = sorted((value, w) for (kind, value), (w, _) in tallies.items() if kind == "place")
        print("wrong digits by place from the units: " + ", ".join(f"{value}: {w}" for value, w in places))


if __name__ == "__main__":
    main()
