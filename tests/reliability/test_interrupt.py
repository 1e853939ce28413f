"""Ctrl-C during fit saves last.ckpt and prints the command that resumes the run (issue 10 item 3)."""

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from mannkit.cli import main
from mannkit.systems import SequenceSystem

# restoring a checkpoint into another run folder is what these tests do on purpose
pytestmark = pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_copy.yaml"
MESSAGE = re.compile(r"mannkit: training interrupted at step (\d+); the newest state is in (\S+); resume with:\n(mannkit fit .*)\n")


@pytest.fixture
def keep_sigint():
    """Lightning ignores SIGINT after a KeyboardInterrupt (to shut down in peace); give pytest its handler back."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def test_ctrl_c_saves_the_newest_state_and_prints_the_resume_command(tmp_path, capsys, monkeypatch, keep_sigint):
    real_step = SequenceSystem.training_step

    def interrupted_at_step_4(self, batch, batch_idx):
        if self.global_step == 4:
            raise KeyboardInterrupt
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(SequenceSystem, "training_step", interrupted_at_step_4)
    args = ["fit", "--config", str(FIXTURE), "--trainer.default_root_dir", str(tmp_path)]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 1
    found = MESSAGE.search(capsys.readouterr().err)
    assert found, "no interrupt message"
    step, path, command = found.groups()
    assert step == "4" and Path(path).name == "last.ckpt"
    assert torch.load(path, weights_only=True)["global_step"] == 4  # the last validation was at step 3
    assert command == shlex.join(["mannkit", *args, "--ckpt_path", path])

    monkeypatch.setattr(SequenceSystem, "training_step", real_step)
    main(shlex.split(command)[1:])  # the printed command resumes and finishes the run
    newest = max(tmp_path.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    assert newest != Path(path) and torch.load(newest, weights_only=True)["global_step"] == 6


def test_ctrl_c_without_save_last_names_the_newest_checkpoint(tmp_path, capsys, monkeypatch, keep_sigint):
    real_step = SequenceSystem.training_step

    def interrupted_at_step_5(self, batch, batch_idx):
        if self.global_step == 5:
            raise KeyboardInterrupt
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(SequenceSystem, "training_step", interrupted_at_step_5)
    config = yaml.safe_load(FIXTURE.read_text())
    config["trainer"]["callbacks"][0]["init_args"] = {"save_last": False}
    path = tmp_path / "no_last.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(path), "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err
    found = re.search(r"mannkit: training interrupted at step 5; the newest checkpoint \(save_last is off\) is in (\S+); resume with:\n"
                      r"mannkit fit .* --ckpt_path \1\n", err)
    assert found, err[-2000:]
    assert Path(found.group(1)).name == "epoch=0-step=3.ckpt" and not list(tmp_path.rglob("last.ckpt"))


def _signal_a_running_fit(tmp_path: Path, signum: int, gaps: tuple[float, ...] = (), start: str | None = None) -> tuple[int, str]:
    """Run ``mannkit fit`` of a long copy of the fixture in its own process; once it has written ``last.ckpt``,
    send ``signum`` (then again after each gap); its exit status and stderr."""
    config = yaml.safe_load(FIXTURE.read_text())
    config["trainer"]["max_steps"] = 100_000
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-c", start or "from mannkit.cli import main; main()", "fit", "--config", str(path),
               "--trainer.default_root_dir", str(tmp_path)]
    child = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.rglob("last.ckpt")) and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.2)
        assert list(tmp_path.rglob("last.ckpt")), "the fit wrote no checkpoint"
        child.send_signal(signum)
        for gap in gaps:
            time.sleep(gap)
            child.send_signal(signum)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    return child.returncode, err


@pytest.mark.parametrize("gaps", [(), (0.0,), (0.02, 0.2, 0.5)], ids=["one Ctrl-C", "two at once", "four, up to the exit"])
def test_a_real_sigint_to_a_running_fit(tmp_path, gaps):
    """``mannkit fit`` in its own process, interrupted by SIGINT as Ctrl-C in a terminal does.

    Twice at once is what ``timeout -s INT`` sends (to the command, then to its process group), and what an
    impatient user does: the later ones must not cut the save short, print a traceback from the exit
    hooks, or kill the process by the default action that the interpreter puts back as it finalises.
    """
    # A shell that starts a job in the background without job control (CI runners, ``cmd &`` in a script)
    # hands it SIGINT ignored, and Python keeps it ignored; a terminal's foreground job gets Ctrl-C, so the
    # child restores Python's own handler first, as it would have in a terminal.
    start = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); from mannkit.cli import main; main()"
    status, err = _signal_a_running_fit(tmp_path, signal.SIGINT, gaps, start)
    assert status == 1
    assert "Traceback" not in err, err[-3000:]
    assert "LeafSpec" not in err and "litlogger" not in err, err[:2000]  # known third-party noise, hidden
    found = MESSAGE.search(err)
    assert found, err[-2000:]
    step, saved, resume = found.groups()
    assert torch.load(saved, weights_only=True)["global_step"] == int(step) > 0
    assert resume.startswith("mannkit fit --config ") and resume.endswith(f"--ckpt_path {saved}")


def test_sigterm_to_a_running_fit_saves_prints_and_exits_143(tmp_path):
    """``kill PID`` (and ``timeout``'s default signal, and a scheduler before it kills a job) sends SIGTERM:
    the run saves its newest state and says how to resume, as Ctrl-C does, and does not exit 0 (Lightning's
    own SIGTERMException would), so a script or a scheduler does not take it for a finished run."""
    status, err = _signal_a_running_fit(tmp_path, signal.SIGTERM)
    assert status == 143, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    found = re.search(r"mannkit: training stopped by SIGTERM at step (\d+); the newest state is in (\S+); resume with:\n"
                      r"(mannkit fit .*)\n", err)
    assert found, err[-2000:]
    step, saved, resume = found.groups()
    assert torch.load(saved, weights_only=True)["global_step"] == int(step) > 0
    assert resume.startswith("mannkit fit --config ") and resume.endswith(f"--ckpt_path {saved}")


def test_a_stop_asked_for_mid_step_is_raised_at_the_next_batch_boundary(tmp_path, capsys, monkeypatch, keep_sigint):
    """The command's Ctrl-C handler only asks for a stop while a trainer runs (a KeyboardInterrupt raised inside
    TensorBoard's queue could leave its writer asleep and the shutdown waiting on it for minutes);
    SafeInterrupt raises it when the next batch starts, so the step in progress finishes and is saved."""
    from mannkit.callbacks.interrupt import request_stop, stop_pending

    real_step = SequenceSystem.training_step
    asked = []

    def signalled_during_step_4(self, batch, batch_idx):
        if self.global_step == 4:
            asked.append(request_stop())  # what the SIGINT handler does while a trainer runs
            assert stop_pending()
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(SequenceSystem, "training_step", signalled_during_step_4)
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(FIXTURE), "--trainer.default_root_dir", str(tmp_path)])
    assert info.value.code == 1 and asked == [True]
    found = MESSAGE.search(capsys.readouterr().err)
    assert found and found.group(1) == "5"  # step 4 (the 5th) finished, the 6th never started
    assert torch.load(found.group(2), weights_only=True)["global_step"] == 5
    assert not stop_pending() and request_stop() is False  # disarmed once the run is over
