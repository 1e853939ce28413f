"""QASystem: sizes from the data, learning, checkpoints, logged metrics and the per-task table, predict, errors, the CLI.

The fixtures (tests/fixtures/babi, tasks 1 and 8) give V = 35, A = 10, N = 6, L = 7, Q = 5. Their test
set has 5 questions: task 1 'garden', 'bathroom' (never a training answer: class -1), 'kitchen';
task 8 'football,milk', 'milk'. A model that always answers 'kitchen' is right once in task 1 and
never in task 8: errors 2/3 and 1, mean error 5/6, accuracy 1/5.
"""

import csv
import doctest
import math
import random
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

import mannkit.systems.qa as qa_module
from mannkit.cli import main
from mannkit.core.errors import ConfigError, ShapeError, TrainingError
from mannkit.core.interfaces import QAModel, QAOutput
from mannkit.systems import BagOfWordsQA, QASystem, answer_loss
from mannkit.tasks import BabiDataModule
from mannkit.tasks.babi import answer_word_ids

FIXTURES = Path(__file__).parents[1] / "fixtures" / "babi"
SIZES = (35, 10, 6, 7, 5)

pytestmark = pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")


def _data(**overrides) -> BabiDataModule:
    return BabiDataModule(**{"data_dir": str(FIXTURES), "tasks": [1, 8], "batch_size": 4, **overrides})


def _trainer(root, **overrides) -> L.Trainer:
    settings = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, max_steps=2, default_root_dir=str(root),
    )
    return L.Trainer(**{**settings, **overrides})


class ConstantQA(QAModel):
    """Always prefers answer class ``answer`` (by 5 logits); a learnable bias makes it trainable; ``nan`` poisons it."""

    def __init__(self, answer: int = 0, nan: bool = False) -> None:
        super().__init__()
        self.answer, self.nan = answer, nan

    def bind(self, vocab_size: int, answer_size: int, max_sentences: int, sentence_length: int, question_length: int) -> None:
        self._bind_once(vocab_size=vocab_size, answer_size=answer_size)
        self.bias = nn.Parameter(torch.zeros(answer_size))
        self.bound = (vocab_size, answer_size, max_sentences, sentence_length, question_length)

    def forward(self, story, question, record=False):
        B = story.shape[0]
        logits = torch.zeros(B, self.bias.shape[0])
        logits[:, self.answer] = 5.0
        logits = logits + self.bias
        if self.nan:
            logits = logits * float("nan")
        return QAOutput(logits, {} if record else None)


class AnswerWordsQA(ConstantQA):
    """A model whose bind takes the answers' word ids (as MemN2N's tied W does)."""

    def bind(self, vocab_size, answer_size, max_sentences, sentence_length, question_length, answer_words=None) -> None:
        super().bind(vocab_size, answer_size, max_sentences, sentence_length, question_length)
        self.answer_words = answer_words


def test_docstrings():
    assert doctest.testmod(qa_module).failed == 0


# -- the loss and the baseline --------------------------------------------------------------------
def test_answer_loss_leaves_out_answers_without_a_class():
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, -5.0]], requires_grad=True)
    # row 0: p(class 1) = 3/4 -> -log(3/4); row 1 has no class
    assert math.isclose(answer_loss(logits, torch.tensor([1, -1])).item(), -math.log(0.75), rel_tol=1e-6)
    none = answer_loss(logits, torch.tensor([-1, -1]))
    none.backward()
    assert none.item() == 0.0 and logits.grad is not None


def test_bag_of_words_ignores_order_and_padding():
    torch.manual_seed(0)
    model = BagOfWordsQA(embedding_dim=3)
    model.bind(vocab_size=11, answer_size=7, max_sentences=5, sentence_length=4, question_length=2)
    story = torch.randint(1, 11, (2, 5, 4))
    story[:, 3:] = 0  # two unused sentence slots
    question = torch.randint(1, 11, (2, 2))
    out = model(story, question, record=True)
    assert out.logits.shape == (2, 7) and out.trace == {}
    swapped = story[:, [1, 0, 2, 3, 4]]  # sentence order is invisible to a bag of words
    torch.testing.assert_close(model(swapped, question).logits, out.logits)
    other_padding = story.clone()
    other_padding[:, 4, 0] = 0
    torch.testing.assert_close(model(other_padding, question).logits, out.logits)
    with pytest.raises(ConfigError, match=r"BagOfWordsQA: embedding_dim must be a positive integer, got 0; e\.g\. 32\."):
        BagOfWordsQA(0)


