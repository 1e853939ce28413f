"""Atomic checkpoint writes (issue 10 item 1), no non-finite saves (item 4), not-a-checkpoint files (item 6)."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

from mannkit.callbacks.checkpoint_io import (
    AtomicCheckpointIO,
    CheckpointError,
    atomic_save,
    clean_stale_temporaries,
    is_temporary,
    read_checkpoint,
)
from mannkit.systems import QASystem, SequenceSystem


def _checkpoint(step: int, value: float = 1.0) -> dict:
    return {"global_step": step, "state_dict": {"w": torch.full((64, 64), value)}}


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if is_temporary(p)]


# -- atomic writes ----------------------------------------------------------------------------------
def test_save_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_save(_checkpoint(1), path)
    atomic_save(_checkpoint(2), path)
    assert read_checkpoint(path)["global_step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_the_temporary_file_is_in_the_destination_folder_whatever_tmpdir_is(tmp_path, monkeypatch):
    """Lightning's save goes through $TMPDIR and a move that truncates the target across filesystems; ours never does."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    moves = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (moves.append((Path(src), Path(dst))), real_replace(src, dst))[1])
    target = tmp_path / "run" / "last.ckpt"
    atomic_save(_checkpoint(1), target)
    assert [(src.parent, dst) for src, dst in moves] == [(target.parent, target)]
    assert is_temporary(moves[0][0]) and not list(elsewhere.iterdir())


@pytest.mark.parametrize("stage", ["torch.save", "fsync", "os.replace"])
def test_a_failure_at_any_stage_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch, stage):
    path = tmp_path / "last.ckpt"
    atomic_save(_checkpoint(1), path)

    def fail(*args, **kwargs):
        raise OSError(f"simulated failure in {stage}")

    module, name = {"torch.save": (torch, "save"), "fsync": (os, "fsync"), "os.replace": (os, "replace")}[stage]
    monkeypatch.setattr(module, name, fail)
    with pytest.raises(OSError, match="simulated failure"):
        atomic_save(_checkpoint(2), path)
    monkeypatch.undo()
    assert read_checkpoint(path)["global_step"] == 1
    assert not _temporaries(tmp_path)


def test_a_checkpoint_written_through_a_symlink_replaces_the_link_not_its_target(tmp_path):
    best = tmp_path / "best.ckpt"
    atomic_save(_checkpoint(1), best)
    (tmp_path / "last.ckpt").symlink_to(best.name)
    atomic_save(_checkpoint(2), tmp_path / "last.ckpt")
    assert read_checkpoint(best)["global_step"] == 1
    assert read_checkpoint(tmp_path / "last.ckpt")["global_step"] == 2


_SLOW_SAVE = textwrap.dedent(
    """
    import sys, time, torch
    from mannkit.callbacks.checkpoint_io import atomic_save

    real_save = torch.save
    def slow_save(obj, file):
        import io
        buffer = io.BytesIO()
        real_save(obj, buffer)
        data = buffer.getvalue()
        file.write(data[: len(data) // 2])
        file.flush()
        print("half written", flush=True)
        time.sleep(60)
        file.write(data[len(data) // 2 :])
    torch.save = slow_save
    atomic_save({"global_step": 2, "state_dict": {"w": torch.full((64, 64), 2.0)}}, sys.argv[1])
    """
)


def test_a_process_killed_mid_write_leaves_the_old_file_intact(tmp_path):
    """A real child process, SIGKILLed while half the new checkpoint is written (its $TMPDIR elsewhere)."""
    path = tmp_path / "last.ckpt"
    atomic_save(_checkpoint(1), path)
    before = path.read_bytes()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": "/dev/shm" if os.path.isdir("/dev/shm") else str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", _SLOW_SAVE, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "half written"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
    assert path.read_bytes() == before and read_checkpoint(path)["global_step"] == 1
    (stale,) = _temporaries(tmp_path)  # named as a temporary, so no "last" or *.ckpt search picks it
    assert stale.name == f".last.ckpt.{child.pid}.partial"
    assert clean_stale_temporaries(tmp_path) == [stale] and not _temporaries(tmp_path)


