"""SpikeClip: a gradient far above the recent norms is scaled down to factor x their median."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch

from mannkit.callbacks import SpikeClip
from mannkit.core.errors import ConfigError


def _set(layer: torch.nn.Linear, *values: float) -> None:
    layer.weight.grad = torch.tensor([list(values)])


def test_nothing_is_clipped_until_the_window_is_full():
    clip, layer = SpikeClip(window=4, factor=2.0), torch.nn.Linear(2, 1, bias=False)
    for _ in range(3):
        _set(layer, 0.0, 1.0)
        assert clip.clip(layer.parameters()) == 1.0
    _set(layer, 0.0, 100.0)  # a spike while the window holds 3 of 4 norms: left alone
    assert clip.clip(layer.parameters()) == 1.0
    assert layer.weight.grad.tolist() == [[0.0, 100.0]]


def test_a_spike_is_scaled_to_factor_times_the_median_norm():
    clip, layer = SpikeClip(window=5, factor=3.0), torch.nn.Linear(2, 1, bias=False)
    for norm in (1.0, 2.0, 5.0, 2.0, 1.0):  # median 2
        _set(layer, 0.6 * norm, 0.8 * norm)
        clip.clip(layer.parameters())
    _set(layer, 30.0, 40.0)  # norm 50 > 3 x 2
    scale = clip.clip(layer.parameters())
    assert scale == pytest.approx(6.0 / 50.0)
    assert layer.weight.grad.tolist() == [[pytest.approx(3.6), pytest.approx(4.8)]]  # direction kept, norm 6
    assert clip.clipped == 1
    _set(layer, 0.6 * 5.0, 0.8 * 5.0)  # norm 5 < 3 x median(2, 5, 2, 1, 50) = 6: untouched
    assert clip.clip(layer.parameters()) == 1.0


def test_the_norm_is_over_all_parameters_together():
    clip, a, b = SpikeClip(window=1, factor=2.0), torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0]), torch.tensor([4.0])  # total norm 5
    clip.clip([a, b])
    a.grad, b.grad = torch.tensor([30.0]), torch.tensor([40.0])  # total 50 > 2 x 5
    assert clip.clip([a, b]) == pytest.approx(0.2)
    assert (a.grad.item(), b.grad.item()) == (pytest.approx(6.0), pytest.approx(8.0))


def test_non_finite_norms_are_not_remembered():
    clip, layer = SpikeClip(window=2, factor=2.0), torch.nn.Linear(1, 1, bias=False)
    _set(layer, math.nan)
    assert clip.clip(layer.parameters()) == 1.0
    assert list(clip.norms) == []


def test_state_survives_a_checkpoint():
    clip, layer = SpikeClip(window=3, factor=2.0), torch.nn.Linear(1, 1, bias=False)
    for g in (1.0, 2.0, 3.0):
        _set(layer, g)
        clip.clip(layer.parameters())
    resumed = SpikeClip(window=3, factor=2.0)
    resumed.load_state_dict(clip.state_dict())
    _set(layer, 40.0)
    assert resumed.clip(layer.parameters()) == pytest.approx(4.0 / 40.0)  # median 2 of the saved window


@pytest.mark.parametrize(("window", "factor"), [(0, 10.0), (True, 10.0), (2.5, 10.0), (100, 1.0), (100, "big")])
def test_bad_settings_are_one_sentence(window, factor):
    with pytest.raises(ConfigError, match=r"^SpikeClip: (window|factor) must be .*; use e\.g\. \d+\.$"):
        SpikeClip(window=window, factor=factor)


class _Spiky(pl.LightningModule):
    """A one-weight model whose loss gives gradient 1 each step, and 1000 at step 6."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[float] = []

    def training_step(self, batch, batch_idx):  # noqa: ANN001
        return self.w.sum() * (1000.0 if self.global_step == 6 else 1.0)

    def on_before_optimizer_step(self, optimizer) -> None:  # noqa: ANN001  (runs after the callbacks' hook)
        self.seen.append(float(self.w.grad))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return torch.utils.data.DataLoader([0] * 8, batch_size=None)


def test_in_a_trainer_the_optimizer_sees_the_clipped_gradient():
    model = _Spiky()
    trainer = pl.Trainer(
        max_steps=8, callbacks=[SpikeClip(window=5, factor=4.0)], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model)
    assert model.seen == [1.0] * 6 + [4.0, 1.0]


def test_its_figures_are_logged_only_on_the_steps_the_logger_writes(tmp_path, monkeypatch):
    """The clip acts at every step; the two figures go through self.log only every log_every_n_steps."""
    from lightning.pytorch.loggers import CSVLogger

    model, logged = _Spiky(), []
    original = model.log
    monkeypatch.setattr(model, "log", lambda name, *a, **k: logged.append((model.global_step, name)) or original(name, *a, **k))
    trainer = pl.Trainer(
        max_steps=8, log_every_n_steps=3, callbacks=[SpikeClip(window=5, factor=4.0)], logger=CSVLogger(tmp_path),
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model)
    assert model.seen == [1.0] * 6 + [4.0, 1.0]  # clipped at step 7 as without a logger
    assert sorted({s for s, n in logged if n == "train/spike_clip_scale"}) == [2, 5]
