"""MemN2N learns bAbI task 16 (basic induction, 1k set) with the original code's position encoding, not with the printed one.

A learning check on the real data (skipped without it; set MANNKIT_BABI_DIR to the tasks_1-20_v1-2 folder):
``benchmarks/run_memn2n_babi.py --tasks 16 --seed 0`` with the per-task schedule, about 30 s per run on one thread.
"""

import os
from pathlib import Path

import pytest

REAL = Path(os.environ.get("MANNKIT_BABI_DIR", "/work/shared/data/babi/tasks_1-20_v1-2")) / "en"


@pytest.mark.skipif(not (REAL / "qa16_basic-induction_train.txt").exists(), reason=f"bAbI 1k data not found in {REAL}")
def test_task16_is_learned_with_the_code_form_and_not_with_the_printed_one(tmp_path, benchmark_script):
    bench = benchmark_script("run_memn2n_babi")
    errors = {}
    for form in ("code", "paper"):
        args = bench.parse_args(["--data-dir", str(REAL), "--tasks", "16", "--seed", "0", "--position-form", form, "--out", str(tmp_path)])
        model, data, _, _ = bench.train(args)
        errors[form] = bench.evaluate(model, data.split("test"))["per_task"][16]
    assert errors["code"] < 5.0 and errors["paper"] > 30.0, errors  # measured: 0.5% and 50.2%
