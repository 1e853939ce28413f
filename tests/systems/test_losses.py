"""Losses chosen by the task: each loss on a hand-computed case, the system following the task, and two toy tasks that learn.

Sizes are distinct so a swapped axis breaks a test: B = 2, T = 3, C = 4 classes (categorical),
O = 2 outputs (regression).
"""

from __future__ import annotations

import math
import re

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.interfaces import SequenceModel, SequenceOutput
from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.systems import SequenceSystem
from mannkit.systems.losses import OBJECTIVES, masked_bce_loss, masked_cross_entropy_loss, masked_mse_loss, objective
from mannkit.tasks import Batch, CopyTask, MultiTask, SequenceTask
from mannkit.tasks.difficulty import Difficulty

class FixedLogits(SequenceModel):
    """Returns the same logits ``[B, T, O]`` for any input, times a learnable scale (so it can be trained)."""

    def __init__(self, logits: list) -> None:
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits))
        self.scale = torch.nn.Parameter(torch.ones(()))

    def bind(self, input_size: int, output_size: int) -> None:
        assert output_size == self.logits.shape[-1]

    def forward(self, x, record=False):
        return SequenceOutput(self.logits * self.scale, None)


# -- hand-computed losses ---------------------------------------------------------------------------
LN2, LN3 = math.log(2), math.log(3)
# B = 2, T = 3, C = 4. Scored: sequence 0 at steps 0 and 2, sequence 1 at step 1. Unscored steps hold
# logits of 100 on a wrong class and the id -1, so a leak of the mask shows as a loss near 100 or an error.
CE_LOGITS = [
    [[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0], [LN3, 0.0, 0.0, 0.0]],
    [[0.0, 100.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 100.0, 0.0]],
]
CE_TARGET = [[2, -1, 0], [-1, 1, 3]]
CE_MASK = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
# step (0, 0): uniform over 4 -> ln 4; step (0, 2): p(0) = 3 / (3 + 3) = 1/2 -> ln 2; step (1, 1): ln 4.
EXPECTED_CE = (2 * LN2 + LN2 + 2 * LN2) / 3
# arg-max: (0, 0) ties go to class 0 (wrong, target 2), (0, 2) class 0 (right), (1, 1) class 0 (wrong).

MSE_PRED = [[[1.0, 2.0], [50.0, 50.0], [0.0, 0.0]], [[0.5, -0.5], [9.0, 9.0], [3.0, 0.0]]]
MSE_TARGET = [[[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]]
MSE_MASK = [[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]
# scored squared errors: (1 + 4) + (0 + 1) + (0.25 + 0.25) + (4 + 0) = 10.5 over 4 steps x 2 outputs
EXPECTED_MSE = 10.5 / 8


def test_cross_entropy_on_a_hand_computed_case():
    loss = masked_cross_entropy_loss(torch.tensor(CE_LOGITS), torch.tensor(CE_TARGET), torch.tensor(CE_MASK))
    assert loss.item() == pytest.approx(EXPECTED_CE, rel=1e-6)


def test_mse_on_a_hand_computed_case():
    loss = masked_mse_loss(torch.tensor(MSE_PRED), torch.tensor(MSE_TARGET), torch.tensor(MSE_MASK))
    assert loss.item() == pytest.approx(EXPECTED_MSE, rel=1e-6)


def test_bce_on_a_hand_computed_case():
    logits, target, mask = torch.tensor([[[0.0, LN3]]]), torch.tensor([[[1.0, 0.0]]]), torch.ones(1, 1)
    assert masked_bce_loss(logits, target, mask).item() == pytest.approx(3 * LN2 / 2, rel=1e-6)  # (ln 2 + ln 4) / 2


def test_a_float_target_is_refused_by_cross_entropy():
    with pytest.raises(ShapeError, match=r"target has dtype torch.float32 but a categorical target holds class ids"):
        masked_cross_entropy_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3), torch.ones(2, 3))


def test_every_objective_has_its_headline_metric_first():
    assert {name: objective(name).metric_names for name in OBJECTIVES} == {
        "bce": ["bits_per_seq", "bit_errors_per_seq", "seq_accuracy"],
        "ce": ["seq_accuracy", "step_accuracy", "fine_accuracy"],
        "mse": ["mse"],
    }


# -- the system follows the task --------------------------------------------------------------------
class Declares(L.LightningDataModule):
    """A datamodule that declares a loss and serves one fixed batch."""

    def __init__(self, loss: str, batch: dict, output_size: int) -> None:
        super().__init__()
        self.loss, self.batch = loss, batch
        self.input_size, self.output_size = 4, output_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader([self.batch], batch_size=None)

    val_dataloader = predict_dataloader = train_dataloader

    def test_dataloader(self) -> DataLoader:
        return self.train_dataloader()


