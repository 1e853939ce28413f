"""LinearStart: the softmax goes back in when the monitored loss stops falling; the decision survives a resume."""

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from mannkit.callbacks import LinearStart
from mannkit.core.errors import ConfigError
from mannkit.systems import BagOfWordsQA, QASystem
from mannkit.tasks import BabiDataModule

FIXTURES = Path(__file__).parents[1] / "fixtures" / "babi"


class Switchable:
    """Records every set_linear_start call."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def set_linear_start(self, flag: bool) -> None:
        self.calls.append(flag)


def _validate(callback: LinearStart, module, losses, sanity: bool = False) -> None:
    for step, loss in enumerate(losses, start=1):
        trainer = SimpleNamespace(sanity_checking=sanity, callback_metrics={"val/loss": torch.tensor(loss)},
                                  global_step=10 * step, is_global_zero=True, loggers=[])
        callback.on_validation_end(trainer, module)


@pytest.mark.parametrize(
    "patience, min_delta, losses, calls, ended",
    [
        (0, 0.0, [3.0, 2.0, 2.5, 1.0], [False], 30),  # the 3rd validation does not improve on 2.0
        (1, 0.0, [3.0, 2.0, 2.5, 1.0, 1.5, 1.2], [False], 60),  # two in a row without progress (5th and 6th)
        (0, 0.1, [3.0, 2.95], [False], 20),  # 2.95 is not lower than 3.0 by more than 0.1
        (0, 0.0, [3.0, 2.0, 1.0], [], None),  # still falling: linear start goes on
    ],
)
def test_softmax_goes_back_in_when_the_loss_stops_falling(patience, min_delta, losses, calls, ended, capsys):
    model, callback = Switchable(), LinearStart(patience=patience, min_delta=min_delta)
    _validate(callback, SimpleNamespace(model=model), losses)
    assert model.calls == calls and callback.ended_at_step == ended and callback.active == (ended is None)
    if ended:
        assert f"mannkit: linear start ended at step {ended}" in capsys.readouterr().out
        _validate(callback, SimpleNamespace(model=model), [5.0, 6.0])  # afterwards nothing changes
        assert model.calls == [False]


def test_the_sanity_check_is_ignored():
    model, callback = Switchable(), LinearStart()
    _validate(callback, SimpleNamespace(model=model), [1.0, 2.0, 3.0], sanity=True)
    assert callback.best is None and model.calls == []


def test_state_is_saved_and_applied_at_fit_start():
    model, callback = Switchable(), LinearStart()
    _validate(callback, SimpleNamespace(model=model), [2.0, 2.0])
    restored = LinearStart()
    restored.load_state_dict(callback.state_dict())
    assert (restored.active, restored.best, restored.stalled, restored.ended_at_step) == (False, 2.0, 1, 20)
    fresh_model = Switchable()
    restored.on_fit_start(None, SimpleNamespace(model=fresh_model))
    assert fresh_model.calls == [False]  # a resumed run keeps the softmax
    LinearStart().on_fit_start(None, SimpleNamespace(model=fresh_model))
    assert fresh_model.calls == [False, True]  # a new run starts linear


def test_a_model_without_linear_start_is_refused():
    with pytest.raises(ConfigError, match=r"LinearStart: the model BagOfWordsQA has no set_linear_start\(flag\); remove the callback "
                                          r"or use a model with linear start, such as MemN2N\."):
        LinearStart().setup(None, SimpleNamespace(model=BagOfWordsQA()), "fit")


def test_an_unlogged_monitor_is_named():
    trainer = SimpleNamespace(sanity_checking=False, callback_metrics={"val/accuracy": torch.tensor(0.5)}, global_step=1,
                              is_global_zero=True, loggers=[])
    with pytest.raises(ConfigError, match=r"LinearStart: the monitored metric 'val/los' was not logged; set monitor to one of \['val/accuracy'\]\."):
        LinearStart(monitor="val/los").on_validation_end(trainer, SimpleNamespace(model=Switchable()))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"patience": -1}, r"patience must be 0 or more, got -1\."), ({"min_delta": -0.5}, r"min_delta must be 0 or more, got -0\.5\.")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LinearStart(**kwargs)


# -- in a real fit, then resumed ---------------------------------------------------------------------
class LinearBagOfWords(BagOfWordsQA):
    """A bag of words with a linear-start switch kept as a flag (the switch's effect is not the point here)."""

    def __init__(self, embedding_dim: int = 4) -> None:
        super().__init__(embedding_dim)
        self.linear_start = True

    def set_linear_start(self, flag: bool) -> None:
        self.linear_start = flag


class FlagAtTrainStart(Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.flag = pl_module.model.linear_start


def _fit(root, max_epochs, ckpt_path=None):
    system = QASystem(LinearBagOfWords(), optimizer={"class_path": "SGD", "init_args": {"lr": 0.0}})  # lr 0: the loss never falls
    callbacks = [LinearStart(), FlagAtTrainStart(), ModelCheckpoint(dirpath=root, save_last=True)]
    trainer = L.Trainer(accelerator="cpu", max_epochs=max_epochs, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(root), callbacks=callbacks)
    trainer.fit(system, datamodule=BabiDataModule(str(FIXTURES), tasks=[1, 8], batch_size=4), ckpt_path=ckpt_path)
    return system, callbacks


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
def test_switch_in_a_fit_survives_resume(tmp_path):
    system, (callback, at_start, _) = _fit(tmp_path, max_epochs=2)
    assert at_start.flag is True and system.model.linear_start is False
    assert callback.ended_at_step == 6  # 3 batches per epoch: the 2nd validation equals the 1st
    resumed, (callback, at_start, _) = _fit(tmp_path / "resumed", max_epochs=3, ckpt_path=tmp_path / "last.ckpt")
    assert at_start.flag is False and resumed.model.linear_start is False and callback.ended_at_step == 6
