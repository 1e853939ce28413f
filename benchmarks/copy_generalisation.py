"""How far past its training lengths a copy model copies, and where along the recall it starts to fail.

For each checkpoint of a copy preset (``SequenceSystem`` checkpoints, as ``mannkit fit`` writes them)
this scores fixed test sets at longer lengths (the preset's task with ``test_lengths`` replaced, the
same generator as ``mannkit test``) and prints one row per length:

- bits per sequence (summed binary cross-entropy in bits; ``mannkit test``'s ``test/len{L}/bits_per_seq``),
- the share of sequences recalled wholly right (every bit of every step on the right side of 0.5),
- where the first wrong step falls among the L recalled vectors (median and quartiles over the
  sequences with one), which tells a model that loses its place after a fixed number of steps from
  one that blurs everywhere;
- for the sequences not wholly right, whether the recall is the input read from a wrong starting
  item: the offset s that best matches recalled step j with input item s + j (over at least 5
  items), and the share of those sequences that such a shifted read explains to 95% of their bits.

With ``--pictures DIR`` it also draws, for the first test sequence of each length, what
``MemoryPictures`` draws during training (input/target/prediction, the heads' weightings over time,
the memory at the end), as ``DIR/<checkpoint stem>_len<L>_<entry>.png``: the pictures that show why
a long sequence fails where it fails (a write head that runs off the end of memory, a read head that
skips or stalls).

    OMP_NUM_THREADS=1 python benchmarks/copy_generalisation.py --config configs/ntm/copy_curriculum.yaml \\
        --lengths 20 40 60 80 100 120 --ckpt runs/ntm/copy_curriculum/lightning_logs/version_0/checkpoints/last.ckpt \\
        --pictures benchmarks/out/generalisation
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from copy_errors import costs  # noqa: E402  (the per-sequence scoring this script shares)

from mannkit.core.config import instantiate  # noqa: E402
from mannkit.core.registry import load_plugins  # noqa: E402


def quartiles(values: list[int]) -> str:
    if not values:
        return "-"
    if len(values) < 4:
        return f"{statistics.median(values):g}"
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"{q2:g} ({q1:g}-{q3:g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the copy preset the checkpoints were trained with")
    parser.add_argument("--ckpt", nargs="+", required=True)
    parser.add_argument("--lengths", type=int, nargs="+", default=[20, 40, 60, 80, 100, 120])
    parser.add_argument("--batches", type=int, default=16, help="test batches per length (of the preset's batch size, at least 8 sequences)")
    parser.add_argument("--pictures", type=Path, default=None, help="draw the first test sequence of each length here")
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per checkpoint here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_plugins()
    import mannkit.tasks  # noqa: F401
    from mannkit.systems import SequenceSystem

    preset = yaml.safe_load(Path(args.config).read_text())
    data = dict(preset["data"])
    data["init_args"] = {**(data.get("init_args") or {}), "test_lengths": args.lengths, "test_batches": args.batches}
    data["init_args"]["batch_size"] = max(8, int(data["init_args"].get("batch_size", 8)))
    task = instantiate(data, "data")
    for path in args.ckpt:
        system = SequenceSystem.load_from_checkpoint(path, weights_only=True).eval()
        print(f"## {path}")
        print("| length | bits per sequence | wholly right | first wrong recalled step, median (quartiles) "
              "| wrong ones that are a shifted read | their start offset, median (quartiles) |")
        print("|---:|---:|---:|---|---:|---|")
        rows = []
        for length, batches in zip(args.lengths, task.test_sets):
            records = costs(system, batches)
            shifts = shifted_reads(system, batches)
            firsts = [r["wrong"][0] for r in records if r["wrong"]]
            bits = sum(r["bits"] for r in records) / len(records)
            right = 1 - len(firsts) / len(records)
            wrong_shifts = [(offset, match) for r, (offset, match) in zip(records, shifts) if r["wrong"]]
            explained = [offset for offset, match in wrong_shifts if match >= 0.95 and offset != 0]
            share = f"{len(explained) / len(wrong_shifts):.2f}" if wrong_shifts else "-"
            rows.append({"length": length, "bits_per_seq": bits, "wholly_right": right, "first_wrong": firsts,
                         "wrong_shifted_reads": [list(x) for x in wrong_shifts]})
            print(f"| {length} | {bits:.3f} | {right:.2f} | {quartiles(firsts)} | {share} | {quartiles(explained)} |")
            if args.pictures is not None:
                draw(system, batches[0], args.pictures, f"{run_name(Path(path))}_{Path(path).stem}_len{length}")
        if args.json is not None:
            with open(args.json, "a") as fh:
                fh.write(json.dumps({"ckpt": str(path), "config": args.config, "rows": rows}) + "\n")


def shifted_reads(system: torch.nn.Module, batches: list[dict], least: int = 5) -> list[tuple[int, float]]:
    """Per sequence ``(s, agreement)``: the input offset whose items best match the recall (bits thresholded at 0.5).

    Recalled step j is compared with input item s + j for j < L - s, s = 0 .. L - ``least``; ``agreement``
    is the share of equal bits at the best s (1.0 for a model that recalls the input from item s on).
    """
    found = []
    with torch.no_grad():
        for batch in batches:
            recalled = system(batch["input"]).logits > 0  # [B, T, O]
            mask, target = batch["mask"].bool(), batch["target"].bool()  # [B, T], [B, T, O]
            for b in range(mask.shape[0]):
                out, items = recalled[b][mask[b]], target[b][mask[b]]  # [L, O] each: the recall and the input items
                L = out.shape[0]
                best = max(((s, (out[: L - s] == items[s:]).float().mean().item()) for s in range(max(1, L - least + 1))),
                           key=lambda pair: pair[1])
                found.append(best)
    return found


def run_name(path: Path) -> str:
    """The folder above ``lightning_logs`` (a run's root, e.g. ``seed1``), or the checkpoint's folder."""
    parts = path.resolve().parts
    return parts[parts.index("lightning_logs") - 1] if "lightning_logs" in parts[1:] else path.parent.name


def draw(system: torch.nn.Module, batch: dict, folder: Path, stem: str) -> None:
    """Save what MemoryPictures draws for the first sequence of ``batch``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mannkit.callbacks.memory_pictures import example_figures

    folder.mkdir(parents=True, exist_ok=True)
    one = {key: value[:1] for key, value in batch.items() if torch.is_tensor(value)}
    for name, figure in example_figures(system, one).items():
        figure.savefig(folder / f"{stem}_{name.replace('/', '_')}.png", dpi=80)
        plt.close(figure)


if __name__ == "__main__":
    main()