def _trainer(**overrides) -> L.Trainer:
    settings = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, max_steps=1,
    )
    return L.Trainer(**{**settings, **overrides})


FROZEN = {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.0}}  # logits stay as given


def _ce_data() -> Declares:
    batch = {"input": torch.zeros(2, 3, 4), "target": torch.tensor(CE_TARGET), "mask": torch.tensor(CE_MASK)}
    return Declares("ce", batch, 4)


def test_a_categorical_task_is_trained_and_scored_with_cross_entropy():
    losses = []

    class Record(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(outputs["loss"].item())

    model = SequenceSystem(FixedLogits(CE_LOGITS), optimizer=FROZEN)
    trainer = _trainer(callbacks=[Record()], limit_val_batches=1)
    trainer.fit(model, datamodule=_ce_data())
    assert model.hparams["loss"] == "ce" and model.objective.name == "ce"
    assert losses == [pytest.approx(EXPECTED_CE, rel=1e-6)]
    metrics = trainer.callback_metrics
    assert metrics["val/loss"].item() == pytest.approx(EXPECTED_CE, rel=1e-6)
    assert metrics["val/step_accuracy"].item() == pytest.approx(1 / 3)  # one of three scored steps right
    assert metrics["val/seq_accuracy"].item() == 0.0
    assert metrics["train/step_accuracy"].item() == pytest.approx(1 / 3)
    assert "val/bits_per_seq" not in metrics and "train/bits_per_seq" not in metrics
    trainer.test(model, datamodule=_ce_data())
    assert trainer.callback_metrics["test/step_accuracy"].item() == pytest.approx(1 / 3)


def test_categorical_predictions_are_class_ids():
    model = SequenceSystem(FixedLogits(CE_LOGITS), optimizer=FROZEN)
    out = _trainer().predict(model, datamodule=_ce_data())[0]
    assert set(out) == {"probabilities", "prediction", "step_errors"}
    assert out["prediction"].tolist() == [[0, 0, 0], [1, 0, 2]] and out["prediction"].dtype == torch.long
    assert out["step_errors"].tolist() == [1, 1]
    torch.testing.assert_close(out["probabilities"].sum(dim=2), torch.ones(2, 3))


def test_a_regression_task_is_trained_and_scored_with_mse():
    model = SequenceSystem(FixedLogits(MSE_PRED), optimizer=FROZEN)
    batch = {"input": torch.zeros(2, 3, 4), "target": torch.tensor(MSE_TARGET), "mask": torch.tensor(MSE_MASK)}
    trainer = _trainer(limit_val_batches=1)
    trainer.fit(model, datamodule=Declares("mse", batch, 2))
    assert trainer.callback_metrics["val/loss"].item() == pytest.approx(EXPECTED_MSE, rel=1e-6)
    assert trainer.callback_metrics["val/mse"].item() == pytest.approx(EXPECTED_MSE, rel=1e-6)
    out = model.predict_step(batch, 0)
    assert set(out) == {"prediction", "squared_error"}
    assert out["squared_error"].tolist() == pytest.approx([6.0, 4.5])


def test_an_explicit_loss_that_disagrees_with_the_task():
    model = SequenceSystem(FixedLogits(CE_LOGITS), loss="bce", optimizer=FROZEN)
    message = (
        "model.loss is 'bce' but the task Declares declares loss 'ce'; "
        "set model.loss to null to follow the task, or to 'ce'."
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        _trainer().fit(model, datamodule=_ce_data())


def test_an_explicit_loss_that_agrees_and_auto_are_accepted():
    for loss in ("ce", "auto"):
        model = SequenceSystem(FixedLogits(CE_LOGITS), loss=loss, optimizer=FROZEN)
        _trainer(limit_val_batches=0).fit(model, datamodule=_ce_data())
        assert model.objective.name == "ce"


def test_an_unknown_loss():
    with pytest.raises(ConfigError, match=r"^model\.loss is 'xent', not a known loss; use one of \['bce', 'ce', 'mse'\]"):
        SequenceSystem(FixedLogits(CE_LOGITS), loss="xent")


def test_a_task_declaring_an_unknown_loss_fails_at_class_creation():
    with pytest.raises(ConfigError, match=r"^Odd\.loss is 'hinge'; declare one of \['bce', 'ce', 'mse'\]\.$"):

        class Odd(SequenceTask):
            loss = "hinge"

            def generate(self, generator, batch_size, **difficulty):  # pragma: no cover
                raise NotImplementedError


def test_multitask_follows_its_main_task_and_refuses_mixed_losses():
    copy = CopyTask(bits=4, max_length=3)
    assert MultiTask(copy, [CopyTask(bits=4, max_length=2)], [0.5]).loss == "bce"
    with pytest.raises(ConfigError, match=r"^MultiTask: every task must declare the same loss but they declare CopyTask 'bce', EchoPrevious 'ce'"):
        MultiTask(copy, [EchoPrevious(classes=4)], [0.5])


# -- toy tasks that learn ---------------------------------------------------------------------------
class EchoPrevious(SequenceTask):
    """Echo the previous symbol: the input at step t is a one-hot of a random class (C classes), the target the class of step t-1.

    Steps ``1..T-1`` are scored; I = O = C; the target is ``[B, T]`` class ids (``loss = "ce"``).
    """

    loss = "ce"
    difficulty = (Difficulty("length", tag="len", tests="test_lengths", low=2),)

    def __init__(self, classes: int = 4, min_length: int = 5, max_length: int = 5, test_lengths: list[int] = [7], **kw) -> None:  # noqa: B006
        super().__init__(**kw)
        self.classes = classes
        self.set_difficulty(min_length=min_length, max_length=max_length, test_lengths=test_lengths)
        self.input_size = self.output_size = classes

    def generate(self, generator: torch.Generator, batch_size: int, min_length: int = 5, max_length: int = 5) -> Batch:
        T = int(torch.randint(min_length, max_length + 1, (1,), generator=generator))
        ids = torch.randint(0, self.classes, (batch_size, T), generator=generator)  # [B, T]
        target = torch.full((batch_size, T), -1, dtype=torch.long)
        target[:, 1:] = ids[:, :-1]
        mask = torch.ones(batch_size, T)
        mask[:, 0] = 0.0
        return {"input": torch.nn.functional.one_hot(ids, self.classes).float(), "target": target, "mask": mask}


class ScaledPrevious(SequenceTask):
    """Regress the previous input, doubled: input ``[B, T, 1]`` uniform in [-1, 1], target ``2 x_{t-1}`` from step 1 (``loss = "mse"``)."""

    loss = "mse"
    difficulty = (Difficulty("length", tag="len", tests="test_lengths", low=2),)

    def __init__(self, length: int = 5, **kw) -> None:
        super().__init__(**kw)
        self.set_difficulty(min_length=length, max_length=length, test_lengths=[length])
        self.input_size = self.output_size = 1

    def generate(self, generator: torch.Generator, batch_size: int, min_length: int = 5, max_length: int = 5) -> Batch:
        x = torch.rand(batch_size, max_length, 1, generator=generator) * 2 - 1  # [B, T, 1]
        target = torch.zeros_like(x)
        target[:, 1:] = 2 * x[:, :-1]
        mask = torch.ones(batch_size, max_length)
        mask[:, 0] = 0.0
        return {"input": x, "target": target, "mask": mask}


def _learns(task: SequenceTask, steps: int) -> tuple[float, float]:
    """The mean training loss of the first and of the last 10 steps of a seeded run."""
    losses = []

    class Record(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(outputs["loss"].item())

    torch.manual_seed(0)
    cell = MemoryCell(LSTMController(16), MatrixMemory(5, 3), [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])
    model = SequenceSystem(cell, optimizer={"class_path": "Adam", "init_args": {"lr": 1e-2}})
    _trainer(callbacks=[Record()], max_steps=steps, limit_val_batches=0).fit(model, datamodule=task)
    return sum(losses[:10]) / 10, sum(losses[-10:]) / 10


def test_a_categorical_toy_task_learns():
    first, last = _learns(EchoPrevious(classes=4, batch_size=16, train_batches=1000, seed=1), steps=120)
    assert first > 1.2  # about ln 4 = 1.39 at the start
    assert last < 0.5 * first


def test_a_regression_toy_task_learns():
    first, last = _learns(ScaledPrevious(batch_size=16, train_batches=1000, seed=1), steps=120)
    assert first > 0.8  # the target's variance is 4/3
    assert last < 0.3 * first


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_a_system_with_any_loss_pickles(name):
    """DDP spawn pickles the system, and with it its objective."""
    import pickle

    model = SequenceSystem(FixedLogits(CE_LOGITS), loss=name)
    assert pickle.loads(pickle.dumps(model)).objective == model.objective
