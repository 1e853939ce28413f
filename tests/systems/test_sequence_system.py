"""SequenceSystem: the masked loss, sizes taken from the task, shape and config errors, NaN handling, optimizers, predict.

Sizes are distinct so a swapped axis breaks a test: bits W = 5 (I = 6, O = 5), controller H = 7,
memory N = 11 slots of W = 3.
"""

import math
import re

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError, ShapeError, TrainingError
from mannkit.core.interfaces import SequenceModel, SequenceOutput
from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.systems import SequenceSystem
from mannkit.tasks import CopyTask

BITS, I, O = 5, 6, 5


def _cell() -> MemoryCell:
    return MemoryCell(LSTMController(7), MatrixMemory(11, 3), [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])


def _task(**overrides) -> CopyTask:
    settings = dict(bits=BITS, min_length=1, max_length=3, test_lengths=[3], batch_size=3, train_batches=4, val_batches=1, test_batches=1)
    return CopyTask(**{**settings, **overrides})


def _trainer(**overrides) -> L.Trainer:
    settings = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, max_steps=1,
    )
    return L.Trainer(**{**settings, **overrides})


# -- the loss --------------------------------------------------------------------------------
class FixedLogits(SequenceModel):
    """Returns the same logits ``[B, T, O]`` for any input, times a learnable scale (so it can be trained)."""

    def __init__(self, logits: list) -> None:
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits))
        self.scale = nn.Parameter(torch.ones(()))

    def bind(self, input_size: int, output_size: int) -> None:
        assert output_size == self.logits.shape[-1]

    def forward(self, x, record=False):
        assert x.shape[:2] == self.logits.shape[:2]
        return SequenceOutput(self.logits * self.scale, None)


