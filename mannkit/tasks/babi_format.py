"""The bAbI v1.2 file format: one file read into its stories, every damaged line an error naming file and line.

One line each: ``ID text`` for a statement and ``ID question<TAB>answer<TAB>supporting IDs`` for a
question; IDs count up from 1 within a story and restart at 1 for the next one. Files are UTF-8.
Lines that a damaged copy produces are refused rather than read as something else: a question
whose tabs became spaces (or without its answer) would become a story sentence, an answer field
holding ``hallway 4`` (supporting IDs after a space) a new answer class, control characters such
as NUL garbage words; each is a :class:`~mannkit.core.errors.DataError` naming the file and line.

>>> tokenize("Where is Mary? ")
['where', 'is', 'mary', '?']
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mannkit.core.errors import DataError

__all__ = ["BabiQuestion", "BabiStory", "PAD", "UNK", "SOURCE", "TASKS", "tokenize", "parse_babi", "find_task_file", "without_words"]

PAD, UNK = "<pad>", "<unk>"
TASKS = tuple(range(1, 21))
SOURCE = "the bAbI tasks v1.2 from Facebook Research (tasks_1-20_v1-2.tar.gz)"
_FORMAT = "bAbI lines are 'ID text' or 'ID question<TAB>answer<TAB>supporting IDs'"


_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lowercased words, with each punctuation mark a word of its own.

    >>> tokenize("Mary got the football there.")
    ['mary', 'got', 'the', 'football', 'there', '.']
    """
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True)
class BabiQuestion:
    """One question of a story.

    Attributes:
        words: the question's words.
        answer: the full answer string, lowercased (``apple,football`` for a two-word answer).
        supporting: indices of the supporting statements in the story's ``sentences``.
        end: how many statements of the story precede the question (its story is ``sentences[:end]``).
    """

    words: tuple[str, ...]
    answer: str
    supporting: tuple[int, ...]
    end: int


@dataclass(frozen=True)
class BabiStory:
    """One story of one task: its statements in order and the questions asked along the way."""

    task: int
    sentences: tuple[tuple[str, ...], ...]
    questions: tuple[BabiQuestion, ...]


def without_words(story: BabiStory, words: frozenset[str] | set[str]) -> BabiStory:
    """The story with the tokens ``words`` removed from its statements and questions (answers and indices kept).

    >>> story = BabiStory(1, (("mary", "went", "home", "."),), (BabiQuestion(("where", "is", "mary", "?"), "home", (0,), 1),))
    >>> s = without_words(story, {".", "?"})
    >>> s.sentences, s.questions[0].words
    ((('mary', 'went', 'home'),), ('where', 'is', 'mary'))
    """
    keep = lambda tokens: tuple(w for w in tokens if w not in words)  # noqa: E731
    questions = tuple(BabiQuestion(keep(q.words), q.answer, q.supporting, q.end) for q in story.questions)
    return BabiStory(story.task, tuple(keep(x) for x in story.sentences), questions)


def _malformed(path: Path, number: int, line: str, reason: str) -> DataError:
    return DataError(f"{path}, line {number}: {reason}, got {line.strip()!r}; {_FORMAT}.")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # control characters other than tab and line ends


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file; bytes that are not UTF-8 are a :class:`DataError` naming file and line."""
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}, line {number}: the bytes {raw[exc.start : exc.end]!r} at column {exc.start + 1} are not UTF-8 text; "
                    "bAbI files are plain UTF-8 (ASCII) text, so re-download the file or save it as UTF-8."
                ) from None


def _check_line(path: Path, number: int, line: str, text: str) -> None:
    """The checks that make a damaged line an error instead of a wrong story sentence or answer class."""
    control = _CONTROL.search(line)
    if control:
        raise _malformed(path, number, line, f"the line holds the control character {control.group()!r} (damaged or binary data)")
    if "\t" not in text and "?" in text:
        raise _malformed(
            path, number, line,
            "a question without a tab-separated answer (a question whose tabs became spaces, or whose answer is missing)",
        )


def parse_babi(path: str | Path, task: int = 0) -> list[BabiStory]:
    """Read one bAbI file into its stories; raise :class:`DataError` naming the file and line of a malformed line.

    Args:
        path: a ``qaN_*_{train,test}.txt`` file.
        task: the task number stored with each story.
    """
    path = Path(path)
    stories: list[BabiStory] = []
    sentences: list[tuple[str, ...]] = []
    questions: list[BabiQuestion] = []
    index_of: dict[int, int] = {}  # statement ID -> index in sentences
    previous = 0
    seen: dict[str, tuple[str, ...]] = {}  # text -> words, shared by repeated sentences

    def words_of(text: str) -> tuple[str, ...]:
        if text not in seen:
            seen[text] = tuple(tokenize(text))
        return seen[text]

    def close() -> None:
        if sentences or questions:
            stories.append(BabiStory(task, tuple(sentences), tuple(questions)))

    for number, line in _lines(path):
        if not line.strip():
            continue
        ident, _, text = line.strip(" \r\n").partition(" ")
        if not ident.isdigit() or not text.strip():
            raise _malformed(path, number, line, "the line does not start with a numeric ID followed by text")
        _check_line(path, number, line, text)
        ident_value = int(ident)
        if ident_value == 1:
            close()
            sentences, questions, index_of = [], [], {}
        elif ident_value != previous + 1:
            raise _malformed(path, number, line, f"ID {ident_value} follows ID {previous} (IDs count up from 1 within a story)")
        previous = ident_value
        if "\t" not in text:
            index_of[ident_value] = len(sentences)
            sentences.append(words_of(text))
            continue
        fields = text.split("\t")
        if len(fields) > 3 or not fields[1].strip() or not tokenize(fields[0]):
            raise _malformed(path, number, line, "a question line needs a question, an answer and supporting IDs")
        if len(fields[1].split()) > 1:
            raise _malformed(
                path, number, line,
                f"the answer '{fields[1].strip()}' holds a space (answers are one word, or words joined by commas; "
                "are the supporting IDs separated by a space instead of a tab?)",
            )
        support_field = fields[2] if len(fields) == 3 else ""
        ids = support_field.split()
        if not all(i.isdigit() and int(i) in index_of for i in ids):
            raise _malformed(path, number, line, f"the supporting IDs '{support_field.strip()}' are not earlier statements of the story")
        supporting = tuple(index_of[int(i)] for i in ids)
        answer = fields[1].strip().lower()
        questions.append(BabiQuestion(words_of(fields[0]), answer, supporting, len(sentences)))
    close()
    return stories


def find_task_file(data_dir: Path, task: int, split: str) -> Path | None:
    """The file ``qa{task}_*_{split}.txt`` in ``data_dir``, or None; two matches are a :class:`DataError`."""
    found = sorted(data_dir.glob(f"qa{task}_*_{split}.txt"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(f"BabiDataModule: task {task} has several {split} files in '{data_dir}' ({names}); keep one of them.")
    return found[0] if found else None
