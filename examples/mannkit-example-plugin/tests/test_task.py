"""The example plugin's task: its batches by hand, its declared difficulty, its messages, and a short training run."""

import lightning as L
import pytest
import torch

from mannkit import ConfigError
from mannkit.cell import MemoryCell
from mannkit.nn import ContentAddressing, MatrixMemory, ReadHead, WriteHead
from mannkit.systems import SequenceSystem
from mannkit_example import IndRNNController, MajorityTask, majority


def test_a_batch_by_hand():
    batch = MajorityTask(bits=5, min_length=4, max_length=4, seed=3).example_batch(7)
    x, target, mask = batch["input"], batch["target"], batch["mask"]
    assert (x.shape, target.shape, mask.shape) == ((7, 6, 6), (7, 6, 5), (7, 6))
    bits = x[:, :4, :5]  # [B, L, W]
    assert torch.equal(target[:, 5], (bits.sum(dim=1) >= 3).float())  # more than half of 4
    assert torch.equal(x[:, 4, 5], torch.ones(7)) and not x[:, :4, 5].any()  # the delimiter, once
    assert mask.tolist() == [[0.0] * 5 + [1.0]] * 7 and not target[:, :5].any()


def test_a_tie_answers_zero():
    assert majority(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])).tolist() == [[0.0, 0.0]]


def test_difficulty_and_test_sets_follow_the_declaration():
    task = MajorityTask(bits=2, min_length=2, max_length=3, test_lengths=[5, 11], batch_size=3, test_batches=1)
    assert MajorityTask.difficulty_attributes == ("min_length", "max_length")
    assert task.test_set_names == ["len5", "len11"]
    assert [b["input"].shape[1] for (b,) in task.test_sets] == [7, 13]  # T = L + 2
    again = MajorityTask(bits=2, min_length=2, max_length=3, test_lengths=[5, 11], batch_size=3, test_batches=1)
    assert torch.equal(task.test_sets[1][0]["target"], again.test_sets[1][0]["target"])  # seeded


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: MajorityTask(bits=0), r"^MajorityTask: bits must be a positive integer, got 0; set bits to 1 or more\.$"),
        (lambda: MajorityTask(min_length=0), r"^MajorityTask: min_length"),
        (lambda: MajorityTask(min_length=5, max_length=3), r"^MajorityTask: "),
    ],
)
def test_bad_arguments_are_one_sentence(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


@pytest.mark.filterwarnings("ignore:.*isinstance.treespec, LeafSpec.*:FutureWarning")  # Lightning's, not ours
@pytest.mark.filterwarnings("ignore:.*does not have many workers.*")
@pytest.mark.filterwarnings("ignore:.*log_every_n_steps.*")
def test_it_trains_with_the_sequence_system():
    torch.manual_seed(0)
    cell = MemoryCell(IndRNNController(hidden_size=8), MatrixMemory(5, 4),
                      [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])
    model = SequenceSystem(cell)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1)
    trainer.fit(model, datamodule=MajorityTask(bits=3, max_length=4, batch_size=4, train_batches=2, val_batches=1))
    assert trainer.global_step == 2 and torch.isfinite(trainer.callback_metrics["val/loss"])