LN2, LN3 = math.log(2), math.log(3)
# B = 2, T = 3, O = 2. Sequence 0 is scored at step 0 only, sequence 1 at steps 1 and 2. Unscored
# steps hold logits of +-100 on the wrong side, so any leak of the mask shows as a loss near 100.
LOGITS = [
    [[0.0, LN3], [100.0, -100.0], [-100.0, 100.0]],
    [[-100.0, 100.0], [0.0, 0.0], [LN3, -LN3]],
]
TARGET = [
    [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]],
    [[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]],
]
MASK = [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
# BCE(z, y) = -y log s(z) - (1 - y) log(1 - s(z)), s(ln 3) = 3/4:
#   seq 0, step 0: BCE(0, 1) + BCE(ln 3, 0) = ln 2 + ln 4                       = 3 ln 2
#   seq 1, step 1: BCE(0, 1) + BCE(0, 1)     = 2 ln 2
#   seq 1, step 2: BCE(ln 3, 1) + BCE(-ln 3, 0) = 2 ln(4/3)
# The loss averages over the 3 scored steps x 2 bits (not per sequence, not over B*T*O).
EXPECTED_LOSS = (5 * LN2 + 2 * math.log(4 / 3)) / 6
# Bits per sequence (nats / ln 2), averaged over the two sequences.
EXPECTED_BITS = (3 + 2 + 2 * math.log2(4 / 3)) / 2


def _loader(batch: dict) -> DataLoader:
    """A loader that yields ``batch`` once (the items already are whole batches)."""
    return DataLoader([batch], batch_size=None)


def _fixed_batch() -> dict:
    return {"input": torch.zeros(2, 3, 4), "target": torch.tensor(TARGET), "mask": torch.tensor(MASK)}


def test_masked_bce_loss_matches_a_hand_computation():
    losses = []

    class Record(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(outputs["loss"].item())

    # SGD with lr 0 keeps the logits fixed, so validation after the step sees the same numbers
    model = SequenceSystem(
        FixedLogits(LOGITS), input_size=4, output_size=2,
        optimizer={"class_path": "torch.optim.SGD", "init_args": {"lr": 0.0}},
    )
    trainer = _trainer(callbacks=[Record()], limit_val_batches=1)
    trainer.fit(model, train_dataloaders=_loader(_fixed_batch()), val_dataloaders=_loader(_fixed_batch()))
    assert losses == [pytest.approx(EXPECTED_LOSS, rel=1e-6)]
    assert trainer.callback_metrics["val/loss"].item() == pytest.approx(EXPECTED_LOSS, rel=1e-6)
    assert trainer.callback_metrics["val/bits_per_seq"].item() == pytest.approx(EXPECTED_BITS, rel=1e-6)
    # logits > 0 predicts 1: seq 0 gets both scored bits wrong, seq 1 both bits of step 1 (step 2 is right)
    assert trainer.callback_metrics["val/bit_errors_per_seq"].item() == 2.0


# -- sizes from the task ---------------------------------------------------------------------
def test_sizes_come_from_the_task_before_the_optimizer_is_built():
    seen = {}

    class Record(Callback):
        def on_fit_start(self, trainer, pl_module):
            optimized = sum(p.numel() for group in trainer.optimizers[0].param_groups for p in group["params"])
            seen.update(sizes=(pl_module.input_size, pl_module.output_size), optimized=optimized,
                        total=sum(p.numel() for p in pl_module.parameters()))

    model = SequenceSystem(_cell())
    assert (model.input_size, model.output_size) == (None, None)
    assert not model.core.is_bound
    trainer = _trainer(callbacks=[Record()])
    trainer.fit(model, datamodule=_task())
    assert seen["sizes"] == (I, O)
    assert seen["optimized"] == seen["total"] > 0  # every parameter existed when the optimizer was made
    assert (model.hparams["input_size"], model.hparams["output_size"]) == (I, O)
    assert model(torch.zeros(2, 3, I)).logits.shape == (2, 3, O)


def test_explicit_sizes_that_disagree_with_the_task():
    model = SequenceSystem(_cell(), input_size=I + 1, output_size=O)
    message = (
        f"the model was built for {I + 1} inputs and {O} outputs per step but the task CopyTask gives {I} and {O}; "
        "use the task settings the model was trained with."
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        _trainer().fit(model, datamodule=_task())


def test_only_one_explicit_size():
    with pytest.raises(ConfigError, match=r"model\.output_size is None but must be a positive integer; leave both sizes null"):
        SequenceSystem(_cell(), input_size=I)


def test_no_sizes_and_no_task():
    model = SequenceSystem(_cell())
    with pytest.raises(ConfigError, match=r"model\.input_size is not set and there is no task to take it from"):
        _trainer().fit(model, train_dataloaders=_loader(_task().example_batch(2)))


# -- batch shapes ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, shape, message",
    [
        ("input", (2, 3, I + 1), rf"batch input has shape \[2, 3, {I + 1}\] but \[B, T, {I}\] was expected; use the same task settings"),
        ("target", (2, 3, O - 1), rf"batch target has shape \[2, 3, {O - 1}\] but \[2, 3, {O}\] was expected"),
        ("mask", (2, 4), r"batch mask has shape \[2, 4\] but \[2, 3\] was expected"),
    ],
)
def test_a_batch_of_the_wrong_shape(key, shape, message):
    model = SequenceSystem(_cell(), input_size=I, output_size=O)
    batch = {"input": torch.zeros(2, 3, I), "target": torch.zeros(2, 3, O), "mask": torch.ones(2, 3)}
    batch[key] = torch.zeros(shape)
    with pytest.raises(ShapeError, match=message):
        model.predict_step(batch, 0)


def test_a_question_answering_batch_is_refused_in_one_sentence():
    """A bAbI batch (story/question/answer) given to SequenceSystem in plain Python, not only through the CLI."""
    model = SequenceSystem(_cell(), input_size=I, output_size=O)
    batch = {"story": torch.zeros(2, 4, 3, dtype=torch.long), "question": torch.zeros(2, 3, dtype=torch.long)}
    with pytest.raises(ConfigError, match=r"SequenceSystem got a batch without 'input', 'target', 'mask' .*use QASystem"):
        model.predict_step(batch, 0)


# -- NaN in training -------------------------------------------------------------------------
def test_nan_loss_names_the_step_and_keeps_the_last_checkpoint(tmp_path):
    nan_step = 3
    snapshot = {}

    class Poison(Callback):
        """At the start of step ``nan_step`` (after the checkpoint of step ``nan_step`` was written) every weight becomes NaN."""

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == nan_step:
                snapshot.update({k: v.clone() for k, v in pl_module.state_dict().items()})
                with torch.no_grad():
                    for p in pl_module.parameters():
                        p.fill_(float("nan"))

    torch.manual_seed(0)
    model = SequenceSystem(_cell())
    checkpoints = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1)
    trainer = _trainer(callbacks=[Poison(), checkpoints], enable_checkpointing=True, max_steps=nan_step + 2)
    kept = tmp_path / f"epoch=0-step={nan_step}.ckpt"
    message = f"the training loss became nan at step {nan_step}; the last good checkpoint is {kept} and is left intact"
    with pytest.raises(TrainingError, match=re.escape(message)):
        trainer.fit(model, datamodule=_task())

    assert kept.is_file()
    reloaded = SequenceSystem.load_from_checkpoint(kept, weights_only=True)
    weights = reloaded.state_dict()
    assert weights.keys() == snapshot.keys()
    for name, value in weights.items():
        assert torch.isfinite(value).all(), name
        torch.testing.assert_close(value, snapshot[name], rtol=0, atol=0, msg=name)


def test_nan_before_any_checkpoint():
    model = SequenceSystem(_cell(), input_size=I, output_size=O)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    message = "the training loss became nan at step 0; no checkpoint was written yet; lower the learning rate or set trainer.gradient_clip_val."
    with pytest.raises(TrainingError, match=f"^{re.escape(message)}$"):
        _trainer().fit(model, datamodule=_task())


# -- optimizers ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "option, config, message",
    [
        ("optimizer", {"class_path": "torch.optim.Adamm"},
         r"^model\.optimizer\.class_path: unknown class 'torch\.optim\.Adamm'; did you mean 'Adam'\? Give a class of torch\.optim "
         r"by its name or a full dotted class path\.$"),
        ("optimizer", {"class_path": "mannkit.Adam"},
         r"^model\.optimizer\.class_path: unknown class 'mannkit\.Adam'; did you mean 'Adam'\? Give a class of torch\.optim"),
        ("optimizer", {"class_path": "Zzz"}, r"^model\.optimizer\.class_path: unknown class 'Zzz'; give a class of torch\.optim by"),
        ("lr_scheduler", {"class_path": "StepLRR"},
         r"^model\.lr_scheduler\.class_path: unknown class 'StepLRR'; did you mean 'StepLR'\? Give a class of torch\.optim\.lr_scheduler"),
    ],
)
def test_unknown_optimizer_or_scheduler(option, config, message):
    with pytest.raises(ConfigError, match=message):
        SequenceSystem(_cell(), **{option: config})


