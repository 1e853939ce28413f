"""``last.ckpt`` always holds the newest state (issue 10 item 2), ``--ckpt_path last`` finds it, and
``test`` without a checkpoint says it evaluates random weights (item 8)."""

import logging
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from mannkit.callbacks import AtomicCheckpointIO, Checkpoint, TrainingGuard
from mannkit.callbacks.interrupt import SafeInterrupt
from mannkit.callbacks.reliability import find_last_checkpoint, reliable_trainer_parts
from mannkit.cli import main

# restoring a checkpoint into another run folder is what these tests do on purpose
pytestmark = pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_copy.yaml"


def _config(tmp_path: Path, checkpoint: dict) -> Path:
    """The tiny copy fixture with a checkpoint policy whose monitor never improves after the first validation.

    ``epoch`` stays 0 in this one-epoch run, and ModelCheckpoint saves a "best" only on a strict improvement.
    """
    config = yaml.safe_load(FIXTURE.read_text())
    config["trainer"].update({"max_steps": 7, "val_check_interval": 2})
    config["trainer"]["callbacks"][0] = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": checkpoint}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _step(path: Path) -> int:
    return torch.load(path, weights_only=True)["global_step"]


@pytest.mark.parametrize("save_last", [True, "link"])
def test_last_holds_the_final_step_when_the_monitor_never_improves(tmp_path, save_last):
    config = _config(tmp_path, {"save_last": save_last, "monitor": "epoch", "mode": "max"})
    main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path)])
    (folder,) = {p.parent for p in tmp_path.rglob("*.ckpt")}
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=2.ckpt", "last.ckpt"]  # the best is the first
    assert _step(folder / "last.ckpt") == 7  # plain ModelCheckpoint leaves it at 2
    assert _step(folder / "epoch=0-step=2.ckpt") == 2


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty:UserWarning")
def test_last_is_rewritten_at_every_validation_and_stale_temporaries_are_removed(tmp_path):
    steps = []

    class Spy(Checkpoint):
        def _save_last_checkpoint(self, trainer, monitor_candidates):
            super()._save_last_checkpoint(trainer, monitor_candidates)
            steps.append(_step(Path(self.last_model_path)))

    import lightning as L

    from mannkit.cell import MemoryCell
    from mannkit.nn import LSTMController, MatrixMemory, ReadHead, WriteHead
    from mannkit.nn.addressing import ContentAddressing
    from mannkit.systems import SequenceSystem
    from mannkit.tasks import CopyTask

    torch.manual_seed(0)
    model = SequenceSystem(MemoryCell(LSTMController(5), MatrixMemory(7, 3), [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())]))
    data = CopyTask(bits=2, min_length=1, max_length=2, test_lengths=[2], batch_size=2, train_batches=20, val_batches=1, test_batches=1)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, max_steps=7,
        val_check_interval=2, check_val_every_n_epoch=None, num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
        callbacks=[Spy(dirpath=tmp_path, save_last=True, monitor="epoch", mode="max")],
    )
    stale = tmp_path / ".last.ckpt.4194305.partial"  # left by a killed save (pid above Linux's pid_max: not running)
    stale.write_bytes(b"half a checkpoint")
    trainer.fit(model, datamodule=data)
    assert steps == [2, 4, 6, 7]
    assert not stale.exists()  # removed when the run started


def test_ckpt_path_last_finds_the_newest_last_checkpoint_of_the_earlier_runs(tmp_path, caplog):
    config = _config(tmp_path, {"save_last": True, "monitor": "epoch", "mode": "max"})
    main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path)])
    first = find_last_checkpoint([tmp_path])
    assert first is not None and _step(first) == 7
    with caplog.at_level(logging.WARNING, logger="mannkit"):
        main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", "last",
              "--trainer.max_steps", "9"])
    assert f"mannkit fit: --ckpt_path last is {first}" in caplog.text
    newest = find_last_checkpoint([tmp_path])
    assert newest != first and _step(newest) == 9


def test_ckpt_path_last_without_any_run_starts_a_fit_afresh_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="mannkit"):
        main(["fit", "--config", str(FIXTURE), "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", "last",
              "--trainer.max_steps", "1"])
    assert f"mannkit fit: --ckpt_path last: no last.ckpt under {tmp_path} yet, so training starts from scratch" in caplog.text
    assert _step(find_last_checkpoint([tmp_path])) == 1


def test_ckpt_path_last_without_any_run_is_an_error_for_test(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["test", "--config", str(FIXTURE), "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", "last"])
    assert capsys.readouterr().err.strip() == (
        f"mannkit: error: --ckpt_path last: there is no last.ckpt in the run folders under {tmp_path}; give the path of a "
        ".ckpt file, or set trainer.default_root_dir to the folder of the run."
    )


@pytest.mark.parametrize("subcommand", ["test", "validate"])
def test_evaluating_without_a_checkpoint_warns_about_random_weights(tmp_path, caplog, subcommand):
    with caplog.at_level(logging.WARNING, logger="mannkit"):
        main([subcommand, "--config", str(FIXTURE), "--trainer.default_root_dir", str(tmp_path)])
    warnings = [r.getMessage() for r in caplog.records if r.name == "mannkit"]
    assert warnings == [
        f"mannkit {subcommand}: no --ckpt_path was given, so the model is evaluated with freshly initialised (random) "
        "weights; pass --ckpt_path with a trained checkpoint, or --ckpt_path last."
    ]


def test_the_command_adds_the_reliability_defaults():
    plain = ModelCheckpoint(save_last=True)
    callbacks, plugins = reliable_trainer_parts([plain], None, True, "mannkit fit --config c.yaml")
    assert type(plain) is Checkpoint and plain.resume_command == "mannkit fit --config c.yaml"
    assert [type(c) for c in callbacks] == [Checkpoint, TrainingGuard, SafeInterrupt]
    assert [type(p) for p in plugins] == [AtomicCheckpointIO]
    callbacks, _ = reliable_trainer_parts(None, None, True)
    assert [type(c) for c in callbacks] == [Checkpoint, TrainingGuard, SafeInterrupt] and callbacks[0].save_last is True
    mine = TrainingGuard(max_loss=5.0)
    callbacks, _ = reliable_trainer_parts([mine], None, False)
    assert callbacks[0] is mine and [type(c) for c in callbacks] == [TrainingGuard, SafeInterrupt]