def test_temporaries_of_live_processes_are_not_cleaned(tmp_path):
    mine = tmp_path / f".last.ckpt.{os.getpid()}.partial"
    mine.write_bytes(b"in progress")
    assert clean_stale_temporaries(tmp_path) == [] and mine.exists()


# -- non-finite weights -----------------------------------------------------------------------------
def test_non_finite_weights_are_never_written(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint(_checkpoint(1), path)
    message = r"checkpoint '.*last.ckpt': the weights w hold NaN or inf, so they were not saved and the file keeps its previous content"
    for bad in (float("nan"), float("inf")):
        with pytest.raises(CheckpointError, match=message):
            io.save_checkpoint(_checkpoint(2, bad), path)
    assert io.load_checkpoint(path)["global_step"] == 1 and not _temporaries(tmp_path)


# -- files that are not checkpoints -----------------------------------------------------------------
def _truncated(path: Path) -> None:
    atomic_save(_checkpoint(1), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zip_without_pickle(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")


BAD_FILES = {
    "empty": (lambda p: p.write_bytes(b""), r"the file is empty \(0 bytes\)"),
    "truncated": (_truncated, r"the file is truncated or damaged \(\d+ bytes of a zip archive without its end\)"),
    "random": (lambda p: p.write_bytes(bytes(range(7, 250)) * 4), r"the file is not a PyTorch checkpoint \(it starts with the bytes 0708090a0b0c0d0e"),
    "readme": (lambda p: p.write_text("# My run\nResume with last.ckpt.\n"), r"the file is text \(it starts with '# My run"),
    "zip": (_zip_without_pickle, r"the file is a zip archive but not a PyTorch checkpoint \(it holds no data.pkl\)"),
    "tensor": (lambda p: torch.save(torch.zeros(3), p), r"the file holds PyTorch data but no 'state_dict'"),
    "missing": (lambda p: None, r"the file does not exist"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_not_a_checkpoint_is_one_sentence_naming_the_file(tmp_path, kind):
    make, reason = BAD_FILES[kind]
    path = tmp_path / "model.ckpt"
    make(path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert re.fullmatch(rf"--ckpt_path '{re.escape(str(path))}': {reason}[^\n]*; give a checkpoint written by a finished save, such as the run's checkpoints/last.ckpt\.", message)
    assert "weights_only" not in message and "\n" not in message


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "readme"])
@pytest.mark.parametrize("system", [SequenceSystem, QASystem])
def test_load_from_checkpoint_of_not_a_checkpoint(tmp_path, kind, system):
    make, reason = BAD_FILES[kind]
    path = tmp_path / "model.ckpt"
    make(path)
    with pytest.raises(CheckpointError, match=rf"^load_from_checkpoint '{re.escape(str(path))}': {reason}"):
        system.load_from_checkpoint(path)


class Pickled:
    """A class a checkpoint written from plain Python may hold."""


def test_a_checkpoint_holding_python_objects_is_refused_without_advice_to_load_code(tmp_path):
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "model": Pickled()}, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert str(info.value) == (
        f"--ckpt_path '{path}': the file holds the Python object {__name__}.Pickled besides tensors and plain data, and "
        "mannkit loads no code from checkpoint files; give a checkpoint written by mannkit fit (its configuration is plain data)."
    )


def test_a_temporary_file_is_refused_by_name(tmp_path):
    path = tmp_path / ".last.ckpt.123.partial"
    atomic_save(_checkpoint(1), tmp_path / "x.ckpt")
    os.replace(tmp_path / "x.ckpt", path)
    with pytest.raises(CheckpointError, match="the file is the temporary file of a save that did not finish"):
        read_checkpoint(path)


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "readme"])
def test_the_command_says_what_is_wrong_with_the_ckpt_path(tmp_path, capsys, kind):
    from mannkit.cli import main

    make, reason = BAD_FILES[kind]
    path = tmp_path / "README.md"
    make(path)
    fixture = Path(__file__).parents[1] / "fixtures" / "tiny_copy.yaml"
    with pytest.raises(SystemExit) as info:
        main(["test", "--config", str(fixture), "--ckpt_path", str(path), "--trainer.default_root_dir", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(rf"mannkit: error: --ckpt_path '{re.escape(str(path))}': {reason}", err[0])
    assert "weights_only" not in err[0]
