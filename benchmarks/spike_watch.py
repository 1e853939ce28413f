"""A callback that writes, at every optimizer step, the training loss, the total gradient norm, the three
parameters with the largest gradient norm, and the largest |g| / sqrt(v) over Adam's state (before the step).

It recorded the DNC copy collapse of benchmarks/RESULTS.md ("Converged models stay converged"):

    cd benchmarks && OMP_NUM_THREADS=1 PYTHONPATH=. mannkit fit --config ../configs/dnc/copy.yaml \\
        --trainer.max_steps 1550 --trainer.callbacks+=spike_watch.SpikeWatch \\
        --trainer.callbacks.path out/dnc_s1_spikes.jsonl --trainer.callbacks.start 1300

(with the preset's optimizer set back to plain Adam and without SpikeClip, to see the collapse).
One JSON line per step from ``start`` on.
"""

from __future__ import annotations

import json
import math
from typing import Any

from lightning.pytorch.callbacks import Callback


class SpikeWatch(Callback):
    def __init__(self, path: str = "spikes.jsonl", start: int = 0) -> None:
        self.path, self.start, self.record, self.file = path, start, {}, None

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        self.record = {"step": trainer.global_step}
        if trainer.global_step < self.start:
            return
        norms = {n: p.grad.norm().item() for n, p in pl_module.named_parameters() if p.grad is not None}
        ratios = [
            (p.grad.abs() / (optimizer.state[p]["exp_avg_sq"].sqrt() + 1e-8)).max().item()
            for p in pl_module.parameters()
            if p.grad is not None and "exp_avg_sq" in optimizer.state.get(p, {})
        ]
        self.record.update(
            gnorm=math.sqrt(sum(v * v for v in norms.values())),
            top=[(n, round(v, 4)) for n, v in sorted(norms.items(), key=lambda kv: -kv[1])[:3]],
            max_g_over_sqrtv=max(ratios) if ratios else None,
        )

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step <= self.start:
            return
        self.record["loss"] = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
        self.record["length"] = int(batch["input"].shape[1])
        if self.file is None:
            self.file = open(self.path, "a")  # noqa: SIM115  (kept open for the run)
        self.file.write(json.dumps(self.record) + "\n")
        self.file.flush()
