"""Checkpoints load with ``weights_only=True`` and rebuild the model by themselves, whichever way it was built.

config -> fit (CLI) -> checkpoint -> reload in a fresh process -> fit again (plain Trainer) -> save ->
reload -> same outputs; and a model assembled in plain Python saves and reloads the same way.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch

from mannkit.cell import MemoryCell
from mannkit.cli import main
from mannkit.nn import LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.systems import SequenceSystem
from mannkit.tasks import CopyTask
from mannkit_ntm import NTMAddressing

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_copy.yaml"

# Runs in a fresh interpreter. Only mannkit.systems is imported before loading: the controller,
# memory, heads and the NTM plugin's addressing must be found from the checkpoint's class paths alone.
FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    first, second, results, root = sys.argv[1:5]

    from mannkit.systems import SequenceSystem

    imported_before = sorted(m for m in sys.modules if m.startswith(("mannkit_ntm", "mannkit.nn", "mannkit.cell", "mannkit.tasks")))
    model = SequenceSystem.load_from_checkpoint(first, weights_only=True)
    classes = sorted({f"{type(m).__module__}.{type(m).__qualname__}" for m in model.modules()})

    import lightning as L
    import torch
    from mannkit.tasks import CopyTask

    torch.set_num_threads(1)
    task = CopyTask(bits=3, min_length=1, max_length=3, test_lengths=[3], batch_size=4, train_batches=5,
                    val_batches=1, test_batches=1, seed=11)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=5, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=root)
    trainer.fit(model, datamodule=task)
    trainer.save_checkpoint(second)

    batch = task.example_batch(3)
    with torch.no_grad():
        saved = model.eval()(batch["input"]).logits
        reloaded = SequenceSystem.load_from_checkpoint(second, weights_only=True).eval()(batch["input"]).logits
    torch.save({"imported_before": imported_before, "classes": classes, "input": batch["input"],
                "saved": saved, "reloaded": reloaded}, results)
    """
)


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_config_fit_reload_in_a_fresh_process_fit_save_reload(tmp_path):
    main(["fit", "--config", str(FIXTURE), "--trainer.default_root_dir", str(tmp_path / "cli")])
    (first,) = (tmp_path / "cli").rglob("last.ckpt")
    second, results = tmp_path / "second.ckpt", tmp_path / "results.pt"

    run = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(first), str(second), str(results), str(tmp_path / "fresh")],
        capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-4000:]
    out = torch.load(results, weights_only=True)

    assert out["imported_before"] == []  # nothing but mannkit.systems was imported before loading
    assert "mannkit_ntm.addressing.NTMAddressing" in out["classes"]
    assert {"mannkit.cell.MemoryCell", "mannkit.nn.controllers.LSTMController"} <= set(out["classes"])
    assert out["saved"].shape == (3, out["input"].shape[1], 3)
    torch.testing.assert_close(out["reloaded"], out["saved"], rtol=0, atol=0)

    one, two = _weights(first), _weights(second)
    assert two["hyper_parameters"]["core"] == one["hyper_parameters"]["core"]  # the config survives the round trip
    assert (two["hyper_parameters"]["input_size"], two["hyper_parameters"]["output_size"]) == (4, 3)
    assert one["state_dict"].keys() == two["state_dict"].keys()
    changed = [k for k in one["state_dict"] if not torch.equal(one["state_dict"][k], two["state_dict"][k])]
    assert len(changed) >= len(one["state_dict"]) // 2, changed  # the second fit trained the model

    # and this process (plugins already loaded) reads the second checkpoint to the same outputs
    here = SequenceSystem.load_from_checkpoint(second, weights_only=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(here(out["input"]).logits, out["saved"])


@pytest.mark.parametrize("sizes", [{"input_size": 4, "output_size": 3}, {}], ids=["explicit-sizes", "sizes-from-task"])
def test_model_built_in_python_saves_and_reloads_weights_only(tmp_path, sizes):
    torch.manual_seed(0)
    cell = MemoryCell(
        LSTMController(7), MatrixMemory(11, 5), [WriteHead(NTMAddressing()), ReadHead(NTMAddressing(shift_range=2))], clip=20.0
    )
    model = SequenceSystem(core=cell, optimizer={"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01}}, **sizes)
    task = CopyTask(bits=3, min_length=1, max_length=3, test_lengths=[3], batch_size=4, train_batches=3, val_batches=1, test_batches=1)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=task)
    path = tmp_path / "python.ckpt"
    trainer.save_checkpoint(path)

    hparams = _weights(path)["hyper_parameters"]
    assert (hparams["input_size"], hparams["output_size"]) == (4, 3)
    assert hparams["optimizer"] == {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01}}
    reloaded = SequenceSystem.load_from_checkpoint(path, weights_only=True)
    assert reloaded.core.to_config() == cell.to_config()
    assert reloaded.core.heads[1].addressing.to_config()["init_args"] == {"shift_range": 2}
    original, loaded = model.state_dict(), reloaded.state_dict()
    assert original.keys() == loaded.keys()
    for name in original:
        torch.testing.assert_close(loaded[name], original[name], rtol=0, atol=0, msg=name)
    x = task.example_batch(2)["input"]
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(x).logits, model.eval()(x).logits, rtol=0, atol=0)
