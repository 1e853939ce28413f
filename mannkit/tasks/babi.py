"""The bAbI question-answering tasks (Weston et al. 2015), read from the standard v1.2 files.

Shape letters: B batch, N sentences kept per story (memory slots), L words per sentence,
Q words per question, V words in the vocabulary, A answer classes.

The data is not shipped: download the bAbI tasks v1.2 from Facebook Research
(``tasks_1-20_v1-2.tar.gz``) and pass its ``en`` (1k training questions per task) or ``en-10k``
folder, or any folder of ``qaN_<name>_{train,test}.txt`` files, as ``data_dir``.

File format (one line each): ``ID text`` for a statement and ``ID question<TAB>answer<TAB>supporting
IDs`` for a question; IDs count up from 1 within a story and restart at 1 for the next one (read,
and damaged lines refused with file and line, by :mod:`mannkit.tasks.babi_format`). A
question's story is every statement of its story before it (questions are not part of the story),
oldest first, cut to the most recent ``memory_size`` statements. Text is lowercased and
punctuation marks become words of their own (``"Where is Mary?"`` -> ``where is mary ?``).

A batch is a dict of int64 tensors:

- ``"story"`` ``[B, N, L]``: word ids, oldest sentence first; sentences are right-padded with 0
  and unused sentence slots (after the real sentences) are all 0;
- ``"question"`` ``[B, Q]``: word ids, right-padded with 0;
- ``"answer"`` ``[B]``: the answer class (index into :attr:`BabiDataModule.answers`);
- ``"task"`` ``[B]``: the bAbI task number, 1 to 20.

Vocabulary and answers come from the whole training file (the validation split included, so they
do not depend on the split's seed): id 0 is ``<pad>``, id 1 is ``<unk>``, which every word never seen
in training maps to. Each distinct full answer string is one class, so the multi-word answers of
tasks 8 and 19 (``apple,football``, ``n,w``) are classes of their own, as in the MemN2N paper; a test
answer never seen in training gets class -1, which no model can predict (it counts as an error).
N, L and Q are the longest story (at most ``memory_size``), sentence and question of the training
file; longer test sentences and questions are cut to L and Q words.

>>> tokenize("Where is Mary? ")
['where', 'is', 'mary', '?']
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from mannkit.core.errors import ConfigError, DataError
from mannkit.core.registry import register
from mannkit.tasks.babi_format import (
    PAD,
    SOURCE,
    TASKS,
    UNK,
    BabiQuestion,
    BabiStory,
    find_task_file,
    parse_babi,
    tokenize,
    without_words,
)
from mannkit.tasks.base import seed_from

__all__ = [
    "BabiDataModule",
    "BabiQuestion",
    "BabiStory",
    "PAD",
    "UNK",
    "SOURCE",
    "tokenize",
    "parse_babi",
    "find_task_file",
    "answer_word_ids",
]

PUNCTUATION = frozenset({".", "?"})  # the marks drop_punctuation removes


def _numbers(values: list[int]) -> str:
    """``1``, ``1 and 8``, ``1, 2 and 8``.

    >>> _numbers([1]), _numbers([1, 8]), _numbers([1, 2, 8])
    ('1', '1 and 8', '1, 2 and 8')
    """
    text = [str(v) for v in values]
    return text[0] if len(text) == 1 else f"{', '.join(text[:-1])} and {text[-1]}"


def answer_word_ids(vocab: list[str], answers: list[str]) -> Tensor:
    """The word ids of each answer class, ``[A, La]`` int64, 0-padded; a multi-word answer is split at commas.

    For models that tie their answer matrix to word embeddings (MemN2N's ``W^T = C^K``). Words not in
    ``vocab`` get the ``<unk>`` id.

    >>> answer_word_ids([PAD, UNK, "apple", "milk"], ["milk", "apple,milk", "n,w"]).tolist()
    [[3, 0], [2, 3], [1, 1]]
    """
    ids = {w: i for i, w in enumerate(vocab)}
    unk = ids.get(UNK, 0)
    rows = [[ids.get(w, unk) for w in a.split(",") if w] or [unk] for a in answers]
    width = max((len(r) for r in rows), default=1)
    return torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=torch.long).reshape(len(rows), width)


def _parse_tasks(tasks: int | list[int] | str) -> list[int]:
    """``"all"``, one task number or a list of them -> sorted distinct task numbers."""
    if isinstance(tasks, str):
        if tasks.strip().lower() == "all":
            return list(TASKS)
        raise ConfigError(f"BabiDataModule: tasks must be 'all' or a list of task numbers from 1 to 20, got {tasks!r}; e.g. tasks: [1, 2].")
    values = [tasks] if isinstance(tasks, int) else list(tasks)
    if not values:
        raise ConfigError("BabiDataModule: tasks is empty; give at least one task number from 1 to 20, or 'all'.")
    unknown = [t for t in values if not isinstance(t, int) or isinstance(t, bool) or t not in TASKS]
    if unknown:
        raise ConfigError(
            f"BabiDataModule: tasks holds {unknown[0]!r}, which is not a bAbI task number; choose numbers from 1 to 20, or 'all'."
        )
    return sorted(set(values))


# -- encoded examples -----------------------------------------------------------------------------
class _Encoder:
    """Words -> ids with a fixed vocabulary; sentences and questions padded or cut to L and Q."""

    def __init__(self, vocab: list[str], answers: list[str], N: int, L: int, Q: int) -> None:
        self.ids = {w: i for i, w in enumerate(vocab)}
        self.classes = {a: i for i, a in enumerate(answers)}
        self.N, self.L, self.Q = N, L, Q
        self._cache: dict[tuple[tuple[str, ...], int], list[int]] = {}  # bAbI repeats its sentences a lot

    def words(self, words: tuple[str, ...], length: int) -> list[int]:
        """``length`` word ids: the words' ids (``<unk>`` for unknown ones), cut or right-padded with 0."""
        key = (words, length)
        if key not in self._cache:
            unk = self.ids[UNK]
            ids = [self.ids.get(w, unk) for w in words[:length]]
            self._cache[key] = ids + [0] * (length - len(ids))
        return self._cache[key]

    def answer(self, answer: str) -> int:
        return self.classes.get(answer, -1)


class _Split(Dataset):
    """The questions of some stories, encoded; a batch of them is gathered at once (``__getitems__``).

    Every statement is stored once, in one table ``[S + 1, L]`` int32 whose last row is all 0, and
    each question keeps where its story starts in the table and how many statements precede it, so
    a story of S statements with many questions costs ``S x L`` ids, not one copy per question.
    """

    def __init__(self, stories: list[BabiStory], encode: _Encoder) -> None:
        self.stories = stories
        self.N, self.L, self.Q = encode.N, encode.L, encode.Q
        table: list[list[int]] = []
        offset, end, question, answer, task, items = [], [], [], [], [], []
        for i, story in enumerate(stories):
            first = len(table)
            table += [encode.words(x, self.L) for x in story.sentences]
            for k, q in enumerate(story.questions):
                items.append((i, k))
                offset.append(first)
                end.append(q.end)
                question.append(encode.words(q.words, self.Q))
                answer.append(encode.answer(q.answer))
                task.append(story.task)
        table.append([0] * self.L)  # the padding row
        self.items = items  # (story index, question index)
        self.table = torch.tensor(table, dtype=torch.int32)  # [S + 1, L]
        self.offset = torch.tensor(offset, dtype=torch.long)
        self.end = torch.tensor(end, dtype=torch.long)
        self.question = torch.tensor(question, dtype=torch.int32).reshape(len(items), self.Q)  # [E, Q]
        self.answer = torch.tensor(answer, dtype=torch.long)
        self.task = torch.tensor(task, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.items)

    def __getitems__(self, indices: list[int]) -> dict[str, Tensor]:
        """A whole batch: ``story [B, N, L]`` (each story's N most recent statements, then all-0 slots), ``question
        [B, Q]``, ``answer [B]``, ``task [B]``, all int64."""
        index = torch.as_tensor(indices, dtype=torch.long)  # [B]
        end = self.end[index]
        kept = end.clamp(max=self.N)  # statements kept per story, [B]
        slot = torch.arange(self.N)  # [N]
        rows = (self.offset[index] + end - kept).unsqueeze(1) + slot  # table row of each slot, [B, N]
        rows = torch.where(slot < kept.unsqueeze(1), rows, len(self.table) - 1)  # unused slots -> the padding row
        return {
            "story": self.table[rows].long(),  # [B, N] rows -> [B, N, L]
            "question": self.question[index].long(),
            "answer": self.answer[index],
            "task": self.task[index],
        }

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {key: value[0] for key, value in self.__getitems__([index]).items()}

    def example(self, index: int) -> dict[str, Any]:
        """Question ``index`` as text: its kept story sentences, question, answer and supporting sentences."""
        story_index, k = self.items[index]
        story, question = self.stories[story_index], self.stories[story_index].questions[k]
        start = max(0, question.end - self.N)
        return {
            "task": story.task,
            "sentences": [" ".join(s) for s in story.sentences[start : question.end]],
            "question": " ".join(question.words),
            "answer": question.answer,
            "supporting": [i - start for i in question.supporting if i >= start],  # indices into the kept sentences
        }


def _collate(batch: dict[str, Tensor] | list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """A batch gathered by ``__getitems__`` as it is; single items stacked."""
    if isinstance(batch, dict):
        return batch
    return {key: torch.stack([item[key] for item in batch]) for key in batch[0]}


# -- the data module --------------------------------------------------------------------------------
@register(kind="task")
class BabiDataModule(pl.LightningDataModule):
    """The bAbI tasks: one, several or all 20 jointly, from a folder of the standard v1.2 files.

    See the module docstring for the batch format, the vocabulary and the sizes. The validation
    set is ``val_fraction`` of each task's training stories (all questions of a story stay
    together, so no validation story was seen in training), drawn with ``seed``; the test and
    predict sets are the test files.

    Args:
        data_dir: the folder of ``qaN_*_train.txt`` / ``qaN_*_test.txt`` files, e.g. the ``en`` or ``en-10k``
            folder of the bAbI tasks v1.2 (download them from Facebook Research; they are not shipped).
        tasks: ``all`` (tasks 1 to 20, trained jointly), one task number, or a list of them (``[1, 2, 3]``).
        memory_size: keep at most this many of a story's most recent statements (N); MemN2N used 50.
        batch_size: questions per batch (B).
        val_fraction: the part of each task's training stories held out for validation (0 for none).
        seed: seed of the validation split.
        num_workers: dataloader worker processes (0: load in the main process).
        drop_punctuation: remove the ``.`` and ``?`` tokens from statements and questions (and so from the
            vocabulary and the lengths L, Q), as the original MemN2N code strips them.

    Attributes (after ``setup``):
        vocab: the words, index = word id (``<pad>`` 0, ``<unk>`` 1).
        answers: the answer strings, index = answer class.
        vocab_size, answer_size, max_sentences, sentence_length, question_length: V, A, N, L, Q.
        tasks: the selected task numbers; task_names: task number -> name from its file name.
    """

    def __init__(
        self,
        data_dir: str | None = None,
        tasks: int | list[int] | str = "all",
        memory_size: int = 50,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int = 0,
        drop_punctuation: bool = False,
    ) -> None:
        super().__init__()
        self.tasks = _parse_tasks(tasks)
        if not isinstance(drop_punctuation, bool):
            raise ConfigError(f"BabiDataModule: drop_punctuation must be true or false, got {drop_punctuation!r}.")
        self.drop_punctuation = drop_punctuation
        for name, value, low in (("memory_size", memory_size, 1), ("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"BabiDataModule: {name} must be an integer of at least {low}, got {value!r}; set {name} to {low} or more.")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"BabiDataModule: val_fraction must be at least 0 and below 1, got {val_fraction!r}; e.g. 0.1.")
        if data_dir is None or not Path(data_dir).expanduser().is_dir():
            where = "data_dir is not set" if data_dir is None else f"data_dir '{data_dir}' is not a folder"
            raise DataError(
                f"BabiDataModule: {where}; download {SOURCE} and pass its en or en-10k folder (or any folder of "
                "qaN_*_train.txt and qaN_*_test.txt files) as data_dir."
            )
        self.data_dir = Path(data_dir).expanduser()
        self.memory_size, self.batch_size, self.val_fraction = memory_size, batch_size, float(val_fraction)
        self.seed, self.num_workers = seed, num_workers
        self.train_files = {t: self._task_file(t, "train") for t in self.tasks}
        self.task_names = {t: path.name.split("_", 1)[1].rsplit("_", 1)[0] for t, path in self.train_files.items()}
        self._encoder: _Encoder | None = None
        self._train: _Split | None = None
        self._val: _Split | None = None
        self._test: _Split | None = None

    def _task_file(self, task: int, split: str) -> Path:
        path = find_task_file(self.data_dir, task, split)
        if path is not None:
            return path
        other = find_task_file(self.data_dir, task, "test" if split == "train" else "train")
        beside = f" (its {other.name} is there)" if other is not None else ""
        if split == "test":
            fix = "add the file or run only fit and validate"
        else:
            present = [t for t in TASKS if find_task_file(self.data_dir, t, "train") is not None]
            if not present:
                fix = f"the folder holds no qaN_*_train.txt file at all; pass the en or en-10k folder of {SOURCE}"
            else:
                rest = [t for t in self.tasks if t in present] or present
                holds = "the tasks this folder holds" if rest == present else f"the folder holds tasks {_numbers(present)}"
                fix = f"leave the task out, e.g. tasks: [{', '.join(map(str, rest))}] ({holds}), or add the file"
        raise DataError(f"BabiDataModule: task {task} has no {split} file qa{task}_*_{split}.txt in '{self.data_dir}'{beside}; {fix}.")

    def _parse(self, task: int, path: Path, split: str) -> list[BabiStory]:
        """The stories of one file; a file without questions (an empty one included) is a :class:`DataError` naming it."""
        stories = parse_babi(path, task)
        if self.drop_punctuation:
            stories = [without_words(s, PUNCTUATION) for s in stories]
        if not any(s.questions for s in stories):
            what = "is empty" if not stories else "holds statements but no questions"
            raise DataError(
                f"BabiDataModule: the {split} file '{path}' of task {task} {what}; restore it from {SOURCE}, "
                "or leave the task out of tasks."
            )
        return stories

    # -- reading -------------------------------------------------------------------------------------
    def _build(self) -> None:
        """Parse the training files, split them, fix the vocabulary, answers and sizes (once)."""
        if self._encoder is not None:
            return
        stories = {t: self._parse(t, self.train_files[t], "train") for t in self.tasks}
        everything = [s for t in self.tasks for s in stories[t]]
        words = {w for s in everything for sentence in s.sentences for w in sentence}
        words |= {w for s in everything for q in s.questions for w in q.words}
        self.vocab = [PAD, UNK, *sorted(words - {PAD, UNK})]
        self.answers = sorted({q.answer for s in everything for q in s.questions})
        longest = max((q.end for s in everything for q in s.questions), default=1)
        N = max(1, min(self.memory_size, longest))
        L = max((len(x) for s in everything for x in s.sentences), default=1)
        Q = max(len(q.words) for s in everything for q in s.questions)
        self.vocab_size, self.answer_size = len(self.vocab), len(self.answers)
        self.max_sentences, self.sentence_length, self.question_length = N, L, Q
        self._encoder = _Encoder(self.vocab, self.answers, N, L, Q)
        train, val = [], []
        for t in self.tasks:
            order = list(range(len(stories[t])))
            random.Random(seed_from(self.seed, "babi-val", t)).shuffle(order)
            held = round(self.val_fraction * len(order))
            if self.val_fraction > 0 and len(order) > 1:
                held = min(max(held, 1), len(order) - 1)  # at least one story on each side
            held_out = set(order[:held])
            train += [s for i, s in enumerate(stories[t]) if i not in held_out]
            val += [s for i, s in enumerate(stories[t]) if i in held_out]
        self._train, self._val = _Split(train, self._encoder), _Split(val, self._encoder)

    def _build_test(self) -> None:
        self._build()
        if self._test is None:
            assert self._encoder is not None
            files = {t: self._task_file(t, "test") for t in self.tasks}
            self._test = _Split([s for t in self.tasks for s in self._parse(t, files[t], "test")], self._encoder)

    def split(self, name: str) -> _Split:
        """The encoded ``train``, ``val`` or ``test`` questions (parsed on first use)."""
        if name == "test":
            self._build_test()
            return self._test  # type: ignore[return-value]
        self._build()
        if name not in ("train", "val"):
            raise ConfigError(f"BabiDataModule.split: unknown split {name!r}; use 'train', 'val' or 'test'.")
        return self._train if name == "train" else self._val  # type: ignore[return-value]

    def _example_split(self, split: str) -> _Split:
        data = self.split(split)
        return data if len(data) or split != "val" else self.split("train")

    def example(self, index: int = 0, split: str = "val") -> dict[str, Any]:
        """Question ``index`` of ``split`` (the training split if there is no validation split) as text: ``task``,
        ``sentences`` (the N kept), ``question``, ``answer``, ``supporting`` (indices into those sentences)."""
        return self._example_split(split).example(index)

    def example_batch(self, batch_size: int = 1, split: str = "val") -> dict[str, Tensor]:
        """The first ``batch_size`` questions of ``split`` (the training split if there is no validation split)."""
        data = self._example_split(split)
        return data.__getitems__(list(range(min(batch_size, len(data)))))

    # -- LightningDataModule hooks ------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Read the training files (always: they fix the vocabulary and sizes), and the test files for test/predict."""
        self._build()
        if stage in ("test", "predict"):
            self._build_test()

    def _loader(self, data: _Split, shuffle: bool) -> DataLoader:
        # Every loader has a generator of its own, so that iterating one draws nothing from torch's global
        # generator: the training order and the model's random draws (dropout, MemN2N's random noise) do not
        # depend on how often validation runs (a sanity check included). The training loader's is seeded from
        # the global generator when the loader is made, so the order follows the run's seed.
        generator = torch.Generator()
        if shuffle:
            generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        return DataLoader(
            data, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers, collate_fn=_collate,
            persistent_workers=self.num_workers > 0, generator=generator,
        )

    def train_dataloader(self) -> DataLoader:
        """The training questions, shuffled each epoch (by the loader's own generator, seeded from torch's global one)."""
        return self._loader(self.split("train"), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The held-out validation questions (empty when ``val_fraction`` is 0)."""
        return self._loader(self.split("val"), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The test files' questions, every selected task in one loader (``batch["task"]`` tells them apart)."""
        return self._loader(self.split("test"), shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The test questions, in file order."""
        return self._loader(self.split("test"), shuffle=False)