# -- learning ------------------------------------------------------------------------------------------
def _write_where_is(folder: Path, seed: int, train: int = 300, test: int = 100) -> None:
    """Task-1-like stories: two people go to two places; where is one of them? (6 places)."""
    rng = random.Random(seed)
    people, places = ["Mary", "John", "Sandra", "Daniel"], ["kitchen", "garden", "office", "hallway", "bedroom", "bathroom"]
    for split, count in (("train", train), ("test", test)):
        lines = []
        for _ in range(count):
            who, where = rng.sample(people, 2), rng.sample(places, 2)
            k = rng.randrange(2)
            lines += [f"1 {who[0]} went to the {where[0]}.", f"2 {who[1]} went to the {where[1]}.",
                      f"3 Where is {who[k]}? \t{where[k]}\t{k + 1}"]
        (folder / f"qa1_single-supporting-fact_{split}.txt").write_text("\n".join(lines) + "\n")


def test_learns_above_chance(tmp_path):
    # A bag of words cannot tell whose place is whose, but learns that the answer is one of the two
    # places in the story: about 1/2 right, against 1/6 for a guess and about 0.22 for the commonest answer.
    _write_where_is(tmp_path, seed=0)
    L.seed_everything(0)
    data = BabiDataModule(str(tmp_path), tasks=[1], batch_size=16)
    system = QASystem(BagOfWordsQA(16), optimizer={"class_path": "Adam", "init_args": {"lr": 0.02}})
    trainer = _trainer(tmp_path, max_steps=-1, max_epochs=8)
    trainer.fit(system, datamodule=data)
    (result,) = trainer.test(system, datamodule=data, verbose=False)
    commonest = torch.bincount(data.split("test").answer).max().item() / len(data.split("test"))
    assert result["test/accuracy"] > max(0.4, commonest + 0.15), (result, commonest)
    assert result["test/error/task1"] == pytest.approx(1 - result["test/accuracy"])


# -- sizes from the data, checkpoints ----------------------------------------------------------------
def test_sizes_vocab_and_answers_are_taken_from_the_data_and_saved(tmp_path):
    data, system = _data(), QASystem(ConstantQA())
    _trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(system, datamodule=data)
    assert system.model.bound == SIZES
    assert tuple(system.hparams[k] for k in qa_module.SIZE_NAMES) == SIZES
    assert system.hparams["vocab"] == data.vocab and system.hparams["answers"] == data.answers


def test_answer_words_reach_models_that_take_them(tmp_path):
    data, system = _data(), QASystem(AnswerWordsQA())
    _trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(system, datamodule=data)
    torch.testing.assert_close(system.model.answer_words, answer_word_ids(data.vocab, data.answers))


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    L.seed_everything(1)
    data = _data()
    system = QASystem(BagOfWordsQA(5), optimizer={"class_path": "SGD", "init_args": {"lr": 0.1}})
    trainer = _trainer(tmp_path, max_steps=4, enable_checkpointing=True,
                       callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)])
    trainer.fit(system, datamodule=data)
    path = tmp_path / "ckpt" / "last.ckpt"
    hparams = torch.load(path, weights_only=True)["hyper_parameters"]
    assert hparams["model"] == {"class_path": "mannkit.systems.qa.BagOfWordsQA", "init_args": {"embedding_dim": 5}}
    assert hparams["optimizer"]["class_path"] == "SGD" and hparams["vocab_size"] == 35
    reloaded = QASystem.load_from_checkpoint(path, weights_only=True)
    batch = data.example_batch(4)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(batch["story"], batch["question"]).logits,
                                   system.eval()(batch["story"], batch["question"]).logits)
    assert reloaded.vocab == data.vocab and reloaded.answers == data.answers
    (result,) = _trainer(tmp_path).test(reloaded, datamodule=_data(), verbose=False)  # same data: sizes agree
    assert 0.0 <= result["test/mean_error"] <= 1.0


def test_data_with_other_sizes_or_words_is_refused(tmp_path):
    system = QASystem(ConstantQA(), **dict(zip(qa_module.SIZE_NAMES, SIZES)))
    with pytest.raises(ConfigError, match=r"the model was built for other data sizes than BabiDataModule gives \(max_sentences 6 -> 2\); "
                                          r"use the data_dir, tasks and memory_size the model was trained with\."):
        _trainer(tmp_path).validate(system, datamodule=_data(memory_size=2), verbose=False)
    data = _data()
    data.setup("fit")
    other = QASystem(ConstantQA(), **dict(zip(qa_module.SIZE_NAMES, SIZES)), vocab=data.vocab[::-1], answers=data.answers)
    with pytest.raises(ConfigError, match=r"the model was trained with another vocab than BabiDataModule gives \(same size, other words\)"):
        _trainer(tmp_path).validate(other, datamodule=data, verbose=False)


