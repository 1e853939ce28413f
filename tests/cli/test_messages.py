"""Issue 9, "one sentence, everywhere": each mistake below once ended in a garbled or misleading message.

Each is reproduced through ``mannkit.cli.main`` and must now end in one line naming the field (as it is
typed on the command line), the value and the fix.
"""

import re
from pathlib import Path

import pytest
import torch
import yaml

from mannkit.cli import main
from mannkit.core.parser_errors import explain

FIXTURES = Path(__file__).parents[1] / "fixtures"
TINY = FIXTURES / "tiny_copy.yaml"
CORE = "model.init_args.core.init_args"
TRAINER = {"max_steps": 1, "enable_progress_bar": False, "logger": False, "enable_checkpointing": False}


def _error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("mannkit: error: ") and err.count("\n") == 1, err
    for garble in ("NestedArg(", "Given value", "Namespace(", "<class '", "Traceback"):
        assert garble not in err, err
    return err


def _config(tmp_path: Path, model: dict, data: dict) -> str:
    path = tmp_path / "config.yaml"
    trainer = {**TRAINER, "default_root_dir": str(tmp_path)}
    path.write_text(yaml.safe_dump({"seed_everything": 1, "trainer": trainer, "model": model, "data": data}))
    return str(path)


BABI = {"class_path": "BabiDataModule", "init_args": {"data_dir": str(FIXTURES / "babi"), "tasks": 1, "batch_size": 4}}
CELL = {
    "class_path": "MemoryCell",
    "init_args": {
        "controller": {"class_path": "LSTMController", "init_args": {"hidden_size": 8}},
        "memory": {"class_path": "MatrixMemory", "init_args": {"slots": 6, "word_size": 4}},
        "heads": [{"class_path": "ReadHead", "init_args": {"addressing": {"class_path": "NTMAddressing"}}}],
    },
}


@pytest.mark.parametrize(
    "override, message",
    [
        # a misspelt class on a dotted override gets the same "did you mean" as in YAML
        (
            [f"--{CORE}.memory.class_path", "MatrixMemroy"],
            rf"{CORE}\.memory\.class_path: unknown class 'MatrixMemroy'; did you mean 'MatrixMemory'\? "
            r"Give one of .*MatrixMemory.*\.$",
        ),
        (
            [f"--{CORE}.controller", "LSTMControler"],
            rf"{CORE}\.controller: unknown class 'LSTMControler'; did you mean 'LSTMController'\? Give one of .*GRUController",
        ),
        (
            [f"--{CORE}.memory", "QueueMemroy"],
            rf"{CORE}\.memory: unknown class 'QueueMemroy'; give one of .*MatrixMemory",
        ),
        # a class of another kind
        (
            [f"--{CORE}.memory", "LSTMController"],
            rf"{CORE}\.memory: MemoryCell expects a Memory here, but LSTMController is a Controller; give one of .*MatrixMemory",
        ),
        # a bad value for an int | "auto" | None option (once the whole model config)
        (
            [f"--{CORE}.checkpoint_every", "abc"],
            r"MemoryCell: checkpoint_every must be a positive integer, auto or null, got 'abc'; use e\.g\. 8, auto",
        ),
        (
            [f"--{CORE}.clip", "abc"],
            rf"{CORE}\.clip: expected a number or null, got 'abc'; fix that value",
        ),
        (
            [f"--{CORE}.slotz", "5"],
            rf"{CORE}\.slotz: MemoryCell has no option 'slotz' \(its options: controller, memory, heads, .*\); check the spelling",
        ),
    ],
)
def test_dotted_override_mistakes(tmp_path, capsys, override, message):
    err = _error(capsys, ["fit", "--config", str(TINY), *override, "--trainer.default_root_dir", str(tmp_path)])
    assert re.search(message, err), err


def test_an_option_of_another_callback_than_the_last_is_explained(tmp_path, capsys):
    """``--trainer.callbacks.mix`` sets the last callback of the curriculum preset (LengthGeneralisation), not Curriculum."""
    preset = Path(__file__).parents[2] / "configs" / "ntm" / "copy_curriculum.yaml"
    err = _error(capsys, ["fit", "--config", str(preset), "--trainer.callbacks.mix", "0.2", "--trainer.default_root_dir", str(tmp_path)])
    assert re.search(r"trainer\.callbacks\.init_args\.mix: LengthGeneralisation has no option 'mix' \(its options: .*\); "
                     r"--trainer\.callbacks\.<option> sets an option of the last callback in the list only; to set another "
                     r"callback's option, copy the config and set it under that callback's init_args\.$", err.strip()), err
    assert not any(tmp_path.iterdir())  # no run folder


@pytest.mark.parametrize(
    "option, typo",
    [("controller", "LSTMControler"), ("memory", "MatrixMemroy"), ("heads", "WriteHaed")],
)
def test_a_class_typo_reads_the_same_in_yaml_and_on_the_command_line(tmp_path, capsys, option, typo):
    config = yaml.safe_load(TINY.read_text())
    node = config["model"]["init_args"]["core"]["init_args"][option]
    (node[0] if isinstance(node, list) else node)["class_path"] = typo
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config))
    from_yaml = _error(capsys, ["fit", "--config", str(path)])
    override = [f"--{CORE}.{option}.class_path", typo] if option != "heads" else [f"--{CORE}.heads+", typo]
    from_override = _error(capsys, ["fit", "--config", str(TINY), *override, "--trainer.default_root_dir", str(tmp_path)])
    assert "; did you mean '" in from_yaml and "? Give one of " in from_yaml, from_yaml
    # the same sentence after the field (a list item is [0] in YAML, appended with heads+ on the command line)
    assert from_yaml.split(": ", 3)[3] == from_override.split(": ", 3)[3], (from_yaml, from_override)


