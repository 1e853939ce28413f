"""Recurrent models on bAbI streams: the per-task error of SequenceSystem, the presets, pictures and learning."""

from pathlib import Path

import lightning as L
import pytest
import torch

import mannkit.callbacks  # noqa: F401  (check_config resolves short names)
from mannkit.cli import check_config, main
from mannkit.metrics.qa import JudgedTaskError, question_correct
from mannkit.systems import SequenceSystem
from mannkit.tasks import BabiSequenceTask, CopyTask
from mannkit.nn import ControllerCell
from mannkit.nn import LSTMController

ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "babi"
PRESETS = [ROOT / "configs" / p for p in ("dnc/babi_small.yaml", "dnc/babi_joint.yaml", "ntm/babi_small.yaml", "lstm/babi_small.yaml")]


def test_a_question_is_right_only_when_every_answer_slot_is():
    # row 0: question 1 at step 0 (right), question 2 at steps 2 and 3 (the second word wrong); row 1: question 1 (wrong)
    logits = torch.tensor([[[3.0, 0, 0], [0, 0, 9], [0, 3, 0], [3, 0, 0]], [[0, 0, 3], [0, 3, 0], [0, 0, 0], [0, 0, 0]]])
    target = torch.tensor([[0, 0, 1, 2], [0, 0, 0, 0]])
    question = torch.tensor([[1, 0, 2, 2], [0, 1, 0, 0]])
    correct, row = question_correct(logits, target, question)
    assert correct.tolist() == [True, False, False] and row.tolist() == [0, 0, 1]
    metric = JudgedTaskError(num_tasks=3)
    metric.update(correct, torch.tensor([3, 1])[row])  # row 0 is task 3, row 1 task 1
    assert metric.compute().tolist()[0] == 1.0 and metric.compute().tolist()[2] == 0.5
    assert torch.isnan(metric.compute()[1])


def test_an_unknown_answer_word_is_always_wrong():
    correct, _ = question_correct(torch.zeros(1, 2, 3), torch.tensor([[0, -1]]), torch.tensor([[0, 1]]))
    assert correct.tolist() == [False]


def _fit(core, task, steps: int, tmp_path: Path, **trainer) -> L.Trainer:
    model = SequenceSystem(core, optimizer={"class_path": "torch.optim.Adam", "init_args": {"lr": 0.02}})
    fit = L.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path, **trainer,
    )
    fit.fit(model, datamodule=task)
    return fit


@pytest.mark.filterwarnings("ignore:The number of training batches:UserWarning")
def test_the_system_logs_and_tabulates_the_per_task_error_of_streams(tmp_path):
    for name in ("qa1_single-supporting-fact", "qa8_lists-sets"):  # test on the training stories: some answers right
        text = (FIXTURES / f"{name}_train.txt").read_text()
        (tmp_path / f"{name}_train.txt").write_text(text)
        (tmp_path / f"{name}_test.txt").write_text(text)
    torch.manual_seed(0)
    task = BabiSequenceTask(str(tmp_path), tasks=[1, 8], batch_size=3, val_fraction=0.25)
    trainer = _fit(ControllerCell(LSTMController(16)), task, 30, tmp_path)
    assert "val/mean_error" in trainer.callback_metrics and "val/error/task8" in trainer.callback_metrics
    model = trainer.lightning_module
    (metrics,) = trainer.test(model, datamodule=task, verbose=False)
    # the same figures by hand, from the model's predictions on every test stream
    data = task.split("test")
    batch = data.__getitems__(list(range(len(data))))
    with torch.no_grad():
        correct, row = question_correct(model(batch["input"]).logits, batch["target"], batch["question"])
    tasks = batch["task"][row]
    errors = {t: 1.0 - float(correct[tasks == t].float().mean()) for t in (1, 8)}
    assert metrics["test/error/task1"] == pytest.approx(errors[1]) and metrics["test/error/task8"] == pytest.approx(errors[8])
    assert metrics["test/mean_error"] == pytest.approx((errors[1] + errors[8]) / 2)
    assert metrics["test/failed_tasks"] == sum(e > 0.05 for e in errors.values())
    table = (Path(trainer.default_root_dir) / "qa_results.md").read_text()
    assert f"| 1 | single-supporting-fact | {int((tasks == 1).sum())} |" in table and "| 8 | lists-sets |" in table
    assert "test/error/task2" not in metrics
    assert 0 < metrics["test/mean_error"] < 1, metrics  # some questions right, some wrong: the check can fail


