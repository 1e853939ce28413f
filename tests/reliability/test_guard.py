"""Never save non-finite weights (issue 10 item 4) and the divergence guard (item 5)."""

import re
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from mannkit.callbacks import AtomicCheckpointIO, Checkpoint, TrainingGuard
from mannkit.callbacks.checkpoint_io import atomic_save, non_finite_tensors, read_checkpoint
from mannkit.callbacks.guard import stop_if_not_finite, stop_message
from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError, TrainingError
from mannkit.nn import LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.nn.addressing import ContentAddressing
from mannkit.systems import SequenceSystem
from mannkit.tasks import CopyTask


def _fit(tmp_path: Path, *callbacks: Callback, max_steps: int = 6) -> None:
    """A tiny NTM-like fit, validating (and checkpointing) after every step, as configs/ntm/copy_curriculum.yaml does."""
    torch.manual_seed(0)
    model = SequenceSystem(MemoryCell(LSTMController(5), MatrixMemory(7, 3), [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())]))
    data = CopyTask(bits=2, min_length=1, max_length=2, test_lengths=[2], batch_size=2, train_batches=20, val_batches=1, test_batches=1)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, max_steps=max_steps,
        val_check_interval=1, check_val_every_n_epoch=None, num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
        callbacks=[*callbacks, Checkpoint(dirpath=tmp_path, save_last=True, monitor="val/loss", mode="min", save_top_k=1)],
    )
    trainer.fit(model, datamodule=data)


