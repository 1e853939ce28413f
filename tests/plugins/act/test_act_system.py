"""SequenceSystem adds a model's own loss terms (SequenceOutput.losses: ACT's ponder cost) and logs its stats."""

import lightning as L
import pytest
import torch

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import SequenceModel, SequenceOutput
from mannkit.nn import RNNController
from mannkit.systems import SequenceSystem
from mannkit.tasks import CopyTask
from mannkit.nn import ControllerCell
from mannkit_act import ACT


def _task() -> CopyTask:
    return CopyTask(bits=3, min_length=2, max_length=3, test_lengths=[3], batch_size=3, train_batches=4, val_batches=1, test_batches=1)


def test_ponder_cost_is_a_logged_term_of_the_loss_and_ponder_steps_are_logged():
    torch.manual_seed(0)
    model = SequenceSystem(ACT(ControllerCell(RNNController(7)), max_ponder=4, tau=0.1))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_train_batches=2, limit_val_batches=1, max_steps=2)
    trainer.fit(model, datamodule=_task())
    logged = trainer.callback_metrics
    assert {"train/loss_main", "train/loss_ponder", "train/ponder_mean", "train/ponder_max", "val/ponder_mean"} <= set(logged)
    assert logged["train/loss_main"].item() + logged["train/loss_ponder"].item() == pytest.approx(logged["train/loss"].item(), rel=1e-5)
    assert 1 <= logged["train/ponder_mean"].item() <= logged["train/ponder_max"].item() <= 4
    # tau * (1/T) sum_t (N + R), each rho_t = N + R >= 1 and <= 4 + 1
    assert 0.1 <= logged["train/loss_ponder"].item() <= 0.1 * 5


class Clash(SequenceModel):
    def bind(self, input_size, output_size):
        self.linear = torch.nn.Linear(input_size, output_size)

    def forward(self, x, record=False):
        return SequenceOutput(self.linear(x), None, {"main": x.sum()})


def test_a_model_term_named_like_a_system_term_is_refused():
    task = _task()
    model = SequenceSystem(Clash(), input_size=task.input_size, output_size=task.output_size)
    with pytest.raises(ConfigError, match=r"Clash returns a loss term named 'main', which the system already uses; rename"):
        model.training_terms(task.example_batch(2))
