"""bAbI as a sequence task, word by word, for any recurrent model: the DNC paper's input (Graves et al. 2016).

Shape letters: B streams (stories) per batch, T words (the longest stream of the batch), V words in the
input vocabulary (= I, the input width), A answer words (= O, the output classes).

Each story of the chosen tasks is one stream: its statements, word by word, and after each question's words
one **answer slot** per answer word, marked by the word ``-`` (:data:`ANSWER`); the model answers at the
slots. Statements after a story's last question are left out (nothing is asked about them). With
``mary moved to the bathroom . where is mary ? -`` the answer ``bathroom`` is the target at the step of
``-``, the only scored step. A multi-word answer (tasks 8 and 19: ``apple,football``, ``n,w``) gets one
slot per word, in the file's order, as in the DNC paper; the question counts as right only when every
word is. Tasks are trained jointly with no task id in the input.

**Input: one-hot words, in the data.** A word is a one-hot vector over the V words (the paper's choice),
so ``input`` is float ``[B, T, V]`` like every sequence task and any :class:`SequenceModel` reads it. A
learned embedding belongs in the model, not the data: a data module holds no parameters, and the model's
first layer (the controller's input weights) on a one-hot vector *is* a learned embedding of width H.
The streams are encoded to word ids once, in memory; a batch is a gather and a ``one_hot``.

**Output: the answer words.** O = A, the distinct words of the training answers (``apple,football``
gives ``apple`` and ``football``); cross-entropy (``loss = "ce"``) at the answer slots only. (The paper
scores a softmax over the whole vocabulary; only answer words are ever targets, so this is the same
task with a smaller output layer.)

Vocabulary, validation split and errors follow :class:`~mannkit.tasks.BabiDataModule`, which reads the
files: id 0 ``<pad>``, 1 ``<unk>`` (a word never seen in training), then the training words and ``-``;
the validation set is ``val_fraction`` of each task's training stories (drawn with ``seed``, the same
stories BabiDataModule holds out); a test answer word never seen in training gets target -1, never right.

A batch (``mannkit.tasks.Batch`` plus two keys that give the per-task error of
:mod:`mannkit.metrics.qa`, which :class:`~mannkit.systems.SequenceSystem` then logs and tabulates):

- ``input`` float ``[B, T, V]``: one-hot words; steps after a stream's end are the ``<pad>`` word;
- ``target`` int64 ``[B, T]``: the answer word's class at answer slots (-1 if unknown), 0 elsewhere;
- ``mask`` float ``[B, T]``: 1 at answer slots;
- ``question`` int64 ``[B, T]``: at answer slots the question's number within its story (1, 2, ...), else 0;
- ``task`` int64 ``[B]``: each story's bAbI task number.

Training batches gather streams of similar length (buckets of ``32 x batch_size`` shuffled streams,
sorted by length), so little of a batch is padding; validation and test streams go shortest first.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.nn.functional import one_hot
from torch.utils.data import DataLoader, Dataset, Sampler

from mannkit.core.errors import ConfigError, DataError
from mannkit.core.registry import register
from mannkit.tasks.babi import BabiDataModule
from mannkit.tasks.babi_format import PAD, UNK, BabiStory
from mannkit.tasks.base import seed_from

__all__ = ["BabiSequenceTask", "ANSWER", "encode_story"]

#: The word that marks an answer slot.
ANSWER = "-"
_BUCKET = 32  # batches per length bucket of the training sampler


def encode_story(story: BabiStory, ids: dict[str, int], classes: dict[str, int]) -> tuple[list[int], list[int], list[int]]:
    """One story as a stream: ``(word ids [T], target [T], question [T])``.

    ``target`` is the answer word's class at answer slots (-1 for a word not in ``classes``), 0 elsewhere;
    ``question`` is the 1-based question number at answer slots, 0 elsewhere.

    >>> from mannkit.tasks.babi_format import BabiQuestion
    >>> story = BabiStory(1, (("mary", "went", "."),), (BabiQuestion(("where", "?"), "a,b", (0,), 1),))
    >>> encode_story(story, {"mary": 2, "went": 3, ".": 4, "where": 5, "?": 6, "-": 7}, {"a": 0, "b": 1})
    ([2, 3, 4, 5, 6, 7, 7], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 1, 1])
    """
    unk, mark = ids[UNK] if UNK in ids else 1, ids[ANSWER]
    words: list[int] = []
    target: list[int] = []
    question: list[int] = []
    read = 0  # statements already in the stream
    for number, q in enumerate(story.questions, start=1):
        for sentence in (*story.sentences[read : q.end], q.words):  # the statements before it, then the question
            words += [ids.get(w, unk) for w in sentence]
            target += [0] * len(sentence)
            question += [0] * len(sentence)
        read = max(read, q.end)
        for word in q.answer.split(","):  # one slot per answer word
            words.append(mark)
            target.append(classes.get(word, -1))
            question.append(number)
    return words, target, question


class _Streams(Dataset):
    """Encoded streams in three flat tensors; ``__getitems__`` gathers a whole padded batch at once."""

    def __init__(self, stories: list[BabiStory], ids: dict[str, int], classes: dict[str, int], vocab_size: int) -> None:
        self.stories, self.vocab_size = stories, vocab_size
        words: list[int] = []
        target: list[int] = []
        question: list[int] = []
        lengths: list[int] = []
        for story in stories:
            w, t, q = encode_story(story, ids, classes)
            words += w
            target += t
            question += q
            lengths.append(len(w))
        # one padding step at the end of the flat tensors: steps past a stream's end read it
        self.words = torch.tensor(words + [0], dtype=torch.int32)
        self.target = torch.tensor(target + [0], dtype=torch.long)
        self.question = torch.tensor(question + [0], dtype=torch.long)
        self.lengths = torch.tensor(lengths, dtype=torch.long)  # [S]
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths  # [S], first step of each stream
        self.task = torch.tensor([s.task for s in stories], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.stories)

    def __getitems__(self, indices: list[int]) -> dict[str, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)  # [B]
        lengths = self.lengths[index]
        T = int(lengths.max()) if len(index) else 1
        step = torch.arange(T)  # [T]
        at = self.offsets[index].unsqueeze(1) + step  # flat position of each step, [B, T]
        at = torch.where(step < lengths.unsqueeze(1), at, len(self.words) - 1)  # past the end -> the padding step
        question = self.question[at]  # [B, T]
        return {
            "input": one_hot(self.words[at].long(), self.vocab_size).float(),  # [B, T] ids -> [B, T, V]
            "target": self.target[at],
            "mask": (question > 0).float(),
            "question": question,
            "task": self.task[index],
        }


class _LengthBatches(Sampler[list[int]]):
    """Batches of streams of similar length: shuffled, bucketed and sorted when ``shuffle``, else shortest first."""

    def __init__(self, lengths: Tensor, batch_size: int, shuffle: bool, seed: int) -> None:
        self.lengths, self.batch_size, self.shuffle, self.seed = lengths, batch_size, shuffle, seed
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):  # noqa: ANN204
        B = self.batch_size
        if not self.shuffle:
            order = torch.sort(self.lengths, stable=True).indices.tolist()
            yield from (order[i : i + B] for i in range(0, len(order), B))
            return
        generator = torch.Generator().manual_seed(seed_from(self.seed, "babi-stream", self.epoch))
        self.epoch += 1
        order = torch.randperm(len(self.lengths), generator=generator)
        batches = []
        for start in range(0, len(order), B * _BUCKET):
            chunk = order[start : start + B * _BUCKET]
            chunk = chunk[torch.sort(self.lengths[chunk], stable=True).indices].tolist()
            batches += [chunk[i : i + B] for i in range(0, len(chunk), B)]
        for k in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[k]


def _collate(batch: Any) -> dict[str, Tensor]:
    return batch if isinstance(batch, dict) else {k: torch.stack([item[k] for item in batch]) for k in batch[0]}


@register(kind="task")
class BabiSequenceTask(pl.LightningDataModule):
    """bAbI questions answered word by word by any sequence model (see the module docstring for the stream).

    Args:
        data_dir: the folder of ``qaN_*_train.txt`` / ``qaN_*_test.txt`` files, e.g. the ``en`` or ``en-10k`` folder
            of the bAbI tasks v1.2 (download them from Facebook Research; they are not shipped).
        tasks: ``all`` (tasks 1 to 20, trained jointly), one task number, or a list of them (``[1, 2, 3]``).
        batch_size: streams (stories) per batch (B).
        val_fraction: the part of each task's training stories held out for validation (0 for none).
        seed: seed of the validation split and of the order of the training batches.

    Attributes (after ``setup``, or any call that reads the data):
        vocab: the input words, index = input channel (``<pad>`` 0, ``<unk>`` 1, ``-`` among them).
        answer_words: the output classes, index = class.
        input_size, output_size: V and A.
        task_names: task number -> name from its file name.
    """

    loss = "ce"
    test_set_names = ["test"]

    def __init__(self, data_dir: str | None = None, tasks: int | list[int] | str = "all", batch_size: int = 16,
                 val_fraction: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"{name}: batch_size must be an integer of at least 1, got {batch_size!r}; set batch_size to 1 or more.")
        self.source = self._reading(lambda: BabiDataModule(data_dir, tasks, memory_size=1, batch_size=1,
                                                           val_fraction=val_fraction, seed=seed))
        self.data_dir, self.tasks, self.task_names = self.source.data_dir, self.source.tasks, self.source.task_names
        self.batch_size, self.val_fraction, self.seed = batch_size, float(val_fraction), seed
        self._splits: dict[str, _Streams] = {}
        self._samplers: dict[str, _LengthBatches] = {}

    def _reading(self, read: Any) -> Any:
        """``read()``, its errors (raised by BabiDataModule, which reads the files) naming this class instead."""
        try:
            return read()
        except (ConfigError, DataError) as error:
            raise type(error)(str(error).replace("BabiDataModule", type(self).__name__)) from None

    # -- reading -------------------------------------------------------------------------------------
    def _build(self) -> None:
        if self._splits:
            return
        train, val = self._reading(lambda: (self.source.split("train"), self.source.split("val")))
        self._vocab = list(self.source.vocab) + ([ANSWER] if ANSWER not in self.source.vocab else [])
        self._answer_words = sorted({w for a in self.source.answers for w in a.split(",") if w})
        self._ids = {w: i for i, w in enumerate(self._vocab)}
        self._classes = {w: i for i, w in enumerate(self._answer_words)}
        self._splits = {name: self._encode(split.stories) for name, split in (("train", train), ("val", val))}

    def _encode(self, stories: list[BabiStory]) -> _Streams:
        return _Streams([s for s in stories if s.questions], self._ids, self._classes, len(self._vocab))

    def split(self, name: str) -> _Streams:
        """The encoded ``train``, ``val`` or ``test`` streams (read on first use)."""
        self._build()
        if name == "test" and "test" not in self._splits:
            self._splits["test"] = self._encode(self._reading(lambda: self.source.split("test")).stories)
        if name not in self._splits:
            raise ConfigError(f"{type(self).__name__}.split: unknown split {name!r}; use 'train', 'val' or 'test'.")
        return self._splits[name]

    @property
    def input_size(self) -> int:
        """V, the input width (read from the training files on first use: the system binds to it at setup)."""
        self._build()
        return len(self._vocab)

    @property
    def output_size(self) -> int:
        """A, the number of answer words (output classes)."""
        self._build()
        return len(self._answer_words)

    @property
    def vocab(self) -> list[str]:
        """The input words, index = input channel."""
        self._build()
        return self._vocab

    @property
    def answer_words(self) -> list[str]:
        """The output classes, index = class."""
        self._build()
        return self._answer_words

    def example(self, index: int = 0, split: str = "val") -> dict[str, Any]:
        """Stream ``index`` of ``split`` as text: ``task``, ``words`` (the stream, ``-`` at answer slots) and ``answers``."""
        data = self._example_split(split)
        ids = data.__getitems__([index])
        words = [self.vocab[int(i)] for i in ids["input"][0].argmax(-1)]
        answers = [self.answer_words[int(t)] if t >= 0 else "<unknown>" for t in ids["target"][0][ids["mask"][0] > 0]]
        return {"task": int(ids["task"][0]), "words": words, "answers": answers}

    def step_labels(self, batch: dict[str, Tensor], index: int) -> list[str]:
        """The word read at each time step of stream ``index`` of ``batch`` (``-`` at answer slots, "" after its end).

        ``MemoryPictures`` puts them on its time axes, so the pictures show what the memory does at each word.
        """
        ids = batch["input"][index].argmax(-1).tolist()  # [T] one-hot -> word ids
        return ["" if i == 0 else self.vocab[i] for i in ids]  # id 0: <pad>

    def _example_split(self, split: str) -> _Streams:
        data = self.split(split)
        return data if len(data) or split != "val" else self.split("train")

    def example_batch(self, batch_size: int = 1, split: str = "val") -> dict[str, Tensor]:
        """The first ``batch_size`` streams of ``split`` in file order (the training split if there is no validation split)."""
        data = self._example_split(split)
        return data.__getitems__(list(range(min(batch_size, len(data)))))

    # -- LightningDataModule hooks ------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Read the training files (they fix the vocabulary and sizes), and the test files for test/predict."""
        self._build()
        if stage in ("test", "predict"):
            self.split("test")

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        data = self.split(name)
        if name not in self._samplers:  # one sampler per split, so its epoch counter goes on
            self._samplers[name] = _LengthBatches(data.lengths, self.batch_size, shuffle, self.seed)
        return DataLoader(data, batch_sampler=self._samplers[name], collate_fn=_collate)

    def train_dataloader(self) -> DataLoader:
        """The training streams, in new length buckets each epoch."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The held-out validation streams (empty when ``val_fraction`` is 0)."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The test files' streams, every selected task in one loader (``batch["task"]`` tells them apart)."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