def test_optimizer_and_scheduler_by_short_name():
    model = SequenceSystem(
        _cell(), input_size=I, output_size=O, optimizer={"class_path": "SGD", "init_args": {"lr": 0.5}},
        lr_scheduler={"class_path": "ExponentialLR", "init_args": {"gamma": 0.5}},
    )
    configured = model.configure_optimizers()
    assert type(configured["optimizer"]) is torch.optim.SGD
    assert type(configured["lr_scheduler"]["scheduler"]) is torch.optim.lr_scheduler.ExponentialLR


def test_a_plateau_scheduler_watches_the_validation_loss():
    model = SequenceSystem(
        _cell(), input_size=I, output_size=O, lr_scheduler={"class_path": "ReduceLROnPlateau", "init_args": {"patience": 2}},
    )
    assert model.configure_optimizers()["lr_scheduler"]["monitor"] == "val/loss"


@pytest.mark.parametrize(
    "option, config, message",
    [
        ("optimizer", {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.1, "betaz": [0.9, 0.99]}},
         r"^model\.optimizer\.init_args do not fit Adam \(.*betaz.*\); check the option names\.$"),
        ("lr_scheduler", {"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_sise": 1}},
         r"^model\.lr_scheduler\.init_args do not fit StepLR \(.*step_sise.*\); check the option names\.$"),
    ],
)
def test_options_that_do_not_fit_the_optimizer_or_scheduler(option, config, message):
    model = SequenceSystem(_cell(), input_size=I, output_size=O, **{option: config})
    with pytest.raises(ConfigError, match=message):
        model.configure_optimizers()


