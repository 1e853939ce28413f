"""Issue 10, items 9 and 10: the optimizer's options from YAML and the command line, and their one-sentence errors."""

import re
from pathlib import Path

import pytest
import torch
import yaml

from mannkit.cli import check_config, main

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_copy.yaml"
LR = "--model.init_args.optimizer.init_args.lr"


def _config(tmp_path, optimizer):
    config = yaml.safe_load(FIXTURE.read_text())
    config["model"]["init_args"]["optimizer"] = optimizer
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _error_of(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def _printed(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["optimizer"]


def test_learning_rate_override_reaches_the_optimizer(tmp_path, capsys):
    config = _config(tmp_path, {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.5, "momentum": 0.25}})
    printed = _printed(capsys, ["fit", "--config", str(config), LR, "100"])
    assert printed == {"class_path": "torch.optim.SGD", "init_args": {"lr": 100, "momentum": 0.25}}
    main(["fit", "--config", str(config), LR, "2e-3", "--trainer.max_steps", "1", "--trainer.default_root_dir", str(tmp_path)])
    ckpt = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=True)
    group = ckpt["optimizer_states"][0]["param_groups"][0]
    assert group["lr"] == pytest.approx(2e-3) and group["momentum"] == 0.25


def test_short_optimizer_names_work(tmp_path, capsys):
    config = _config(tmp_path, {"class_path": "AdamW", "init_args": {"lr": 0.01}})
    check_config(config)
    printed = _printed(capsys, ["fit", "--config", str(config)])
    assert printed == {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}}


@pytest.mark.parametrize(
    "optimizer, override, message",
    [
        ({"class_path": "Adam", "init_args": {"lr": "fast"}}, [],
         "model.init_args.optimizer.init_args.lr: expected a number, got 'fast'; a learning rate is a positive number such as 0.001."),
        ({"class_path": "Adam", "init_args": {"lr": 0.1}}, [LR, "fast"],
         "model.init_args.optimizer.init_args.lr: expected a number, got 'fast'; a learning rate is a positive number such as 0.001."),
        ({"class_path": "Adam", "init_args": {"lr": -0.5}}, [],
         "model.init_args.optimizer.init_args.lr: Adam refuses -0.5 (Invalid learning rate: -0.5); "
         "a learning rate is a positive number such as 0.001."),
        ({"class_path": "Adam", "init_args": {"lr": 0.1}}, [f"{LR}=-1"],
         "model.init_args.optimizer.init_args.lr: Adam refuses -1 (Invalid learning rate: -1); "
         "a learning rate is a positive number such as 0.001."),
        ({"class_path": "Adam", "init_args": {"weight_decy": 0.1}}, [],
         "model.init_args.optimizer.init_args.weight_decy: Adam has no option 'weight_decy'; did you mean 'weight_decay'?"),
        ({"class_path": "AdamX", "init_args": {"lr": 0.1}}, [],
         "model.init_args.optimizer.class_path: unknown class 'AdamX'; did you mean 'Adam"),
    ],
)
def test_bad_optimizer_options_are_one_sentence(tmp_path, capsys, optimizer, override, message):
    err = _error_of(capsys, ["fit", "--config", str(_config(tmp_path, optimizer)), *override,
                             "--trainer.default_root_dir", str(tmp_path)])
    assert err.startswith(f"mannkit: error: {message}"), err
    assert not list(tmp_path.rglob("version_*")), "the refused run left a run folder"


def test_print_config_refuses_a_bad_rate_too(tmp_path, capsys):
    err = _error_of(capsys, ["fit", "--config", str(FIXTURE), LR, "fast", "--print_config"])
    assert re.search(r"optimizer\.init_args\.lr: expected a number, got 'fast'", err), err


def test_override_of_the_default_optimizer(capsys):
    printed = _printed(capsys, ["fit", "--config", str(FIXTURE), LR, "0.25"])  # the fixture names no optimizer
    assert printed == {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.25}}


def test_a_system_built_in_python_names_a_refused_rate():
    from mannkit.core.errors import ConfigError
    from mannkit.systems.optim import build_optimization

    with pytest.raises(ConfigError, match=r"^model\.optimizer\.init_args\.lr: SGD refuses -1 \(Invalid learning rate: -1"):
        build_optimization([torch.nn.Parameter(torch.zeros(2))], {"class_path": "SGD", "init_args": {"lr": -1}}, None)


def test_a_checkpoint_of_a_model_built_in_python_with_a_short_optimizer_name(tmp_path, capsys):
    import lightning as L

    from mannkit.cell import MemoryCell
    from mannkit.nn import LSTMController, MatrixMemory, ReadHead, WriteHead
    from mannkit.systems import SequenceSystem
    from mannkit.tasks import CopyTask
    from mannkit_ntm import NTMAddressing

    cell = MemoryCell(LSTMController(8), MatrixMemory(6, 4), [WriteHead(NTMAddressing()), ReadHead(NTMAddressing())], clip=20.0)
    model = SequenceSystem(cell, optimizer={"class_path": "SGD", "init_args": {"lr": 0.1}})
    task = CopyTask(bits=3, min_length=1, max_length=3, test_lengths=[3, 5], batch_size=4, train_batches=2, val_batches=1, test_batches=1)
    trainer = L.Trainer(max_steps=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, datamodule=task)
    trainer.save_checkpoint(tmp_path / "python.ckpt")
    main(["test", "--config", str(FIXTURE), "--ckpt_path", str(tmp_path / "python.ckpt"), "--trainer.default_root_dir", str(tmp_path)])
    assert "test/len3/bits_per_seq" in capsys.readouterr().out
