"""LinearStartSchedule (plugin memn2n): linear epochs at the initial rate, a cap on them, then the schedule from its start."""

from types import SimpleNamespace

import pytest
import torch
from mannkit_memn2n import LinearStartSchedule, restart_schedules

from mannkit.core.errors import ConfigError


class _Switch:
    def __init__(self):
        self.flags = []

    def set_linear_start(self, flag):
        self.flags.append(flag)


def _trainer(max_epochs=90):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.005)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    return SimpleNamespace(lr_scheduler_configs=[SimpleNamespace(interval="epoch", scheduler=scheduler)],
                           fit_loop=SimpleNamespace(max_epochs=max_epochs), current_epoch=0, global_step=0,
                           sanity_checking=False, is_global_zero=True, loggers=[], callback_metrics={}), optimizer, scheduler


def _epoch(callback, trainer, module, scheduler, val_loss):
    callback.on_train_epoch_start(trainer, module)
    lr = scheduler.optimizer.param_groups[0]["lr"]
    trainer.callback_metrics = {"val/loss": torch.tensor(val_loss)}
    callback.on_validation_end(trainer, module)
    scheduler.optimizer.step()
    scheduler.step()  # Lightning steps epoch schedulers after validation
    trainer.current_epoch += 1
    return lr


def test_linear_epochs_keep_the_rate_then_the_schedule_restarts():
    trainer, _, scheduler = _trainer()
    module = SimpleNamespace(model=_Switch())
    callback = LinearStartSchedule(patience=0, max_linear_epochs=10, main_epochs=4)
    rates = [_epoch(callback, trainer, module, scheduler, loss) for loss in (3.0, 2.0, 1.0, 1.5)]  # 4th: no progress
    assert rates == [0.005] * 4 and not callback.active and callback.main_from_epoch == 4
    assert trainer.fit_loop.max_epochs == 8, "4 linear epochs, then main_epochs"
    rates = [_epoch(callback, trainer, module, scheduler, 1.0) for _ in range(4)]
    assert rates == [0.005, 0.005, 0.0025, 0.0025], "the step schedule from its start"
    assert module.model.flags == [False]


def test_the_cap_ends_linear_start_and_max_epochs_is_never_raised():
    trainer, _, scheduler = _trainer(max_epochs=3)
    module = SimpleNamespace(model=_Switch())
    callback = LinearStartSchedule(patience=5, max_linear_epochs=2, main_epochs=60)
    for loss in (3.0, 2.0):
        _epoch(callback, trainer, module, scheduler, loss)
    assert not callback.active and callback.main_from_epoch == 2 and trainer.fit_loop.max_epochs == 3
    state = callback.state_dict()
    again = LinearStartSchedule(max_linear_epochs=2, main_epochs=1)
    again.load_state_dict(state)
    assert again.main_from_epoch == 2 and not again.active
    again.on_train_start(trainer, module)
    assert trainer.fit_loop.max_epochs == 3, "a resumed run keeps its end"


def test_restart_schedules_and_refused_settings():
    trainer, optimizer, scheduler = _trainer()
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0.0025
    restart_schedules(trainer)
    assert optimizer.param_groups[0]["lr"] == 0.005 and scheduler.last_epoch == 0 and scheduler.get_last_lr() == [0.005]
    with pytest.raises(ConfigError, match="max_linear_epochs must be a positive integer"):
        LinearStartSchedule(max_linear_epochs=0)


def test_monitor_null_runs_exactly_the_linear_epochs_as_the_original_code():
    trainer, _, scheduler = _trainer()
    module = SimpleNamespace(model=_Switch())
    callback = LinearStartSchedule(monitor=None, max_linear_epochs=3, main_epochs=2)
    rates = [_epoch(callback, trainer, module, scheduler, loss) for loss in (1.0, 5.0, 9.0)]  # rising: no early end
    assert rates == [0.005] * 3 and not callback.active and callback.main_from_epoch == 3
    assert module.model.flags == [False] and trainer.fit_loop.max_epochs == 5
    with pytest.raises(ConfigError, match="linear start would never end; set max_linear_epochs"):
        LinearStartSchedule(monitor=None)


def test_monitor_null_does_not_read_the_metrics():
    trainer, _, scheduler = _trainer()
    module = SimpleNamespace(model=_Switch())
    callback = LinearStartSchedule(monitor=None, max_linear_epochs=2, main_epochs=1)
    callback.on_train_epoch_start(trainer, module)
    trainer.callback_metrics = {}  # nothing logged: a monitor would raise here
    callback.on_validation_end(trainer, module)
    assert callback.active and module.model.flags == []
