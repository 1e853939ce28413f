"""Issue 10, item 15: ``mannkit fit`` under ``strategy: ddp`` with two CPU processes (gloo), launched as
Lightning launches them: the console script starts rank 0, which re-runs the same command for rank 1.

Run from a child process, since plain ``ddp`` inside pytest would re-launch pytest itself for rank 1
(LIGHTNING_NOTES). A probe callback, imported by both ranks from a module on PYTHONPATH, saves each
rank's weights when training starts and ends, and can put a NaN into one rank's batch at one step.
"""

import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_copy.yaml"
MANNKIT = Path(sys.executable).parent / "mannkit"
PROBE = '''
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback


class Probe(Callback):
    def __init__(self, folder: str, nan_rank: int = -1, nan_step: int = -1) -> None:
        self.folder, self.nan_rank, self.nan_step = Path(folder), nan_rank, nan_step
        self.folder.mkdir(parents=True, exist_ok=True)

    def _save(self, trainer, pl_module, tag):
        state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        torch.save({"step": trainer.global_step, "world_size": trainer.world_size, "state_dict": state},
                   self.folder / f"{tag}_rank{trainer.global_rank}.pt")

    def on_train_start(self, trainer, pl_module):
        self._save(trainer, pl_module, "start")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_rank == self.nan_rank and trainer.global_step == self.nan_step:
            batch["input"][0, 0, 0] = float("nan")

    def on_fit_end(self, trainer, pl_module):
        self._save(trainer, pl_module, "end")
'''


def _fit(tmp_path, *argv):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tmp_path)}
    env.pop("MANNKIT_DISABLE_PLUGINS", None)
    return subprocess.run([str(MANNKIT), "fit", "--config", str(tmp_path / "ddp.yaml"), *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _saved(folder, tag):
    return [torch.load(folder / f"{tag}_rank{rank}.pt", weights_only=True) for rank in (0, 1)]


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_ddp_two_processes_train_checkpoint_resume_and_stop_together(tmp_path):
    (tmp_path / "mk_ddp_probe.py").write_text(PROBE)
    config = yaml.safe_load(FIXTURE.read_text())
    config["trainer"].update(accelerator="cpu", devices=2, strategy="ddp", max_steps=4, val_check_interval=2,
                             default_root_dir=str(tmp_path / "runs"))
    config["trainer"]["callbacks"].append({"class_path": "mk_ddp_probe.Probe", "init_args": {"folder": str(tmp_path / "a")}})
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(config))

    # 1. four steps on two ranks: the ranks end with the same weights, which moved, and last.ckpt holds them
    first = _fit(tmp_path)
    assert first.returncode == 0, first.stderr
    start, end = _saved(tmp_path / "a", "start"), _saved(tmp_path / "a", "end")
    assert [e["step"] for e in end] == [4, 4] and {e["world_size"] for e in end} == {2}
    _assert_same(end[0]["state_dict"], end[1]["state_dict"])
    assert any(not torch.equal(end[0]["state_dict"][k], v) for k, v in start[0]["state_dict"].items())
    runs = sorted((tmp_path / "runs" / "lightning_logs").iterdir())
    assert [r.name for r in runs] == ["version_0"]  # rank 1 claims no folder of its own
    last = runs[0] / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 4
    _assert_same(saved["state_dict"], end[0]["state_dict"])

    # 2. resume on two ranks from step 4; a NaN in rank 1's batch at step 5 stops both, with one message
    second = _fit(tmp_path, "--ckpt_path", str(last), "--trainer.max_steps", "8", "--trainer.callbacks+", "mk_ddp_probe.Probe",
                  "--trainer.callbacks.folder", str(tmp_path / "b"), "--trainer.callbacks.nan_rank", "1",
                  "--trainer.callbacks.nan_step", "5")
    assert second.returncode == 2, second.stderr
    resumed = _saved(tmp_path / "b", "start")
    assert [r["step"] for r in resumed] == [4, 4]
    for rank in resumed:
        _assert_same(rank["state_dict"], end[0]["state_dict"])
    errors = [line for line in second.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        f"mannkit: error: the training loss became nan on rank 1 at step 5; the last good checkpoint is "
        f"{runs[0] / 'checkpoints' / 'epoch=0-step=4.ckpt'} and is left intact; lower the learning rate or set "
        "trainer.gradient_clip_val."
    ], second.stderr
