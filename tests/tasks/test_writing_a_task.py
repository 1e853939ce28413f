"""CONTRIBUTING.md's "Writing a task" example, run as written: its declarations give the checks, test sets and loss it promises."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError
from mannkit.nn import ContentAddressing, GRUController, MatrixMemory, ReadHead, WriteHead
from mannkit.systems import SequenceSystem

DOC = (Path(__file__).parents[2] / "CONTRIBUTING.md").read_text()


@pytest.fixture(scope="module")
def reverse_task() -> type:
    """The documented ``ReverseTask`` class, built from the document's code block (not registered globally)."""
    start = DOC.index("`mannkit_reverse/__init__.py`:")
    source = re.compile(r"```python\n(.*?)```", re.S).search(DOC, start).group(1)
    with pytest.MonkeyPatch.context() as patch:
        # the module (mannkit.core.registry is also the name of the registry object)
        patch.setattr(sys.modules["mannkit.core.registry"], "register", lambda *a, **k: (lambda cls: cls))
        namespace: dict = {"__name__": "mannkit_reverse"}
        exec(compile(source, "CONTRIBUTING.md", "exec"), namespace)  # noqa: S102  (our own document)
    return namespace["ReverseTask"]


def test_the_declarations_give_what_the_document_says(reverse_task):
    task = reverse_task(symbols=5, max_length=4, test_lengths=[4, 7], batch_size=3)
    assert reverse_task.loss == "ce" and reverse_task.difficulty_attributes == ("min_length", "max_length")
    assert task.test_set_names == ["len4", "len7"]
    assert task.test_axes() == [("length", [4, 7])]
    batch = task.test_sets[1][0]
    assert batch["input"].shape == (3, 15, 6) and batch["target"].shape == (3, 15) and batch["target"].dtype == torch.long
    ids = batch["input"][:, :7, :5].argmax(dim=2)  # the symbols read
    assert torch.equal(batch["target"][:, 8:], ids.flip(1))
    assert batch["mask"].sum(dim=1).tolist() == [7.0] * 3


def test_the_documented_error(reverse_task):
    message = DOC[DOC.index("`ReverseTask(min_length=0)` says") :].split("`")[3]
    assert message == "ReverseTask: min_length (0) must be at least 1; set min_length to 1 or more."
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        reverse_task(min_length=0)


def test_it_trains_with_the_sequence_system_following_its_loss(reverse_task):
    torch.manual_seed(0)
    cell = MemoryCell(GRUController(7), MatrixMemory(5, 3), [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])
    model = SequenceSystem(cell)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1)
    trainer.fit(model, datamodule=reverse_task(symbols=5, max_length=3, batch_size=4, train_batches=2, val_batches=1))
    assert model.objective.name == "ce" and "val/step_accuracy" in trainer.callback_metrics