def test_default_optimizer_is_adam_over_every_parameter():
    model = SequenceSystem(_cell(), input_size=I, output_size=O)
    optimizer = model.configure_optimizers()
    assert type(optimizer) is torch.optim.Adam and optimizer.param_groups[0]["lr"] == 1e-3
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {id(p) for p in model.parameters()}


def test_lr_scheduler_is_stepped_once_per_epoch():
    model = SequenceSystem(
        _cell(),
        optimizer={"class_path": "torch.optim.SGD", "init_args": {"lr": 0.4}},
        lr_scheduler={"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 1, "gamma": 0.5}},
    )
    trainer = _trainer(max_steps=-1, max_epochs=3)
    trainer.fit(model, datamodule=_task(train_batches=2))
    assert trainer.global_step == 6
    assert type(trainer.lr_scheduler_configs[0].scheduler) is torch.optim.lr_scheduler.StepLR
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.4 * 0.5**3)


# -- predict ---------------------------------------------------------------------------------
def test_predict_step_shapes_and_values():
    torch.manual_seed(0)
    model = SequenceSystem(_cell(), input_size=I, output_size=O).eval()
    task = _task(min_length=4, max_length=4, batch_size=3)
    batch = task.example_batch(3)
    T = 2 * 4 + 1
    with torch.no_grad():
        out = model.predict_step(batch, 0)
        logits = model(batch["input"]).logits
    assert set(out) == {"probabilities", "prediction", "bit_errors"}
    assert out["probabilities"].shape == out["prediction"].shape == (3, T, O)
    assert out["bit_errors"].shape == (3,)
    torch.testing.assert_close(out["probabilities"], torch.sigmoid(logits))
    assert set(out["prediction"].unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(out["prediction"], (out["probabilities"] > 0.5).float())
    wrong = (out["prediction"] != batch["target"]).float() * batch["mask"].unsqueeze(-1)  # [B, T, O], scored steps only
    torch.testing.assert_close(out["bit_errors"], wrong.sum(dim=(1, 2)), check_dtype=False)
    assert 0 < out["bit_errors"].sum() <= 3 * 4 * O  # an untrained model makes some errors, at most every scored bit


def test_values_only_the_logger_reads_are_logged_on_its_steps_alone(tmp_path, monkeypatch):
    """Each self.log costs ~1 ms: the loss terms and the sequence count go through it only on the steps the
    logger writes (every log_every_n_steps); the progress bar's loss and bits at every step; TensorBoard gets
    the same values it got when everything was logged at every step."""
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    calls: list[tuple[int, str]] = []
    original = SequenceSystem.log

    def counting(self, name, *args, **kwargs):
        if name.startswith("train/"):
            calls.append((self.global_step, name))
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(SequenceSystem, "log", counting)
    torch.manual_seed(0)
    trainer = _trainer(max_steps=7, log_every_n_steps=3, logger=TensorBoardLogger(tmp_path))
    trainer.fit(SequenceSystem(_cell()), datamodule=_task(train_batches=8))
    steps = lambda name: [s for s, n in calls if n == name]  # noqa: E731
    assert steps("train/loss") == steps("train/bits_per_seq") == list(range(7))
    assert steps("train/loss_main") == steps("train/sequences") == [2, 5]  # the 3rd and 6th step: Lightning's logging steps
    events = EventAccumulator(str(next(tmp_path.rglob("events.out.tfevents.*")).parent), size_guidance={"scalars": 0})
    events.Reload()
    loss, main = events.Scalars("train/loss"), events.Scalars("train/loss_main")
    assert [e.step for e in main] == [e.step for e in loss] == [2, 5]
    assert [e.value for e in main] == pytest.approx([e.value for e in loss])  # one term: the same step's values
    assert [e.value for e in events.Scalars("train/sequences")] == [9.0, 18.0]  # batch 3 x steps 3 and 6
