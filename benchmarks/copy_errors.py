"""Where does a copy model go wrong? Per validation sequence: its length, its cost in bits, and the wrong bits by position.

A converged copy model's ``val/bits_per_seq`` is a mean over the fixed validation set; a plateau at
0.6 bits can be one sequence in fifty costing 30 bits, or every sequence costing a little. This
script loads checkpoints of a copy preset (``SequenceSystem`` checkpoints, as ``mannkit fit`` writes
them), rebuilds the preset's validation set (same task settings and seed), and prints per checkpoint

- the mean cost (it equals the logged ``val/bits_per_seq``),
- the cost by sequence length (mean and worst), and
- the sequences costing more than ``--worst`` bits: length, cost, wrong bits (output thresholded at
  0.5) and the target positions holding them (0 = the first bit to recall).

With ``--free-gates-off`` a DNC is scored a second time with its free gates forced to 0 (the same
weights; no read ever frees a slot): the test that showed that the DNC's rare wholly wrong
sequences come from freed and overwritten slots.

    OMP_NUM_THREADS=1 python benchmarks/copy_errors.py --config configs/dnc/copy.yaml --free-gates-off \\
        --ckpt runs/dnc/copy/lightning_logs/version_0/checkpoints/step*.ckpt
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml

from mannkit.core.config import instantiate
from mannkit.core.registry import load_plugins


def costs(system: torch.nn.Module, batches: list[dict]) -> list[dict]:
    """One record per sequence: ``length``, ``bits`` (summed BCE in bits over the masked steps), ``wrong`` positions."""
    records = []
    with torch.no_grad():
        for batch in batches:
            logits = system(batch["input"]).logits  # [B, T, O]
            target, mask = batch["target"], batch["mask"]  # [B, T, O], [B, T]
            bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
            bits = (bce.sum(-1) * mask).sum(-1) / math.log(2)  # [B]
            wrong = ((logits > 0).float() != target).any(-1) & mask.bool()  # [B, T]: a step with a wrong bit
            first = mask.float().argmax(-1)  # [B]: the first scored step
            for b in range(target.shape[0]):
                positions = (torch.nonzero(wrong[b]).flatten() - first[b]).tolist()
                records.append({"length": int(mask[b].sum()), "bits": float(bits[b]), "wrong": positions})
    return records


@contextlib.contextmanager
def free_gates_forced_off(active: bool) -> Iterator[None]:
    """While active, every ``DNCMemory.dnc_write`` gets free gates f = 0 (the weights are untouched)."""
    if not active:
        yield
        return
    from mannkit_dnc.memory import DNCMemory

    original = DNCMemory.dnc_write

    def without_freeing(self, state, key, strength, erase, vector, free_gates, *rest, **kw):  # noqa: ANN001, ANN202
        return original(self, state, key, strength, erase, vector, torch.zeros_like(free_gates), *rest, **kw)

    DNCMemory.dnc_write = without_freeing
    try:
        yield
    finally:
        DNCMemory.dnc_write = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the copy preset the checkpoints were trained with")
    parser.add_argument("--data-seed", type=int, default=None,
                        help="the task's own seed if the run changed it (default: the preset's; seed_everything does not change it)")
    parser.add_argument("--ckpt", nargs="+", required=True)
    parser.add_argument("--worst", type=float, default=2.0, help="list sequences costing more than this many bits")
    parser.add_argument("--free-gates-off", action="store_true", help="also score a DNC with its free gates forced to 0")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_plugins()
    import mannkit.tasks  # noqa: F401
    from mannkit.systems import SequenceSystem

    preset = yaml.safe_load(Path(args.config).read_text())
    data = dict(preset["data"])
    data["init_args"] = dict(data.get("init_args") or {})
    if args.data_seed is not None:
        data["init_args"]["seed"] = args.data_seed
    task = instantiate(data, "data")
    val = task.val_set
    runs = [(path, False) for path in args.ckpt] + [(path, True) for path in args.ckpt if args.free_gates_off]
    for path, gates_off in runs:
        system = SequenceSystem.load_from_checkpoint(path, weights_only=True).eval()
        with free_gates_forced_off(gates_off):
            records = costs(system, val)
        by_length: dict[int, list[float]] = defaultdict(list)
        for record in records:
            by_length[record["length"]].append(record["bits"])
        mean = sum(r["bits"] for r in records) / len(records)
        print(f"## {path}{' (free gates forced to 0)' if gates_off else ''}: {len(records)} sequences, mean {mean:.3f} bits per sequence")
        print("length: mean / worst bits (sequences)")
        print("  ".join(f"{n}: {sum(v) / len(v):.2f}/{max(v):.2f} ({len(v)})" for n, v in sorted(by_length.items())))
        for record in sorted(records, key=lambda r: -r["bits"]):
            if record["bits"] <= args.worst:
                break
            print(f"  length {record['length']}: {record['bits']:.1f} bits, wrong steps at {record['wrong']}")


if __name__ == "__main__":
    main()
