"""Curriculum: raises a task's difficulty after validations below a threshold; survives resume."""

import re
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from mannkit.callbacks import Curriculum
from mannkit.cell import MemoryCell
from mannkit.cli import main
from mannkit.core.errors import ConfigError
from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.systems import SequenceSystem
from mannkit.tasks import CopyTask

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_copy.yaml"
pytestmark = pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")


def _task(**overrides) -> CopyTask:
    settings = dict(bits=3, min_length=1, max_length=2, test_lengths=[3], batch_size=2, train_batches=50, val_batches=1, test_batches=1)
    return CopyTask(**{**settings, **overrides})


def _model() -> SequenceSystem:
    return SequenceSystem(MemoryCell(LSTMController(5), MatrixMemory(7, 3), [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())]))


class Levels(Callback):
    """Records the task's max_length after each validation and the lengths of the training batches."""

    def __init__(self) -> None:
        self.levels, self.lengths = [], []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.levels.append(trainer.datamodule.max_length)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lengths.append((batch["input"].shape[1] - 1) // 2)  # T = 2L + 1


def _fit(curriculum: Curriculum, task: CopyTask, steps: int = 10, ckpt_path=None, **trainer) -> Levels:
    levels = Levels()
    settings = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, num_sanity_val_steps=1, max_steps=steps, val_check_interval=2,
                    check_val_every_n_epoch=None)
    L.Trainer(callbacks=[curriculum, levels], **{**settings, **trainer}).fit(_model(), datamodule=task, ckpt_path=ckpt_path, weights_only=True)
    return levels