def test_no_data_and_no_sizes(tmp_path):
    loader = torch.utils.data.DataLoader([{"story": torch.zeros(6, 7, dtype=torch.long)}])
    with pytest.raises(ConfigError, match=r"model\.vocab_size is not set and there is no data to take it from"):
        _trainer(tmp_path).validate(QASystem(ConstantQA()), dataloaders=loader, verbose=False)


@pytest.mark.parametrize("sizes", [{}, dict(zip(qa_module.SIZE_NAMES, SIZES))])
def test_sequence_task_data_is_refused(tmp_path, sizes):
    """With or without explicit sizes (once a KeyError: 'story' from inside the first step)."""
    from mannkit.tasks import CopyTask

    data = CopyTask(bits=3, min_length=1, max_length=3, batch_size=2, train_batches=1, val_batches=1, test_batches=1)
    with pytest.raises(ConfigError, match=r"^data\.class_path: QASystem trains on question-answering data \(story, question, "
                                          r"answer\) such as BabiDataModule, but CopyTask has no vocab_size; use SequenceSystem"):
        _trainer(tmp_path).validate(QASystem(ConstantQA(), **sizes), datamodule=data, verbose=False)


def test_batch_shapes_are_checked(tmp_path):
    system = QASystem(ConstantQA(), **dict(zip(qa_module.SIZE_NAMES, SIZES)))
    batch = _data().example_batch(2)
    with pytest.raises(ShapeError, match=r"batch story has shape \[2, 5, 7\] but \[B, 6, 7\] was expected; use the data settings"):
        system.training_step({**batch, "story": batch["story"][:, :5]}, 0)
    with pytest.raises(ShapeError, match=r"batch question has shape \[2, 4\] but \[2, 5\] was expected"):
        system.training_step({**batch, "question": batch["question"][:, :4]}, 0)


# -- metrics, the per-task table, predict --------------------------------------------------------------
def _kitchen_system() -> tuple[QASystem, BabiDataModule]:
    data = _data()
    data.setup("fit")
    return QASystem(ConstantQA(answer=data.answers.index("kitchen"))), data


def test_validation_metric_names(tmp_path):
    system, data = _kitchen_system()
    (result,) = _trainer(tmp_path).validate(system, datamodule=data, verbose=False)
    assert set(result) == {"val/loss", "val/accuracy", "val/mean_error", "val/failed_tasks", "val/error/task1", "val/error/task8"}


def test_test_metrics_and_the_per_task_table(tmp_path):
    system, data = _kitchen_system()
    (result,) = _trainer(tmp_path).test(system, datamodule=data, verbose=False)
    assert result["test/error/task1"] == pytest.approx(2 / 3) and result["test/error/task8"] == pytest.approx(1.0)
    assert result["test/mean_error"] == pytest.approx(5 / 6) and result["test/failed_tasks"] == 2
    assert result["test/accuracy"] == pytest.approx(1 / 5)
    md, path = tmp_path / "qa_results.md", tmp_path / "qa_results.csv"
    assert system.results_paths == (md, path)
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert rows == [
        {"task": "1", "name": "single-supporting-fact", "questions": "3", "correct": "1", "error_percent": "66.67", "failed": "1"},
        {"task": "8", "name": "lists-sets", "questions": "2", "correct": "0", "error_percent": "100.00", "failed": "1"},
        {"task": "mean", "name": "", "questions": "5", "correct": "1", "error_percent": "83.33", "failed": "2"},
    ]
    text = md.read_text()
    assert "| 1 | single-supporting-fact | 3 | 1 | 66.7 | yes |" in text
    assert "Mean error: 83.3% over 2 tasks; failed tasks (error > 5%): 2." in text


def test_predict_gives_answers_as_text(tmp_path):
    system, data = _kitchen_system()
    batches = _trainer(tmp_path).predict(system, datamodule=data)
    assert [a for b in batches for a in b["answer"]] == ["kitchen"] * 5
    assert torch.cat([b["correct"] for b in batches]).tolist() == [False, False, True, False, False]
    rows = list(csv.DictReader((tmp_path / "answers.csv").read_text().splitlines()))
    assert [r["question"] for r in rows[:2]] == ["where is sandra ?", "where is john ?"]
    assert [r["answer"] for r in rows] == ["garden", "<unknown>", "kitchen", "football,milk", "milk"]
    assert [r["correct"] for r in rows] == ["0", "0", "1", "0", "0"]


