"""AttentionPictures: a QA model's attention over the story, drawn with the sentences as labels, in TensorBoard and PNG."""

import doctest
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.image import imread
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

import mannkit.callbacks.attention_pictures as pictures_module
from mannkit.callbacks import AttentionPictures
from mannkit.callbacks.attention_pictures import attention_figures, draw_story_attention
from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import QAModel, QAOutput
from mannkit.nn import masked_softmax
from mannkit.nn.text import encode_sentences
from mannkit.systems import BagOfWordsQA, QASystem
from mannkit.tasks import BabiDataModule, CopyTask

FIXTURES = Path(__file__).parents[1] / "fixtures" / "babi"


class OneHopQA(QAModel):
    """One attention hop over bag-of-words sentences, recorded as ``attention [B, 2, N]`` (the hop twice, as two hops)."""

    def __init__(self, dim: int = 6) -> None:
        super().__init__()
        self.dim = dim

    def bind(self, vocab_size, answer_size, max_sentences, sentence_length, question_length) -> None:
        self.words = nn.Embedding(vocab_size, self.dim, padding_idx=0)
        self.answer = nn.Linear(self.dim, answer_size)

    def forward(self, story, question, record=False):
        m = encode_sentences(self.words(story), story, position=False)  # [B, N, D]
        u = encode_sentences(self.words(question), question, position=False)  # [B, D]
        p = masked_softmax((m @ u.unsqueeze(-1)).transpose(1, 2), story.ne(0).any(-1))  # [B, 1, N]
        logits = self.answer(u + (p.transpose(1, 2) * m).sum(1))  # [B, A]
        return QAOutput(logits, {"attention": p.expand(-1, 2, -1)} if record else None)


class FixedTrace(nn.Module):
    """Answers class ``answer`` and returns a given trace; records the mode it ran in. ``rest``: QAOutput.rest."""

    def __init__(self, trace, answer: int = 0, answers=None, rest: float | None = None) -> None:
        super().__init__()
        self.trace, self.answer, self.answers, self.rest, self.modes = trace, answer, answers, rest, []

    def forward(self, story, question, record=False):
        self.modes.append((self.training, torch.is_grad_enabled(), record))
        B = story.shape[0]
        rest = None if self.rest is None else torch.full((B,), self.rest)
        return QAOutput(nn.functional.one_hot(torch.full((B,), self.answer), 10).float(), self.trace, rest)


def _data() -> BabiDataModule:
    data = BabiDataModule(str(FIXTURES), tasks=[1, 8], batch_size=4)
    data.setup("fit")
    return data


def _rows(fig):
    return [t.get_text() for t in fig.axes[0].get_yticklabels()]


def test_docstrings():
    assert doctest.testmod(pictures_module).failed == 0


# -- drawing -------------------------------------------------------------------------------------------
def test_sentences_label_the_rows_and_hops_the_columns():
    weights = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])  # K = 3 hops, n = 3 sentences
    fig = draw_story_attention("attention", weights, ["a b .", "c d .", "e f ."], "where is a ?", "kitchen", "office", [2])
    ax = fig.axes[0]
    assert _rows(fig) == ["a b .", "c d .", "* e f ."]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"] and ax.get_xlabel() == "hop / pass"
    np.testing.assert_allclose(ax.images[0].get_array(), weights.T.astype(np.float32))  # [n, K]
    assert ax.images[0].get_clim() == (0.0, 1.0)
    assert ax.get_title(loc="left") == "Q: where is a ?\nanswer: kitchen   predicted: office"


def test_raw_scores_get_their_own_scale():
    fig = draw_story_attention("attention", np.array([[-2.0, 5.0]]), ["x .", "y ."], "q ?")
    assert fig.axes[0].images[0].get_clim() == (-2.0, 5.0)
    assert fig.axes[1].get_ylabel() == "attention (raw scores)"


def test_weights_must_match_the_sentences():
    with pytest.raises(ValueError, match=r"attention has shape \[2, 3\] but \[K, 2\] was expected"):
        draw_story_attention("attention", np.zeros((2, 3)), ["x .", "y ."], "q ?")


# -- from a model ----------------------------------------------------------------------------------------
def test_figures_cut_the_padded_slots_and_use_the_datas_text():
    data = _data()
    batch = data.example_batch(2)  # question 1 of the validation split
    n = int(batch["story"][1].ne(0).any(-1).sum())
    assert 1 <= n < data.max_sentences
    trace = torch.rand(2, 3, data.max_sentences)  # [B, K, N]
    model = FixedTrace({"attention": trace, "other": torch.rand(2, 4)}, answer=data.answers.index("kitchen"))
    model.train()
    figures = attention_figures(model, batch, example_index=1, data=data)
    assert list(figures) == ["attention"]  # only [B, K, N] entries
    assert model.modes == [(False, False, True)] and model.training  # eval, no_grad, recorded; mode restored
    ax = figures["attention"].axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), trace[1, :, :n].T.numpy())
    text = data.example(1)
    assert _rows(figures["attention"]) == [("* " if i in text["supporting"] else "") + s for i, s in enumerate(text["sentences"])]
    assert ax.get_title(loc="left") == f"Q: {text['question']}\nanswer: {text['answer']}   predicted: kitchen"


