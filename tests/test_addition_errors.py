"""benchmarks/addition_errors.py: what each addition step asks, read back from the task's own batches."""

import sys

import lightning as L
import pytest
import torch

from mannkit.nn import ControllerCell, LSTMController
from mannkit.systems import SequenceSystem
from mannkit.tasks.act_tasks import AdditionTask


@pytest.fixture
def script(benchmark_script):
    return benchmark_script("addition_errors")


@pytest.mark.parametrize(("a", "b", "expected"), [(0, 0, 0), (5, 4, 0), (5, 5, 1), (999, 1, 3), (1234, 766, 3), (450, 60, 1)])
def test_carries_of_a_written_addition(script, a, b, expected):
    assert script.carries(a, b) == expected


def test_numbers_and_cases_are_read_back_from_a_batch(script):
    task = AdditionTask(min_length=1, max_length=3, min_digits=1, max_digits=3, test_lengths=None)
    batch = task.generate(torch.Generator().manual_seed(0), 16, min_length=3, max_length=3)
    numbers, k = script.numbers_of(batch)
    assert torch.equal(k, script.digit_count(numbers))  # no leading zeros: a k-digit number has k digits
    # the running sums written back as the task's 6 digit classes are the batch's own targets
    from mannkit.tasks.act_tasks import sum_digits

    assert torch.equal(sum_digits(numbers.cumsum(1).flatten(), 6).view(16, 3, 6), batch["target"])
    cases = script.step_cases(batch)
    assert cases["t"][0].tolist() == [1, 2, 3]
    before = torch.cat([torch.zeros(16, 1, dtype=torch.long), numbers.cumsum(1)[:, :-1]], 1)
    assert torch.equal(cases["case"], 10 * script.digit_count(before) + k)
    assert (cases["case"][:, 0] < 10).all()  # the first step adds to the empty sum: P = 0


def test_a_hand_made_batch(script):
    x = torch.zeros(1, 3, 5, 10)
    for t, digits in enumerate([[9, 9, 9], [9, 9, 9], [1, 2]]):  # 999, 999, 12: sums 999, 1998, 2010
        for place, d in enumerate(digits):
            x[0, t, place, d] = 1
    cases = script.step_cases({"input": x.flatten(2)})
    assert cases["case"].tolist() == [[3, 33, 42]]
    assert cases["carries"].tolist() == [[0, 3, 3]]  # 1998 + 12: 8+2, 9+1+1, 9+0+1 carry
    assert cases["sum_digits"].tolist() == [[3, 4, 4]]


def test_main_counts_the_wrong_sequences_of_a_checkpoint(tmp_path, script, monkeypatch, capsys):
    torch.manual_seed(0)
    config = tmp_path / "addition.yaml"
    config.write_text("data:\n  class_path: AdditionTask\n  init_args: {min_length: 1, max_length: 2, min_digits: 1, max_digits: 2, "
                      "test_lengths: null, batch_size: 4, train_batches: 2, val_batches: 1, test_batches: 1}\n")
    task = AdditionTask(min_length=1, max_length=2, min_digits=1, max_digits=2, test_lengths=None, batch_size=4,
                        train_batches=2, val_batches=1, test_batches=1)
    model = SequenceSystem(core=ControllerCell(LSTMController(8)))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                        default_root_dir=tmp_path)
    trainer.fit(model, datamodule=task)
    path = tmp_path / "a.ckpt"
    trainer.save_checkpoint(path)
    monkeypatch.setattr(sys, "argv", ["addition_errors", "--config", str(config), "--ckpt", str(path),
                                      "--lengths", "1", "2", "--digits", "2", "2", "--batches", "1"])
    script.main()
    printed = capsys.readouterr().out

    generator = torch.Generator().manual_seed(123)  # the script's batches, drawn again
    wrong = 0
    model.eval()
    for length in (1, 2):
        batch = task.generate(generator, 64, min_length=length, max_length=length, min_digits=2, max_digits=2)
        with torch.no_grad():
            logits = model(batch["input"]).logits.view(64, length, 6, 11)
        wrong += int((logits.argmax(-1) != batch["target"]).any(-1).any(-1).sum())
    assert f": {wrong} of 128 sequences wrong" in printed
    assert "0+2: " in printed and "2+2: " in printed and "of training steps" in printed
