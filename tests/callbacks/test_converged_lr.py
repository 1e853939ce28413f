"""LowerLROnTarget: the learning rate drops once, when the monitored validation metric meets its target."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from mannkit.callbacks import LowerLROnTarget
from mannkit.core.errors import ConfigError


class _Falling(pl.LightningModule):
    """Validation logs ``val/cost`` = 4, 2, 1, 0.5, ... (halving at each validation); two steps per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.validations = 0
        self.rates: list[float] = []

    def training_step(self, batch, batch_idx):  # noqa: ANN001
        self.rates.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return self.w.sum()

    def validation_step(self, batch, batch_idx):  # noqa: ANN001
        self.log("val/cost", 8.0 / 2 ** (self.validations + 1), batch_size=1)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.validations += 1

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return torch.utils.data.DataLoader([0] * 2, batch_size=None)

    val_dataloader = train_dataloader


def _fit(model: pl.LightningModule, callback: LowerLROnTarget, steps: int = 8) -> None:
    pl.Trainer(
        max_steps=steps, callbacks=[callback], logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=1,
    ).fit(model)


def test_the_rate_drops_once_when_the_target_is_met():
    model, callback = _Falling(), LowerLROnTarget(monitor="val/cost", threshold=1.0, factor=0.1)
    _fit(model, callback)
    # validations after steps 2, 4, 6, 8 log 4, 2, 1 (not below 1), 0.5: the drop comes after the last step
    assert model.rates == [0.01] * 8
    assert callback.lowered_at == 8
    model, callback = _Falling(), LowerLROnTarget(monitor="val/cost", threshold=2.5, factor=0.1)
    _fit(model, callback)  # 4 (step 2), 2 < 2.5 (step 4): every later step at 0.001, and no second drop at 1, 0.5
    assert model.rates == pytest.approx([0.01] * 4 + [0.001] * 4)
    assert callback.lowered_at == 4


def test_max_mode_and_the_saved_flag():
    callback = LowerLROnTarget(monitor="val/accuracy", threshold=0.9, factor=0.5, mode="max")
    assert callback.met(0.95) and not callback.met(0.9)
    resumed = LowerLROnTarget(monitor="val/accuracy", threshold=0.9, factor=0.5, mode="max")
    callback.lowered_at = 120
    resumed.load_state_dict(callback.state_dict())
    assert resumed.lowered_at == 120  # a resumed run does not lower the rate a second time


def test_an_unlogged_monitor_names_the_logged_ones():
    with pytest.raises(ConfigError, match=r"^LowerLROnTarget: the monitored metric 'val/bits' was not logged; set monitor to one of \['val/cost'\]\.$"):
        _fit(_Falling(), LowerLROnTarget(monitor="val/bits"), steps=2)


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"factor": 1.0}, "factor"), ({"factor": 0}, "factor"), ({"mode": "lowest"}, "mode"), ({"threshold": float("nan")}, "threshold")]
)
def test_bad_settings_are_one_sentence(kwargs, field):
    with pytest.raises(ConfigError, match=rf"^LowerLROnTarget: {field} must be .*; use .*\.$"):
        LowerLROnTarget(**kwargs)


def test_two_drops_with_their_own_thresholds_and_checkpoints(tmp_path):
    model = _Falling()
    first = LowerLROnTarget(monitor="val/cost", threshold=2.5, factor=0.1)
    second = LowerLROnTarget(monitor="val/cost", threshold=0.75, factor=0.5)
    trainer = pl.Trainer(
        max_steps=8, callbacks=[first, second], logger=False, default_root_dir=tmp_path, enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model)  # 4, 2 (first drop after step 4), 1, 0.5 (second drop after step 8)
    assert model.rates == pytest.approx([0.01] * 4 + [0.001] * 4)
    assert (first.lowered_at, second.lowered_at) == (4, 8)
    saved = torch.load(next(tmp_path.rglob("*.ckpt")), weights_only=True)["callbacks"]
    assert sorted(state["lowered_at"] for key, state in saved.items() if key.startswith("LowerLROnTarget")) == [4, 8]


class _Levels(pl.LightningDataModule):
    """A task whose ``max_length`` a test raises by hand; one batch per loader."""

    difficulty_attributes = ("max_length",)

    def __init__(self) -> None:
        super().__init__()
        self.max_length = 5

    def train_dataloader(self):
        return torch.utils.data.DataLoader([0] * 2, batch_size=None)

    val_dataloader = train_dataloader


class _RaiseAfterValidation(pl.Callback):
    """Raises ``max_length`` by 5 at the end of every validation, as Curriculum does (listed before the drop)."""

    def on_validation_end(self, trainer, pl_module):  # noqa: ANN001
        if not trainer.sanity_checking:
            trainer.datamodule.max_length += 5


def test_level_counts_only_validations_run_at_the_last_level():
    # val/cost 4, 2, 1, 0.5 at lengths 5, 10, 15, 20 (raised after each validation): below 2.5 from the
    # second validation, but only the fourth ran at length >= 20, so the drop comes after step 8
    model, data = _Falling(), _Levels()
    callback = LowerLROnTarget(monitor="val/cost", threshold=2.5, factor=0.1, level="max_length>=20")
    pl.Trainer(
        max_steps=10, callbacks=[_RaiseAfterValidation(), callback], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=1,
    ).fit(model, datamodule=data)
    assert callback.lowered_at == 8
    assert model.rates == pytest.approx([0.01] * 8 + [0.001] * 2)
    # without level the same run drops at the second validation, as before
    model, data = _Falling(), _Levels()
    callback = LowerLROnTarget(monitor="val/cost", threshold=2.5, factor=0.1)
    pl.Trainer(
        max_steps=10, callbacks=[_RaiseAfterValidation(), callback], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=1,
    ).fit(model, datamodule=data)
    assert callback.lowered_at == 4


def test_a_level_keeps_old_state_keys_and_gets_its_own():
    plain = LowerLROnTarget(monitor="val/cost", threshold=1.0, factor=0.1)
    assert plain.state_key == "LowerLROnTarget{'monitor': 'val/cost', 'threshold': 1.0, 'factor': 0.1, 'mode': 'min'}"
    assert LowerLROnTarget(monitor="val/cost", level="max_length>=20").state_key != plain.state_key


@pytest.mark.parametrize("level", ["max_length=20", "max_length>=", ">=20", "max length>=20", "max_length>=inf", 20])
def test_a_malformed_level_is_one_sentence(level):
    with pytest.raises(ConfigError, match=r"^LowerLROnTarget: level must read ATTRIBUTE>=NUMBER, got .*; use e\.g\. \"max_length>=20\" or leave it out\.$"):
        LowerLROnTarget(level=level)


def test_a_level_the_task_lacks_names_its_attributes():
    callback = LowerLROnTarget(monitor="val/cost", level="max_depth>=3")
    with pytest.raises(ConfigError, match=r"^LowerLROnTarget: level 'max_depth>=3' names 'max_depth', which is not a number on the task _Levels; name one of its difficulty attributes \['max_length'\] or leave level out\.$"):
        pl.Trainer(max_steps=1, callbacks=[callback], logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False).fit(_Falling(), datamodule=_Levels())