def test_raises_after_each_validation_up_to_the_maximum(capsys):
    task = _task()
    curriculum = Curriculum(attribute="max_length", step=2, maximum=7, threshold=1e9)
    levels = _fit(curriculum, task)
    assert levels.levels == [4, 6, 7, 7, 7]  # the sanity check does not count
    assert (curriculum.level, curriculum.raises) == (7, 3)
    assert max(levels.lengths[:2]) <= 2 and max(levels.lengths[2:4]) <= 4  # the next batch is already longer
    assert max((b["input"].shape[1] - 1) // 2 for b in task.val_set) <= 7 and len(task.val_set) == 1
    out = capsys.readouterr().out
    assert "mannkit: curriculum raised CopyTask.max_length from 2 to 4 at step 2 (val/bits_per_seq" in out
    assert out.count("curriculum raised") == 3


def test_patience_and_a_threshold_never_reached():
    patient = Curriculum(step=1, threshold=1e9, patience=1)
    assert _fit(patient, _task()).levels == [2, 3, 3, 4, 4]
    never = Curriculum(threshold=-1.0)
    assert _fit(never, _task()).levels == [2, 2, 2, 2, 2] and never.below == 0


def test_a_min_attribute_stops_at_the_max():
    task = _task(min_length=1, max_length=3)
    _fit(Curriculum(attribute="min_length", step=1, threshold=1e9), task)
    assert task.min_length == 3


def test_the_bound_the_task_declares_stops_the_curriculum():
    from mannkit.tasks import SortTask

    task = SortTask(bits=3, min_items=1, max_items=2, key_space=5, test_items=[5], batch_size=2, train_batches=50,
                    val_batches=1, test_batches=1)
    curriculum = Curriculum(attribute="max_items", step=2, threshold=1e9)
    assert curriculum._limit(task) == 5
    L.Trainer(callbacks=[curriculum], accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, num_sanity_val_steps=0, max_steps=12, val_check_interval=2,
              check_val_every_n_epoch=None).fit(_model(), datamodule=task)
    assert task.max_items == 5  # key_space: one more would fail at the next batch


def test_two_curricula_raise_graph_size_and_path_length_in_the_same_lessons():
    """configs/dnc/traversal_curriculum.yaml: one Curriculum per attribute, both driven by the same validation."""
    from mannkit.tasks import GraphTraversalTask

    task = GraphTraversalTask(id_space=8, num_labels=2, max_out_degree=2, min_nodes=3, max_nodes=4, min_path_length=1,
                              max_path_length=1, test_nodes=[8], test_path_lengths=[3], batch_size=2, train_batches=50,
                              val_batches=1, test_batches=1)
    nodes = Curriculum(attribute="max_nodes", step=1, maximum=6, threshold=1e9)
    paths = Curriculum(attribute="max_path_length", step=1, maximum=2, threshold=1e9)
    assert nodes.state_key != paths.state_key  # both are kept in a checkpoint
    L.Trainer(callbacks=[nodes, paths], accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, num_sanity_val_steps=0, max_steps=6, val_check_interval=2,
              check_val_every_n_epoch=None).fit(_model(), datamodule=task)
    assert (task.max_nodes, task.max_path_length) == (6, 2) and (nodes.raises, paths.raises) == (2, 1)


def test_an_attribute_the_task_does_not_have():
    message = ("Curriculum: attribute 'max_items' is not a difficulty attribute of the task CopyTask; "
               "choose one of ['min_length', 'max_length'].")
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        _fit(Curriculum(attribute="max_items"), _task())
    with pytest.raises(ConfigError, match=r"^Curriculum: step must be a positive integer, got 0"):
        Curriculum(step=0)


def test_mix_draws_some_training_batches_at_the_highest_level():
    """Zaremba & Sutskever's combined strategy: the level stays at 2, a share of the batches goes to 9."""
    runs = []
    for _ in range(2):
        task = _task()
        curriculum = Curriculum(maximum=9, threshold=-1.0, mix=0.5)
        levels = _fit(curriculum, task, steps=40)
        assert levels.levels == [2] * 20 and task.mixed_difficulty == {}  # mixing ends with the fit
        runs.append(levels.lengths)
    assert runs[0] == runs[1]  # seeded
    longer = sum(length > 2 for length in runs[0])
    assert 5 <= longer <= 30 and max(runs[0]) <= 9  # about 40 x 0.5 x 7/9 = 16 batches longer than the level
    assert max((b["input"].shape[1] - 1) // 2 for b in task.val_set) <= 2  # validation is at the current level
    plain = _fit(Curriculum(maximum=9, threshold=-1.0), _task(), steps=40)
    assert max(plain.lengths) <= 2


def test_mix_is_checked():
    for bad in (1.0, -0.1, "often", True):
        with pytest.raises(ConfigError, match=rf"^Curriculum: mix must be a probability in \[0, 1\), got {re.escape(repr(bad))}; use e\.g\. 0\.2"):
            Curriculum(mix=bad)
    message = ("Curriculum: mix 0.2 draws batches at the highest level of 'max_length', but maximum is null and the task "
               "sets no bound; set maximum.")
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        _fit(Curriculum(mix=0.2), _task(), steps=2)

    class Trainer:  # a datamodule with difficulty attributes that does not draw batches as SequenceTask does
        datamodule = type("Stories", (), {"difficulty_attributes": ("max_length",), "max_length": 3})()

    message = "Curriculum: mix 0.2 needs a task that draws its training batches as SequenceTask does; Stories does not; set mix: 0."
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        Curriculum(maximum=9, mix=0.2).setup(Trainer(), None, "fit")


def test_an_unlogged_monitor():
    with pytest.raises(ConfigError, match=r"^Curriculum: the monitored metric 'val/cost' was not logged; set monitor to one of \["):
        _fit(Curriculum(monitor="val/cost"), _task(), steps=2)


def test_the_level_is_restored_by_the_callback_when_the_task_saved_none(tmp_path):
    ckpt = tmp_path / "a.ckpt"
    first = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, max_steps=4, val_check_interval=2,
                      check_val_every_n_epoch=None, callbacks=[Curriculum(threshold=1e9)])
    first.fit(_model(), datamodule=_task())
    first.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=True)
    assert state["CopyTask"]["max_length"] == 4
    del state["CopyTask"]  # as if the datamodule kept no state
    torch.save(state, ckpt)
    task = _task()
    levels = _fit(Curriculum(threshold=-1.0), task, steps=6, ckpt_path=ckpt, num_sanity_val_steps=0)
    assert levels.levels == [4] and task.max_length == 4


def test_resume_through_the_cli_keeps_the_level(tmp_path):
    config = yaml.safe_load(FIXTURE.read_text())
    config["trainer"]["callbacks"].append(
        {"class_path": "Curriculum", "init_args": {"attribute": "max_length", "threshold": 1e9, "maximum": 10}}
    )
    path = tmp_path / "curriculum.yaml"
    path.write_text(yaml.safe_dump(config))
    first, second = tmp_path / "first", tmp_path / "second"
    main(["fit", "--config", str(path), "--trainer.default_root_dir", str(first)])  # validations at steps 3 and 6
    ckpt = next(first.rglob("last.ckpt"))
    saved = torch.load(ckpt, weights_only=True)
    assert saved["CopyTask"]["max_length"] == 5
    assert saved["callbacks"]["Curriculum{'attribute': 'max_length'}"]["level"] == 5
    main(["fit", "--config", str(path), "--ckpt_path", str(ckpt), "--trainer.max_steps", "9",
          "--trainer.default_root_dir", str(second)])  # one more validation, at step 9
    resumed = torch.load(next(second.rglob("last.ckpt")), weights_only=True)
    assert resumed["global_step"] == 9
    assert resumed["CopyTask"]["max_length"] == 6  # 5 restored, then raised once (not 3 + 1)
    assert resumed["callbacks"]["Curriculum{'attribute': 'max_length'}"]["raises"] == 3