def test_int_or_none_in_yaml_does_not_dump_the_config(tmp_path, capsys):
    config = yaml.safe_load(TINY.read_text())
    config["model"]["init_args"]["core"]["init_args"]["checkpoint_every"] = "abc"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    err = _error(capsys, ["fit", "--config", str(path)])
    assert "MemoryCell: checkpoint_every must be a positive integer, auto or null, got 'abc'; use e.g. 8, auto" in err
    assert len(err.strip().splitlines()) == 1, err


def test_memory_cell_where_a_qa_model_is_expected(tmp_path, capsys):
    err = _error(capsys, ["fit", "--config", _config(tmp_path, {"class_path": "QASystem", "init_args": {"model": CELL}}, BABI)])
    # the list names every registered QA model (plugins add to it), in alphabetical order, as one sentence
    match = re.search(
        r"mannkit: error: model\.init_args\.model: QASystem expects a QAModel here, but MemoryCell is a RecurrentCell; "
        r"give one of ([A-Za-z0-9+, ]+) or (\w+)\.$", err, re.MULTILINE
    )
    assert match, err
    names = match.group(1).split(", ") + [match.group(2)]
    assert {"BagOfWordsQA", "DMNPlus", "MemN2N"} <= set(names) and names == sorted(names), err


def test_dmn_given_a_matrix_memory(tmp_path, capsys):
    dmn = {
        "class_path": "DMNPlus",
        "init_args": {"memory": {"class_path": "MatrixMemory", "init_args": {"slots": 6, "word_size": 4}}},
    }
    err = _error(capsys, ["fit", "--config", _config(tmp_path, {"class_path": "QASystem", "init_args": {"model": dmn}}, BABI)])
    assert (
        "model.init_args.model.init_args.memory: DMNPlus expects a FactMemory or null here, but MatrixMemory is not one; "
        "give one of FactMemory or null." in err
    ), err


def test_sequence_system_with_babi_data(tmp_path, capsys):
    model = {"class_path": "SequenceSystem", "init_args": {"core": CELL, "input_size": 10, "output_size": 10}}
    err = _error(capsys, ["fit", "--config", _config(tmp_path, model, BABI)])
    assert (
        "data.class_path: SequenceSystem trains on sequence tasks (input, target and mask per step) such as CopyTask, "
        "but BabiDataModule has no input_size; use QASystem as the model for question-answering data" in err
    ), err


# -- checkpoints written by another version -----------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fit")
    main(["fit", "--config", str(TINY), "--trainer.max_steps", "1", "--trainer.default_root_dir", str(root)])
    return sorted(root.rglob("last.ckpt"))[-1]


def _edited(checkpoint: Path, tmp_path: Path, edit) -> Path:
    saved = torch.load(checkpoint, weights_only=True)
    edit(saved["hyper_parameters"])
    path = tmp_path / "old.ckpt"
    torch.save(saved, path)
    return path


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda hp: hp["core"]["init_args"].update(old_option=3),
            r"the checkpoint was written by another version of mannkit or its plugins and holds the argument "
            rf"{CORE}\.old_option = 3, which MemoryCell no longer has; load it with the version that wrote it, "
            r"or delete that argument from the checkpoint's hyper_parameters\.",
        ),
        (
            lambda hp: hp.update(retired=1),
            r"holds the argument model\.init_args\.retired = 1, which SequenceSystem no longer has",
        ),
        (
            lambda hp: hp["core"]["init_args"]["memory"].update(class_path="gone_plugin.GoneMemory"),
            r"names the class 'gone_plugin\.GoneMemory' at model\.init_args\.core\.init_args\.memory\.class_path, "
            r"which is not installed here; install the plugin that defines it",
        ),
    ],
)
def test_checkpoint_from_another_version(checkpoint, tmp_path, capsys, edit, message):
    path = _edited(checkpoint, tmp_path, edit)
    err = _error(capsys, ["test", "--config", str(TINY), "--ckpt_path", str(path), "--trainer.default_root_dir", str(tmp_path)])
    assert f"--ckpt_path {path}: " in err and "fix that value in the config" not in err, err
    assert re.search(message, err), err


def test_explain_reads_plain_messages_as_none():
    assert explain("unrecognized arguments: --trainer.max_stepz 3") is None


def test_a_bool_or_literal_option_names_both_kinds_of_value(capsys):
    preset = Path(__file__).parents[2] / "configs" / "memn2n" / "babi_1k_joint.yaml"
    err = _error(capsys, ["fit", "--config", str(preset), "--model.init_args.model.init_args.position_encoding", "matlab",
                          "--print_config"])
    assert re.search(r"model\.init_args\.model\.init_args\.position_encoding: expected true or false or one of 'code', 'paper', "
                     r"got 'matlab'; fix that value", err), err
