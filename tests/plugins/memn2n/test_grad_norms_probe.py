"""benchmarks/memn2n_grad_norms.py runs on the bAbI fixture and reports every weight of the preset's MemN2N."""

from pathlib import Path

ROOT = Path(__file__).parents[3]


def test_the_probe_prints_each_weight_and_the_joint_norm(capsys, benchmark_script):
    probe = benchmark_script("memn2n_grad_norms")
    probe.main(["--data-dir", str(ROOT / "tests" / "fixtures" / "babi"), "--tasks", "1,8", "--batches", "2"])
    out = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in out[1:-1]]
    assert names[0] == "question.words" and "memories.2.values.time" in names and "answer.weight" in names
    fro, spectral = (float(x) for x in out[1].split()[1:3])
    assert 0 < spectral <= fro + 1e-3, "the largest singular value is never above the Frobenius norm"
    assert out[-1].startswith("all together (joint 2-norm)") and out[-1].rstrip().endswith("100%"), "linear start: all above 40"
