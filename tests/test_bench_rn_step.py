"""benchmarks/bench_rn_step.py: one timing row per story length (timings are measured there, not asserted here)."""


def test_one_row_per_story_length(benchmark_script, capsys):
    script = benchmark_script("bench_rn_step")
    script.main(["--sentences", "2", "20", "--repeats", "1"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| 2 |", "| 20 |"))]
    assert len(rows) == 2, out
    for row in rows:
        full, trimmed, ratio = (float(x) for x in row.split("|")[2:5])
        assert full > 0 and trimmed > 0
        assert abs(ratio - trimmed / full) < 0.02, row  # the ratio of the printed (rounded) medians
