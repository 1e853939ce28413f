"""Converged copy models collapsed (issue 10, item 16): the cause, on a toy, and the presets' fix.

Measured on the presets (benchmarks/RESULTS.md, "Converged models stay converged"): after convergence
the gradient norm falls 100-1000x and Adam's second moment v falls with it; then one rare batch gives a
gradient 2000x the recent ones, meets a tiny v, and moves every weight it touches by about 3 lr per step
for ten steps, which threw the model back to chance. ``SpikeClip`` scales such a gradient down to
``factor`` x the median of the recent norms before Adam sees it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from mannkit.callbacks import SpikeClip

ROOT = Path(__file__).resolve().parents[2]
COPY_PRESETS = sorted(  # every preset of the copy task (the sparse DNC's is not measured yet)
    p for p in (ROOT / "configs").glob("*/*.yaml")
    if (yaml.safe_load(p.read_text()).get("data") or {}).get("class_path") == "CopyTask" and "sparse" not in p.stem
)


def _move_after_a_spike(clip: SpikeClip | None) -> float:
    """How far (in units of lr, mean over weights) ten Adam steps move the weights after one spike."""
    generator = torch.Generator().manual_seed(0)
    weights = torch.nn.Parameter(torch.zeros(64))
    lr = 1e-3
    optimizer = torch.optim.Adam([weights], lr=lr)

    def step(scale: float) -> None:
        weights.grad = scale * torch.randn(64, generator=generator)
        if clip is not None:
            clip.clip([weights])
        optimizer.step()

    for _ in range(500):  # learning: gradients of 0.1 per weight
        step(0.1)
    for _ in range(15000):  # converged: 1000x smaller, long enough for v to follow
        step(1e-4)
    start = weights.detach().clone()
    step(1.0)  # one rare large gradient, 10,000x the recent ones
    for _ in range(10):
        step(1e-4)
    return ((weights.detach() - start) / lr).abs().mean().item()


def test_one_spike_moves_a_converged_adam_model_far_unless_clipped():
    unclipped, clipped = _move_after_a_spike(None), _move_after_a_spike(SpikeClip(window=100, factor=10.0))
    assert unclipped > 15  # about 3 lr a step for ten steps
    assert clipped < unclipped / 3  # the spike reaches Adam as 10x a recent gradient: about 0.5 lr a step
@pytest.mark.parametrize("preset", COPY_PRESETS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_copy_presets_clip_gradient_spikes(preset: Path):
    callbacks = yaml.safe_load(preset.read_text())["trainer"]["callbacks"]
    assert any(c["class_path"] == "SpikeClip" for c in callbacks), f"{preset}: without SpikeClip, Adam collapses after convergence"


def test_the_copy_presets_are_found():
    names = {f"{p.parent.name}/{p.name}" for p in COPY_PRESETS}
    assert names >= {"ntm/copy.yaml", "ntm/copy_batch2.yaml", "ntm/copy_curriculum.yaml", "dnc/copy.yaml", "mixes/gru_ntm_copy.yaml"}


def _preset(name: str) -> dict:
    return yaml.safe_load((ROOT / "configs" / name).read_text())


@pytest.mark.parametrize("name", ["dnc/copy.yaml", "dnc/copy_sparse.yaml"])
def test_the_dnc_copy_presets_train_with_amsgrad_and_without_free_gates(name: str):
    model = _preset(name)["model"]["init_args"]
    assert model["optimizer"]["init_args"].get("amsgrad") is True
    write = next(h for h in model["core"]["init_args"]["heads"] if h["class_path"] == "DNCWriteHead")
    assert write["init_args"]["free_gates"] is False  # freed slots were overwritten: whole sequences recalled wrong


NTM_LIKE_COPY = ["ntm/copy.yaml", "ntm/copy_batch2.yaml", *(f"mixes/{p.name}" for p in sorted((ROOT / "configs" / "mixes").glob("*copy*.yaml")))]


@pytest.mark.parametrize("name", [*NTM_LIKE_COPY, "ntm/copy_curriculum.yaml"])
def test_the_ntm_copy_presets_train_at_batch_2(name: str):
    """At batch 32, 3 of 5 seeds of ntm/copy.yaml had not learned copy after 11,750 steps; at batch 2 all 5 did by 4,000."""
    data = _preset(name)["data"]["init_args"]
    assert data["batch_size"] == 2 and data["val_batches"] * data["batch_size"] >= 80


@pytest.mark.parametrize("name", NTM_LIKE_COPY)
def test_the_ntm_copy_presets_lower_the_rate_once_converged(name: str):
    callbacks = {c["class_path"]: c.get("init_args", {}) for c in _preset(name)["trainer"]["callbacks"]}
    assert callbacks["LowerLROnTarget"] == {"monitor": "val/bits_per_seq", "threshold": 1.0, "factor": 0.1}


def test_the_curriculum_lowers_the_rate_at_its_last_level_only():
    """Seed 5 of copy_curriculum.yaml collapsed to chance at full rate after converging at length 20."""
    preset = _preset("ntm/copy_curriculum.yaml")
    callbacks = {c["class_path"]: c.get("init_args", {}) for c in preset["trainer"]["callbacks"]}
    maximum = callbacks["Curriculum"]["maximum"]
    assert callbacks["LowerLROnTarget"] == {"monitor": "val/bits_per_seq", "threshold": 1.0, "factor": 0.1, "level": f"max_length>={maximum}"}
    names = [c["class_path"] for c in preset["trainer"]["callbacks"]]
    assert names.index("Curriculum") < names.index("LowerLROnTarget")