@pytest.mark.parametrize("rest, caption", [(5.0, "<not an answer>"), (0.5, "kitchen")])
def test_the_caption_says_when_the_other_words_outweigh_every_answer(rest, caption):
    """A model whose softmax covers the whole vocabulary (QAOutput.rest) can predict a word that is no answer."""
    data = _data()
    batch = data.example_batch(1)
    model = FixedTrace({"attention": torch.rand(1, 2, data.max_sentences)}, answer=data.answers.index("kitchen"), rest=rest)
    figures = attention_figures(model, batch, data=data)
    assert figures["attention"].axes[0].get_title(loc="left").endswith(f"predicted: {caption}")


def test_a_smaller_memory_covers_the_most_recent_sentences():
    data = BabiDataModule(str(FIXTURES), tasks=[1], val_fraction=0.0)
    data.setup("fit")
    index = 2  # the 3rd question of the first story: 6 statements, the answer in the 5th (index 4)
    batch = data.example_batch(index + 1, split="train")
    text = data.example(index, "train")
    assert len(text["sentences"]) == 6 and text["supporting"] == [4]
    trace = torch.arange(16, dtype=torch.float32).reshape(2, 2, 4) / 16  # M = 4 < N = 6
    full = torch.zeros(index + 1, 2, 4)
    full[index] = trace[0]
    figures = attention_figures(FixedTrace({"attention": full}), batch, example_index=index, data=_PlainText(data))
    assert _rows(figures["attention"]) == text["sentences"][2:6]  # decoded from the ids; the data gave no supporting facts
    np.testing.assert_allclose(figures["attention"].axes[0].images[0].get_array(), trace[0].T.numpy())


class _PlainText:
    """Data that knows its vocabulary and answers but not the text of its examples."""

    def __init__(self, data) -> None:
        self.vocab, self.answers = data.vocab, data.answers


def test_a_model_without_attention_is_named():
    data = _data()
    system = QASystem(BagOfWordsQA(4), **{k: getattr(data, k) for k in ("vocab_size", "answer_size", "max_sentences",
                                                                          "sentence_length", "question_length")})
    with pytest.raises(ConfigError, match=r"AttentionPictures: BagOfWordsQA records no attention over the story \(a trace entry "
                                          r"\[B, K, 6\]\); remove the callback or use a model that attends over sentences"):
        attention_figures(system, data.example_batch(1), data=data)
    with pytest.raises(ConfigError, match=r"example_index 3 is outside the example batch of 1; use 0 to 0\."):
        attention_figures(system, data.example_batch(1), example_index=3, data=data)


# -- in a fit ------------------------------------------------------------------------------------------------
def test_png_written_and_image_in_tensorboard(tmp_path):
    L.seed_everything(0)
    logger = TensorBoardLogger(str(tmp_path), name="babi")
    callback = AttentionPictures()
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=1, callbacks=[callback])
    trainer.fit(QASystem(OneHopQA()), datamodule=BabiDataModule(str(FIXTURES), tasks=[1, 8], batch_size=4))
    run = Path(logger.log_dir)
    assert sorted(p.name for p in (run / "pictures").iterdir()) == ["step000003_attention.png", "step000006_attention.png"]
    assert callback.last_files == [run / "pictures" / "step000006_attention.png"]
    pixels = imread(run / "pictures" / "step000006_attention.png")
    assert pixels.ndim == 3 and pixels[..., :3].std() > 0
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    images = events.Images("story/attention")
    assert [im.step for im in images] == [3, 6]  # the sanity check draws nothing
    assert (images[-1].height, images[-1].width) == pixels.shape[:2]


def test_data_without_a_vocabulary_is_refused():
    trainer = type("T", (), {"datamodule": CopyTask(bits=3)})()
    with pytest.raises(ConfigError, match=r"AttentionPictures needs question-answering data with example_batch\(\) and a vocab "
                                          r"\(such as BabiDataModule\), but the datamodule is CopyTask"):
        AttentionPictures().setup(trainer, None, "fit")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every_n_validations": 0}, r"every_n_validations must be 1 or more, got 0\."),
        ({"example_index": -1}, r"example_index must be 0 or more, got -1\."),
        ({"png": False, "tensorboard": False}, r"png and tensorboard are both false"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        AttentionPictures(**kwargs)


def test_counter_is_checkpointed():
    callback = AttentionPictures()
    callback.validations = 4
    restored = AttentionPictures()
    restored.load_state_dict(callback.state_dict())
    assert restored.validations == 4