class Overflow(Callback):
    """After the optimizer step of step ``at`` one weight is inf, as an overflowing update leaves it."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.at:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("inf")


def _all_finite(folder: Path) -> None:
    files = sorted(folder.glob("*.ckpt"))
    assert files
    for path in files:
        assert not non_finite_tensors(read_checkpoint(path)["state_dict"]), path


def test_weights_made_non_finite_by_a_step_stop_training_before_any_save(tmp_path):
    with pytest.raises(TrainingError) as info:
        _fit(tmp_path, Overflow(at=3), TrainingGuard())
    last = tmp_path / "last.ckpt"
    assert str(info.value) == (
        f"the optimizer step made weights NaN or inf at step 3; the last good checkpoint is {last} and is left intact; "
        "lower the learning rate or set trainer.gradient_clip_val."
    )
    assert torch.load(last, weights_only=True)["global_step"] == 2
    _all_finite(tmp_path)


def test_without_the_guard_the_checkpoint_refuses_non_finite_weights(tmp_path):
    with pytest.raises(TrainingError, match=r"^the weights hold NaN or inf, so .*\.ckpt was not written at step 3; the last good "
                       rf"checkpoint is {re.escape(str(tmp_path))}/.*\.ckpt and is left intact; lower the learning rate"):
        _fit(tmp_path, Overflow(at=3))
    _all_finite(tmp_path)


def test_a_checkpoint_is_named_only_after_checking_its_weights(tmp_path):
    broken = tmp_path / "last.ckpt"
    atomic_save({"state_dict": {"w": torch.tensor([float("inf")])}}, broken)  # written by an older, unguarded run
    trainer = SimpleNamespace(checkpoint_callbacks=[SimpleNamespace(last_model_path=str(broken), best_model_path="", best_k_models={})])
    assert stop_message(trainer, "the training loss became nan", 7) == (
        "the training loss became nan at step 7; no checkpoint with finite weights was written; "
        "lower the learning rate or set trainer.gradient_clip_val."
    )
    good = tmp_path / "epoch=0-step=5.ckpt"
    atomic_save({"state_dict": {"w": torch.tensor([1.0])}}, good)
    trainer.checkpoint_callbacks[0].best_model_path = str(good)
    assert f"the last good checkpoint is {good} and is left intact" in stop_message(trainer, "x", 7)


# -- divergence ---------------------------------------------------------------------------------------
def test_a_loss_above_max_loss_stops_training(tmp_path):
    message = (r"^the training loss reached 0\.\d+, above max_loss 0\.01 at step 0; no checkpoint was written yet; lower the "
               r"learning rate or set trainer.gradient_clip_val, or loosen TrainingGuard \(max_loss, growth; enabled: false "
               r"turns it off\)\.$")
    with pytest.raises(TrainingError, match=message):
        _fit(tmp_path, TrainingGuard(max_loss=0.01))


def test_the_default_guard_lets_a_normal_run_train(tmp_path):
    guard = TrainingGuard()
    _fit(tmp_path, guard, max_steps=4)
    assert len(guard.recent) == 4 and torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 4


def _trainer(world_size: int = 1, others_ok: bool = True) -> SimpleNamespace:
    strategy = SimpleNamespace(reduce_boolean_decision=lambda ok, all=True: ok and others_ok)
    return SimpleNamespace(global_step=9, world_size=world_size, strategy=strategy, checkpoint_callbacks=[])


def _feed(guard: TrainingGuard, losses: list[float], trainer: SimpleNamespace | None = None) -> None:
    for value in losses:
        guard.on_before_backward(trainer or _trainer(), None, torch.tensor(value))


def test_growth_over_the_recent_minimum_stops_training():
    guard = TrainingGuard(max_loss=None, growth=1000.0, window=3)
    _feed(guard, [1.0, 0.5, 0.6, 499.0])
    with pytest.raises(TrainingError, match=r"^the training loss reached 501, more than growth 1000 times its recent minimum 0\.5 at step 9;"):
        _feed(guard, [501.0])


def test_the_minimum_is_taken_over_the_window_and_floored():
    guard = TrainingGuard(max_loss=None, growth=1000.0, window=2, floor=1e-3)
    _feed(guard, [1e-7, 0.9, 0.8])  # below 1000 x max(1e-7, floor 1e-3) = 1
    _feed(guard, [700.0])  # 1e-7 left the window of 2: below 1000 x 0.8
    with pytest.raises(TrainingError, match="more than growth 1000 times its recent minimum 0.8 at step 9"):
        _feed(guard, [801.0])


def test_the_guard_can_be_switched_off():
    _feed(TrainingGuard(max_loss=1.0, enabled=False), [1e30])
    _feed(TrainingGuard(max_loss=None, growth=None), [1.0, 1e30])


def test_ranks_stop_together_when_another_rank_diverged():
    with pytest.raises(TrainingError, match="^the training loss diverged on another process at step 9;"):
        _feed(TrainingGuard(), [0.5], _trainer(world_size=2, others_ok=False))
    _feed(TrainingGuard(), [0.5], _trainer(world_size=2, others_ok=True))


def test_the_nan_stop_asks_the_other_ranks():
    module = SimpleNamespace(_trainer=_trainer(world_size=2, others_ok=False), global_step=4)
    with pytest.raises(TrainingError, match="^the training loss became 0.5 at step 4; no checkpoint was written yet;"):
        stop_if_not_finite(module, torch.tensor(0.5))  # finite here, NaN on another rank


def test_the_guard_state_survives_a_resume():
    guard = TrainingGuard(window=3)
    _feed(guard, [3.0, 2.0, 1.0, 0.5])
    restored = TrainingGuard(window=3)
    restored.load_state_dict(guard.state_dict())
    assert list(restored.recent) == [2.0, 1.0, 0.5]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_loss": -1.0}, r"TrainingGuard: max_loss must be a positive number or null, got -1\.0; e\.g\. max_loss: 1\.0e\+6\."),
        ({"growth": 1.0}, r"TrainingGuard: growth must be above 1, got 1\.0;"),
        ({"window": 0}, r"TrainingGuard: window must be a positive integer, got 0;"),
        ({"floor": 0.0}, r"TrainingGuard: floor must be above 0, got 0\.0;"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainingGuard(**kwargs)
