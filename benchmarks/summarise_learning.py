"""Summarise learn_ntm_copy.py JSON lines (one per seed) as the markdown table in RESULTS.md.

    python benchmarks/summarise_learning.py benchmarks/out/learn_*.jsonl
"""

from __future__ import annotations

import json
import math
import statistics
import sys


def main(paths: list[str]) -> None:
    runs = {}
    for path in paths:
        with open(path) as fh:
            for line in fh:
                run = json.loads(line)
                runs[run["seed"]] = run  # a seed run twice keeps its last result
    print("| seed | sequences to < 1 bit/seq | non-finite losses | cost at len 20 | 40 | 80 | 120 | seconds |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for seed in sorted(runs):
        r = runs[seed]
        t = {int(k): v for k, v in r["test_bits_per_seq"].items()}
        reached = r["converged_at_sequences"]
        limit = r["settings"]["max_sequences"]
        print(
            f"| {seed} | {reached if reached is not None else f'not within {limit}'} | {r['nonfinite_losses']} | "
            f"{t[20]} | {t[40]} | {t[80]} | {t[120]} | {r['seconds']} |"
        )
    counts = [runs[s]["converged_at_sequences"] for s in sorted(runs)]
    first5 = [c if c is not None else math.inf for c in counts[:5]]
    print()
    print(f"seeds: {len(runs)}; converged within the limit: {sum(c is not None for c in counts)}; "
          f"median over the first 5 seeds: {statistics.median(first5)}; median over all: "
          f"{statistics.median([c if c is not None else math.inf for c in counts])}; "
          f"non-finite losses in all runs: {sum(runs[s]['nonfinite_losses'] for s in runs)}")


if __name__ == "__main__":
    main(sys.argv[1:])