def test_tasks_without_questions_log_no_task_error(tmp_path):
    trainer = _fit(ControllerCell(LSTMController(6)), CopyTask(bits=3, max_length=3, train_batches=1, val_batches=1), 1, tmp_path)
    assert "val/bits_per_seq" in trainer.callback_metrics and "val/mean_error" not in trainer.callback_metrics


def test_a_small_seeded_lstm_learns_the_fixture_streams():
    """Loss falls on the answer slots: 80 Adam steps (lr 0.01, clip 1) on the 8 training stories of the fixtures, seed 0."""
    torch.manual_seed(0)
    task = BabiSequenceTask(str(FIXTURES), tasks=[1, 8], batch_size=8, val_fraction=0.0, seed=0)
    model = SequenceSystem(ControllerCell(LSTMController(24)), loss="ce", optimizer={"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01}})
    model.core.bind(task.input_size, task.output_size)
    optimizer = model.configure_optimizers()
    batch = task.example_batch(8, split="train")
    losses = []
    for _ in range(80):
        loss = model._loss(model(batch["input"]).logits, batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(2.079, abs=0.01)  # ln 8: uniform over the 8 answer words at first
    assert losses[-1] < 0.4 * losses[0], losses  # seeds 0-4: the last loss is 7-30% of the first (seed 0: 7%)


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning", "ignore:The number of training batches:UserWarning")
@pytest.mark.parametrize("path", PRESETS, ids=[f"{p.parent.name}/{p.stem}" for p in PRESETS])
def test_preset_checks_and_trains_one_step_on_the_fixtures(path, tmp_path):
    text = path.read_text()
    assert text.startswith("#") and f"mannkit fit --config configs/{path.parent.name}/{path.name}" in text
    check_config(path)
    main([
        "fit", "--config", str(path),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.max_steps", "1",
        "--trainer.limit_val_batches", "1",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false",
        "--data.init_args.data_dir", str(FIXTURES),
        "--data.init_args.tasks", "[1, 8]",
        "--data.init_args.batch_size", "2",
        *(["--model.init_args.core.init_args.memory.init_args.slots", "16"] if "joint" in path.name else []),
    ])
    checkpoint = torch.load(next(tmp_path.rglob("*.ckpt")), weights_only=True)
    assert checkpoint["global_step"] == 1


@pytest.mark.filterwarnings("ignore:The number of training batches:UserWarning")
def test_memory_pictures_show_what_the_dnc_does_while_it_reads_a_story(tmp_path):
    main([
        "fit", "--config", str(ROOT / "configs" / "dnc" / "babi_small.yaml"),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.max_steps", "1",
        "--trainer.val_check_interval", "1",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false",
        "--trainer.callbacks.init_args.every_n_validations", "1",
        "--data.init_args.data_dir", str(FIXTURES),
        "--data.init_args.tasks", "[1, 8]",
    ])
    names = {p.name.split("_", 1)[1] for p in tmp_path.rglob("pictures/*.png")}
    assert {"example.png", "write_weights.png", "read_weights.png", "allocation_weights.png", "usage.png"} <= names


def test_step_labels_are_the_words_of_the_stream():
    from mannkit.tasks import BabiSequenceTask

    data = BabiSequenceTask(str(FIXTURES), tasks=[1, 8], batch_size=2)
    data.setup("fit")
    batch = data.example_batch(2)
    labels = data.step_labels(batch, 1)
    words = data.example(1)["words"]
    assert len(labels) == batch["input"].shape[1] >= len(words)
    real = [w for w in words if w != "<pad>"]
    assert labels[: len(real)] == real and set(labels[len(real):]) <= {""}
    assert "-" in labels and labels.index("-") > 0  # the answer slot follows its question
