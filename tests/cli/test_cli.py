"""The mannkit command: fit/test/predict, print_config round trip, resume, and one-sentence errors."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mannkit.cli import check_config, format_plugins, main

# restoring a checkpoint into another run folder is what these tests do on purpose
pytestmark = pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_copy.yaml"


def _run(tmp_path, *args):
    main([*args, "--trainer.default_root_dir", str(tmp_path)])


def _last_ckpt(root: Path) -> Path:
    found = sorted(root.rglob("last.ckpt"))
    assert found, f"no last.ckpt under {root}"
    return found[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    _run(root, "fit", "--config", str(FIXTURE))
    return root


def test_fit_writes_checkpoint_config_and_tensorboard(trained):
    ckpt = torch.load(_last_ckpt(trained), weights_only=True)
    assert ckpt["global_step"] == 6
    assert ckpt["hyper_parameters"]["input_size"] == 4 and ckpt["hyper_parameters"]["output_size"] == 3
    assert list(trained.rglob("config.yaml")) and list(trained.rglob("events.out.tfevents.*"))

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next(trained.rglob("events.out.tfevents.*")).parent), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/bits_per_seq", "val/bits_per_seq", "val/bit_errors_per_seq", "val/seq_accuracy"} <= tags


def test_test_and_predict_from_checkpoint(trained, tmp_path, capsys):
    ckpt = _last_ckpt(trained)
    _run(tmp_path, "test", "--config", str(FIXTURE), "--ckpt_path", str(ckpt))
    out = capsys.readouterr().out
    assert "test/len3/bits_per_seq" in out and "test/len5/bits_per_seq" in out
    _run(tmp_path, "predict", "--config", str(FIXTURE), "--ckpt_path", str(ckpt))
    predictions = torch.load(next(tmp_path.rglob("predictions.pt")), weights_only=True)
    assert predictions[0]["prediction"].shape[-1] == 3


def test_resume_continues_from_the_checkpoint(trained, tmp_path):
    _run(tmp_path, "fit", "--config", str(FIXTURE), "--ckpt_path", str(_last_ckpt(trained)), "--trainer.max_steps", "9")
    assert torch.load(_last_ckpt(tmp_path), weights_only=True)["global_step"] == 9


def test_printed_config_feeds_back(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(FIXTURE), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out)
    config = yaml.safe_load(printed.read_text())
    assert config["model"]["init_args"]["core"]["init_args"]["memory"]["init_args"]["slots"] == 6
    _run(tmp_path, "fit", "--config", str(printed), "--trainer.max_steps", "2")
    assert torch.load(_last_ckpt(tmp_path), weights_only=True)["global_step"] == 2


def test_dotted_override_reaches_a_nested_component(tmp_path):
    _run(tmp_path, "fit", "--config", str(FIXTURE), "--trainer.max_steps", "1",
         "--model.init_args.core.init_args.memory.init_args.slots", "9")
    hp = torch.load(_last_ckpt(tmp_path), weights_only=True)["hyper_parameters"]
    assert hp["core"]["init_args"]["memory"]["init_args"]["slots"] == 9


def test_component_help(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--model.help", "SequenceSystem"])
    assert "--model.core" in capsys.readouterr().out


def test_plugins_listing(capsys):
    main(["plugins"])
    out = capsys.readouterr().out
    assert "ntm: mannkit" in out and "addressing:NTMAddressing" in out and "controller:LSTMController" in out
    assert format_plugins() in out


# -- user mistakes: one sentence naming the field, the value and the fix ----------------------
def _broken(tmp_path, edit):
    config = yaml.safe_load(FIXTURE.read_text())
    edit(config)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _error_of(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


CORE = lambda c: c["model"]["init_args"]["core"]["init_args"]  # noqa: E731


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: CORE(c)["controller"].update(class_path="LSTMControler"),
            r"model\.init_args\.core\.init_args\.controller\.class_path: unknown class 'LSTMControler'; did you mean 'LSTMController'\?",
        ),
        (
            lambda c: CORE(c)["memory"]["init_args"].update(slotz=6),
            r"model\.init_args\.core\.init_args\.memory\.init_args\.slotz: MatrixMemory has no option 'slotz'; did you mean 'slots'\?",
        ),
        (
            lambda c: CORE(c)["memory"]["init_args"].update(slots=0),
            r"MatrixMemory: slots must be a positive integer, got 0",
        ),
    ],
)
def test_config_mistakes(tmp_path, capsys, edit, message):
    err = _error_of(capsys, ["fit", "--config", str(_broken(tmp_path, edit))])
    assert err.count("\n") == 1, err
    assert __import__("re").search(message, err), err


def test_missing_required_option(tmp_path, capsys):
    path = _broken(tmp_path, lambda c: CORE(c)["heads"][0].pop("init_args"))
    err = _error_of(capsys, ["fit", "--config", str(path)])
    assert err.startswith(
        "mannkit: error: model.init_args.core.init_args.heads.init_args.addressing: WriteHead needs the option 'addressing', "
        "which is missing; add it under WriteHead's init_args."
    ), err


def test_wrong_type(tmp_path, capsys):
    path = _broken(tmp_path, lambda c: CORE(c)["memory"]["init_args"].update(slots="many"))
    err = _error_of(capsys, ["fit", "--config", str(path)])
    assert err.startswith(
        "mannkit: error: model.init_args.core.init_args.memory.init_args.slots: expected an integer, got 'many'; fix that value"
    ), err
    assert err.count("\n") == 1


def test_misspelt_trainer_option(capsys):
    err = _error_of(capsys, ["fit", "--config", str(FIXTURE), "--trainer.max_stepz", "3"])
    assert "--trainer.max_stepz 3; check the spelling ('mannkit fit --help' lists the options)." in err


def test_missing_config_file_and_bad_yaml(tmp_path, capsys):
    err = _error_of(capsys, ["fit", "--config", str(tmp_path / "nope.yaml")])
    assert "--config: the file" in err and "does not exist" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  class_path: [unclosed\n")
    err = _error_of(capsys, ["fit", "--config", str(bad)])
    assert "is not valid YAML at line" in err


def test_missing_checkpoint(tmp_path, capsys):
    err = _error_of(capsys, ["test", "--config", str(FIXTURE), "--ckpt_path", str(tmp_path / "gone.ckpt")])
    assert "--ckpt_path: the file" in err and "gone.ckpt" in err


def test_checkpoint_with_another_task_width(trained, tmp_path, capsys):
    err = _error_of(
        capsys,
        ["test", "--config", str(FIXTURE), "--ckpt_path", str(_last_ckpt(trained)), "--data.init_args.bits", "5",
         "--trainer.default_root_dir", str(tmp_path)],
    )
    assert "the model was built for 4 inputs and 3 outputs per step but the task CopyTask gives 6 and 5" in err


def test_check_config_accepts_the_presets():
    for path in sorted((Path(__file__).parents[2] / "configs").rglob("*.yaml")):
        check_config(path)


def test_console_script_runs_in_a_fresh_process(tmp_path):
    """The installed console script, as a user runs it (also proves main() returns None -> exit 0)."""
    result = subprocess.run(
        [sys.executable, "-c", "from mannkit.cli import main; main()", "plugins"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "NTMAddressing" in result.stdout
