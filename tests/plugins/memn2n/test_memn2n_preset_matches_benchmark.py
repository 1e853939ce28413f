"""Issue 15: ``mannkit fit --config configs/memn2n/babi_1k_joint.yaml`` trains what benchmarks/run_memn2n_babi.py trains.

Both run from the same seed on the tiny bAbI files in tests/fixtures/babi (tasks 1 and 8, batches of 3 with a
short last batch), through linear start (capped), the switch and an annealed main phase; the preset is
used as it is, only its sizes and epoch counts shrunk. The weights at the end must agree: that takes the
same initial weights, batch order, random-noise draws, summed cost, gradient clip, learning rate in every
epoch, and the same switch from linear start.
"""

from pathlib import Path

import pytest
import torch
import yaml

from mannkit.cli import main

ROOT = Path(__file__).parents[3]
PRESET = ROOT / "configs" / "memn2n" / "babi_1k_joint.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "babi"
SEED, LR, DIM, BATCH, LINEAR, MAIN, ANNEAL = 3, 0.05, 8, 3, 2, 3, 2
ORIGINAL_CODE = ["--position-length", "fixed", "--drop-punctuation", "--clip-tables", "together", "--nil-gradient"]
CLIP = 0.5  # low enough that the fixture's gradients are clipped (each weight alone, in both)


def _shrunk_preset(tmp_path: Path, patience: int | None = None, linear: int = LINEAR) -> Path:
    config = yaml.safe_load(PRESET.read_text())
    for callback in config["trainer"]["callbacks"]:
        if callback["class_path"] == "LinearStartSchedule":
            callback["init_args"].update(max_linear_epochs=linear, main_epochs=MAIN)
            if patience is not None:  # the paper's reading: end when val/loss stops falling
                callback["init_args"].update(monitor="val/loss", patience=patience)
        if callback["class_path"] == "ClipEachGradient":
            callback["init_args"].update(max_norm=CLIP)
    config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"] if c["class_path"] != "AttentionPictures"]
    config["trainer"].update(default_root_dir=str(tmp_path / "runs"), enable_progress_bar=False, logger=False)
    system = config["model"]["init_args"]
    system["model"]["init_args"]["embedding_dim"] = DIM
    system["optimizer"]["init_args"]["lr"] = LR
    system["lr_scheduler"]["init_args"]["step_size"] = ANNEAL
    config["data"]["init_args"].update(data_dir=str(FIXTURES), tasks=[1, 8], batch_size=BATCH)
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_preset_keeps_the_papers_settings(benchmark_script):
    config = yaml.safe_load(PRESET.read_text())
    trainer, system = config["trainer"], config["model"]["init_args"]
    schedule = next(c["init_args"] for c in trainer["callbacks"] if c["class_path"] == "LinearStartSchedule")
    assert system["loss_reduction"] == "sum" and system["optimizer"]["init_args"]["lr"] == 0.005
    assert "gradient_clip_val" not in trainer and system["lr_scheduler"]["init_args"] == {"step_size": 15, "gamma": 0.5}
    clip = next(c["init_args"] for c in trainer["callbacks"] if c["class_path"] == "ClipEachGradient")
    assert clip == {"max_norm": 40.0, "norm": "spectral", "together": ["words", "time"]}, \
        "each weight clipped alone, an embedding's word and time tables as one, as the original code's nn/Weight.m"
    memn2n = system["model"]["init_args"]
    assert (memn2n["position_length"], memn2n["nil_gradient"], config["data"]["init_args"]["drop_punctuation"]) == ("data", True, True)
    assert schedule == {"monitor": None, "max_linear_epochs": 30, "main_epochs": 60}, "30 linear epochs, as the original code"
    assert trainer["max_epochs"] >= 30 + 60
    bench = benchmark_script("run_memn2n_babi").parse_args(["--data-dir", "x"])
    assert (bench.ls_lr, bench.lr, bench.max_grad_norm, bench.batch_size, bench.dim, bench.memory_size) == (0.005, 0.005, 40.0, 32, 50, 50)
    assert (bench.ls_epochs, bench.epochs, bench.anneal_every, bench.ls_patience, bench.clip) == (30, 60, 15, None, "each")
    assert system["model"]["init_args"]["attend_empty_slots"] is True and bench.attend_empty_slots is True
    assert benchmark_script("run_memn2n_babi").parse_args(["--data-dir", "x", "--tasks", "3"]).attend_empty_slots is False, "per task: masked"


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
@pytest.mark.parametrize(("patience", "linear"), [(None, LINEAR), (3, LINEAR), (0, 12)],
                         ids=["fixed-linear-epochs", "linear-epochs-capped", "val-loss-stops-falling"])
def test_same_seed_same_weights_as_the_benchmark(tmp_path, patience, linear, benchmark_script):
    bench = benchmark_script("run_memn2n_babi")
    args = bench.parse_args(["--data-dir", str(FIXTURES), "--tasks", "1,8", "--seed", str(SEED), "--dim", str(DIM),
                             "--batch-size", str(BATCH), "--ls-lr", str(LR), "--ls-epochs", str(linear),
                             "--ls-patience", str(patience).lower(), "--epochs", str(MAIN), "--anneal-every", str(ANNEAL),
                             "--max-grad-norm", str(CLIP), *ORIGINAL_CODE])
    model, _, history, linear_epochs = bench.train(args)
    assert [row["lr"] for row in history] == [LR] * linear_epochs + [LR, LR, LR / 2]
    assert linear_epochs == linear if patience != 0 else linear_epochs < linear, "each case ends linear start its own way"

    main(["fit", "--config", str(_shrunk_preset(tmp_path, patience, linear)), "--seed_everything", str(SEED)])
    saved = torch.load(next((tmp_path / "runs").rglob("last.ckpt")), weights_only=True)
    assert saved["epoch"] + 1 == len(history) == linear_epochs + MAIN, "linear epochs, then MAIN epochs with the softmax"
    ours = {k.removeprefix("model."): v for k, v in saved["state_dict"].items() if k.startswith("model.")}
    theirs = model.state_dict()
    assert ours.keys() == theirs.keys()
    assert not bool(ours["head.linear"]), "the softmax is back in"
    for name, value in theirs.items():
        if name.endswith("words"):  # row 0, the padding word: the benchmark drops its gradient, fit does not; it is
            assert not value[0].any(), name  # zero forward either way (SentenceEncoder.nil), so only rows 1.. must agree
            ours[name], value = ours[name][1:], value[1:]
        torch.testing.assert_close(ours[name], value, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    assert saved["lr_schedulers"][0]["_last_lr"] == [LR / 2]


def test_loss_reduction_is_mean_or_sum():
    from mannkit.core.errors import ConfigError
    from mannkit.systems.qa import BagOfWordsQA, QASystem

    assert QASystem(BagOfWordsQA(4)).loss_reduction == "mean"
    with pytest.raises(ConfigError, match="loss_reduction must be mean or sum"):
        QASystem(BagOfWordsQA(4), loss_reduction="avg")
