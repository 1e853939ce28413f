"""benchmarks/peer_memn2n_babi.py: the Python 3 changes apply to a peer-shaped folder and its output is parsed."""

from pathlib import Path

import pytest


def _fake_peer(folder: Path) -> Path:
    (folder / "memn2n").mkdir(parents=True)
    (folder / "memn2n" / "nn.py").write_text(
        "x = a.astype(np.int).flatten()\ny = np.float\n        z = zip(*tmp)  # unzipping trick !\n        z = zip(*tmp)\n"
    )
    (folder / "babi_runner.py").write_text("seed_val = 42\ndef run():\n    tasks = range(20)\n")
    return folder


def test_prepare_applies_every_change(tmp_path, benchmark_script):
    script = benchmark_script("peer_memn2n_babi")
    peer = script.prepare(_fake_peer(tmp_path / "src"), tmp_path / "work")
    nn = (peer / "memn2n" / "nn.py").read_text()
    assert "np.int64)" in nn and "np.float64" in nn and "np.int)" not in nn
    assert nn.count("z = tuple(np.array(a, dtype=np.int64) for a in zip(*tmp))") == 2
    runner = (peer / "babi_runner.py").read_text()
    assert "os.environ.get('SEED', 42)" in runner and "os.environ.get('TASKS'" in runner


def test_prepare_refuses_another_version(tmp_path, benchmark_script):
    script = benchmark_script("peer_memn2n_babi")
    src = _fake_peer(tmp_path / "src")
    (src / "babi_runner.py").write_text("seed_val = 7\n")
    with pytest.raises(SystemExit, match="seed_val = 42.*not found.*84f6351"):
        script.prepare(src, tmp_path / "work")
    with pytest.raises(SystemExit, match="no babi_runner.py"):
        script.prepare(tmp_path / "nowhere", tmp_path / "work2")


def test_parse_log_reads_the_errors(benchmark_script):
    log = ("1 | train error: 0.5 | val error: 0.6\n60 | train error: 0.00111607 | val error: 0.0364583\r"
           "Testing for task 1 ...\nTest error: 0.003024\nTesting for task 16 ...\nTest error: 0.051411\n")
    parsed = benchmark_script("peer_memn2n_babi").parse_log(log)
    assert parsed["test_error_percent"] == {1: 0.3, 16: 5.14}
    assert parsed["last_epoch"] == 60
    assert parsed["train_error_percent"] == pytest.approx(0.111607)
