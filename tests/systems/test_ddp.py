"""Two-process DDP (``ddp_spawn``, gloo, CPU) of a tiny NTM: ranks see different data and end with the same weights.

``ddp_spawn`` pickles the trainer, the model and the callbacks into two fresh processes. The callback
below is pickled by reference to this module, so the repository root goes on ``sys.path`` (the
children inherit it) for them to import ``tests.systems.test_ddp``; it only writes files, which
the test reads back.
"""

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from mannkit.cell import MemoryCell
from mannkit.nn import LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.systems import SequenceSystem
from mannkit.tasks import CopyTask
from mannkit_ntm import NTMAddressing

STEPS = 3


class RecordRank(Callback):
    """Each rank saves its first training input and, at the end of the fit, its weights to ``folder/rank{r}.pt``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.first_input: torch.Tensor | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.first_input is None:
            self.first_input = batch["input"].clone()

    def on_fit_end(self, trainer, pl_module):
        torch.save(
            {
                "rank": trainer.global_rank,
                "world_size": trainer.world_size,
                "steps": trainer.global_step,
                "first_input": self.first_input,
                "state_dict": {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()},
            },
            self.folder / f"rank{trainer.global_rank}.pt",
        )


def test_ddp_spawn_two_cpu_ranks_stay_in_sync(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[2]))  # the spawned ranks import this module by name
    torch.manual_seed(0)
    cell = MemoryCell(LSTMController(7), MatrixMemory(5, 3), [WriteHead(NTMAddressing()), ReadHead(NTMAddressing())], clip=20.0)
    model = SequenceSystem(cell, input_size=4, output_size=3, optimizer={"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01}})
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    task = CopyTask(bits=3, min_length=2, max_length=3, test_lengths=[3], batch_size=4, train_batches=STEPS, val_batches=1, test_batches=1)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_steps=STEPS, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        default_root_dir=tmp_path, callbacks=[RecordRank(tmp_path)],
    )
    trainer.fit(model, datamodule=task)

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world_size"] for r in ranks} == {2}
    assert {r["steps"] for r in ranks} == {STEPS}
    # the task seeds training batches by global rank: the ranks trained on different data, and rank 0
    # on what a single process (rank 0, no trainer) draws first
    assert not torch.equal(ranks[0]["first_input"], ranks[1]["first_input"])
    torch.testing.assert_close(ranks[0]["first_input"], next(iter(task.train_dataloader()))["input"], rtol=0, atol=0)
    # gradients were averaged: both ranks hold the same weights, and those moved away from the start
    zero, one = ranks[0]["state_dict"], ranks[1]["state_dict"]
    assert zero.keys() == one.keys() == initial.keys()
    for name in zero:
        torch.testing.assert_close(one[name], zero[name], rtol=0, atol=0, msg=name)
    changed = [k for k in zero if not torch.equal(zero[k], initial[k])]
    assert len(changed) >= len(zero) // 2, changed



def test_a_rank_stops_when_another_rank_saw_a_nan_loss():
    """The finite-loss decision is shared: a rank whose own loss is finite still stops when another's was not.

    (A ``ddp_spawn`` run cannot show the difference, since the spawn launcher terminates the other ranks
    as soon as one fails; under ``strategy="ddp"`` a rank that raised alone would leave the others
    waiting in the gradient all-reduce.)
    """
    from types import SimpleNamespace

    from mannkit.core.errors import TrainingError

    cell = MemoryCell(LSTMController(7), MatrixMemory(5, 3), [WriteHead(NTMAddressing()), ReadHead(NTMAddressing())])
    model = SequenceSystem(cell, input_size=4, output_size=3)
    decisions = []

    def reduce_boolean_decision(decision, all=True):  # noqa: A002  (Lightning's keyword)
        decisions.append((decision, all))
        return False  # another rank's loss was NaN

    model._trainer = SimpleNamespace(
        world_size=2, global_step=5, checkpoint_callbacks=[],
        strategy=SimpleNamespace(reduce_boolean_decision=reduce_boolean_decision),
    )
    batch = CopyTask(bits=3, min_length=2, max_length=2).example_batch(4)
    with pytest.raises(TrainingError, match="at step 5"):
        model.training_step(batch, 0)
    assert decisions == [(True, True)]  # this rank's own loss was finite, and every rank must agree