# -- training errors and configuration -----------------------------------------------------------------
def test_nan_loss_names_the_step(tmp_path):
    with pytest.raises(TrainingError, match=r"the training loss became nan at step 0; no checkpoint was written yet; "
                                            r"lower the learning rate or set trainer\.gradient_clip_val\."):
        _trainer(tmp_path, limit_val_batches=0).fit(QASystem(ConstantQA(nan=True)), datamodule=_data())


def test_reduce_on_plateau_watches_the_validation_loss(tmp_path):
    system = QASystem(ConstantQA(), **dict(zip(qa_module.SIZE_NAMES, SIZES)),
                      lr_scheduler={"class_path": "ReduceLROnPlateau", "init_args": {"patience": 2}})
    config = system.configure_optimizers()
    assert config["lr_scheduler"]["monitor"] == "val/loss"
    step = QASystem(ConstantQA(), **dict(zip(qa_module.SIZE_NAMES, SIZES)),
                    lr_scheduler={"class_path": "StepLR", "init_args": {"step_size": 25, "gamma": 0.5}})
    assert "monitor" not in step.configure_optimizers()["lr_scheduler"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": nn.Linear(2, 2)}, r"model\.model must be a question-answering model such as MemN2N, got Linear"),
        ({"failure_threshold": 1.0}, r"model\.failure_threshold must be at least 0 and below 1, got 1\.0"),
        ({"vocab_size": 35}, r"model\.answer_size is None but must be a positive integer; leave all five sizes null"),
        ({"optimizer": {"class_path": "Adamm"}}, r"model\.optimizer\.class_path: unknown class 'Adamm'; did you mean 'Adam'\?"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        QASystem(**{"model": ConstantQA(), **kwargs})


# -- the command line --------------------------------------------------------------------------------
CONFIG = {
    "seed_everything": 0,
    "trainer": {
        "max_epochs": 2, "log_every_n_steps": 1, "enable_progress_bar": False, "enable_model_summary": False,
        "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}],
    },
    "model": {"class_path": "QASystem", "init_args": {
        "model": {"class_path": "BagOfWordsQA", "init_args": {"embedding_dim": 8}},
        "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01}},
    }},
    "data": {"class_path": "BabiDataModule", "init_args": {"tasks": [1, 8], "batch_size": 4}},
}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "babi.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_cli_fit_then_test_from_the_checkpoint(config_file, tmp_path, capsys):
    root = tmp_path / "fit"
    main(["fit", "--config", str(config_file), "--data.init_args.data_dir", str(FIXTURES), "--trainer.default_root_dir", str(root)])
    (ckpt,) = root.rglob("last.ckpt")
    assert torch.load(ckpt, weights_only=True)["hyper_parameters"]["answer_size"] == 10
    events = EventAccumulator(str(next(root.rglob("events.out.tfevents.*")).parent), size_guidance={"scalars": 0})
    events.Reload()
    assert {"train/loss", "val/accuracy", "val/mean_error", "val/failed_tasks", "val/error/task8"} <= set(events.Tags()["scalars"])
    main(["test", "--config", str(config_file), "--data.init_args.data_dir", str(FIXTURES), "--ckpt_path", str(ckpt),
          "--trainer.default_root_dir", str(tmp_path / "test")])
    assert "test/mean_error" in capsys.readouterr().out
    assert (next((tmp_path / "test").rglob("qa_results.md"))).read_text().startswith("| task | name |")


def test_cli_all_tasks_by_name(config_file, tmp_path, capsys):
    # 'all' asks for tasks 1-20; the fixtures hold only 1 and 8, so this is the missing-file sentence
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config_file), "--data.init_args.data_dir", str(FIXTURES), "--data.init_args.tasks", "all",
              "--trainer.default_root_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "task 2 has no train file qa2_*_train.txt" in capsys.readouterr().err


def test_cli_missing_data_directory_is_one_sentence(config_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config_file), "--data.init_args.data_dir", str(tmp_path / "babi"),
              "--trainer.default_root_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("mannkit: error: BabiDataModule: data_dir '") and err.count("\n") == 1, err
    assert "download the bAbI tasks v1.2 from Facebook Research (tasks_1-20_v1-2.tar.gz) and pass its en or en-10k folder" in err
