"""Issue 10, item 7: ``fit --ckpt_path`` with a checkpoint of another model is refused; optimizer settings
that the checkpoint's optimizer state overrides are named as ignored."""

import logging
from pathlib import Path

import pytest
import torch

from mannkit.callbacks.reliability import model_differences
from mannkit.cli import main

FIXTURE = Path(__file__).parents[2] / "tests" / "fixtures" / "tiny_copy.yaml"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    main(["fit", "--config", str(FIXTURE), "--trainer.default_root_dir", str(root), "--trainer.max_steps", "2"])
    return next(root.rglob("last.ckpt"))


def test_another_model_is_refused_in_one_sentence(checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(FIXTURE), "--ckpt_path", str(checkpoint), "--trainer.default_root_dir", str(tmp_path),
              "--model.init_args.core.init_args.memory.init_args.slots", "9"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"mannkit: error: --ckpt_path {checkpoint}: the checkpoint holds another model than the config: "
        "model.init_args.core.init_args.memory.init_args.slots is 6 in the checkpoint and 9 in the config; resume with "
        "the config the checkpoint was trained with, or start a new run without --ckpt_path.\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
@pytest.mark.filterwarnings("ignore:.*compute.* method of metric:UserWarning")
def test_ignored_optimizer_settings_are_named(checkpoint, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="mannkit"):
        main(["fit", "--config", str(FIXTURE), "--ckpt_path", str(checkpoint), "--trainer.default_root_dir", str(tmp_path),
              "--trainer.max_steps", "3", "--model.init_args.optimizer.init_args.lr", "0.5"])
    assert (
        f"mannkit fit: resuming SequenceSystem from {checkpoint}, whose optimizer state comes back with it, so these "
        "settings of the config are ignored: model.init_args.optimizer.init_args.lr (0.5; the checkpoint's 0.001 is kept)"
    ) in caplog.text
    resumed = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=True)
    assert resumed["global_step"] == 3 and resumed["optimizer_states"][0]["param_groups"][0]["lr"] == 0.001


def test_differences_compare_classes_not_their_spelling():
    saved = {"class_path": "mannkit.nn.controllers.LSTMController", "init_args": {"hidden_size": 8, "layers": [1, 2]}}
    same = {"class_path": "mannkit.nn.LSTMController", "init_args": {"hidden_size": 8, "layers": (1, 2), "new": 1}}
    assert model_differences(same, saved) == []
    assert model_differences({"class_path": "mannkit.nn.GRUController", "init_args": {"hidden_size": None}}, saved) == [
        ("model.class_path", "mannkit.nn.controllers.LSTMController", "mannkit.nn.GRUController")
    ]
