"""benchmarks/plot_runs.py: one line per run of a logged scalar, and a clear exit for a run that did not log it."""

import sys

import pytest
from matplotlib.image import imread
from torch.utils.tensorboard import SummaryWriter


def _run(folder, values, tag="val/acc"):
    writer = SummaryWriter(str(folder / "lightning_logs" / "version_0"))
    for step, value in values:
        writer.add_scalar(tag, value, step)
    writer.close()
    return folder


def test_plots_each_run_and_prints_last_and_highest(tmp_path, benchmark_script, monkeypatch, capsys):
    a = _run(tmp_path / "a", [(9, 0.2), (19, 0.7), (29, 0.6)])
    b = _run(tmp_path / "b", [(9, 0.1), (19, 0.3)])
    out = tmp_path / "curve.png"
    monkeypatch.setattr(sys, "argv", ["plot_runs", str(a), str(b), "--tag", "val/acc", "--labels", "A", "B",
                                      "--per-step", "16", "--out", str(out)])
    benchmark_script("plot_runs").main()
    printed = capsys.readouterr().out
    assert "A: val/acc = 0.6000 at step 30 (highest 0.7000)" in printed
    assert "B: val/acc = 0.3000 at step 20 (highest 0.3000)" in printed
    assert imread(out).shape[2] in (3, 4)


def test_the_newest_events_file_with_the_tag_is_read(tmp_path, benchmark_script, monkeypatch, capsys):
    run = _run(tmp_path / "a", [(9, 0.5)])
    test_events = SummaryWriter(str(run / "lightning_logs" / "version_1"))  # a later `mannkit test` of the run
    test_events.add_scalar("test/acc", 0.9, 0)
    test_events.close()
    monkeypatch.setattr(sys, "argv", ["plot_runs", str(run), "--tag", "val/acc", "--out", str(tmp_path / "x.png")])
    benchmark_script("plot_runs").main()
    assert "a: val/acc = 0.5000 at step 10" in capsys.readouterr().out


def test_a_run_without_the_tag_names_what_it_logged(tmp_path, benchmark_script, monkeypatch):
    a = _run(tmp_path / "a", [(0, 1.0)], tag="train/loss")
    monkeypatch.setattr(sys, "argv", ["plot_runs", str(a), "--tag", "val/acc", "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit, match=r"logged no 'val/acc'; it logged \['train/loss'\]"):
        benchmark_script("plot_runs").main()
