"""BabiSequenceTask: bAbI stories as word streams with answer slots, checked by hand on tiny files."""

import os
from pathlib import Path

import pytest
import torch

from mannkit.core.errors import ConfigError, DataError
from mannkit.tasks import BabiSequenceTask
from mannkit.tasks.babi_stream import ANSWER

FIXTURES = Path(__file__).parents[1] / "fixtures" / "babi"
REAL = Path(os.environ.get("MANNKIT_BABI_DIR", "/work/shared/data/babi/tasks_1-20_v1-2")) / "en-10k"  # used only when present

# one story of task 8: a one-word answer, then a two-word answer, then a statement nothing asks about
STORY = (
    "1 Mary got the milk.\n"
    "2 What is Mary carrying?\tmilk\t1\n"
    "3 John took the apple.\n"
    "4 Mary took the apple.\n"
    "5 What is Mary carrying?\tmilk,apple\t1 4\n"
    "6 John went home.\n"
)


def _task(tmp_path: Path, train: str = STORY, test: str = STORY, **kwargs) -> BabiSequenceTask:
    (tmp_path / "qa8_lists-sets_train.txt").write_text(train)
    (tmp_path / "qa8_lists-sets_test.txt").write_text(test)
    return BabiSequenceTask(str(tmp_path), tasks=[8], val_fraction=0.0, **kwargs)


def test_a_tiny_story_streams_as_checked_by_hand(tmp_path):
    task = _task(tmp_path)
    example = task.example(0, split="train")
    words = "mary got the milk . what is mary carrying ? - john took the apple . mary took the apple . what is mary carrying ? - -"
    assert example["words"] == words.split()  # the last statement, asked about by nothing, is left out
    assert example["answers"] == ["milk", "milk", "apple"] and example["task"] == 8
    assert task.answer_words == ["apple", "milk"] and task.output_size == 2
    assert ANSWER in task.vocab and task.input_size == len(task.vocab)

    batch = task.example_batch(1, split="train")
    T, V = len(words.split()), task.input_size
    assert batch["input"].shape == (1, T, V) and batch["input"].dtype == torch.float32
    assert torch.equal(batch["input"].sum(-1), torch.ones(1, T))  # one word per step
    slots = [10, 26, 27]  # the '-' steps
    assert torch.nonzero(batch["mask"][0]).flatten().tolist() == slots
    assert all(int(batch["input"][0, t].argmax()) == task.vocab.index(ANSWER) for t in slots)
    assert batch["target"][0, slots].tolist() == [1, 1, 0]  # milk, milk, apple
    assert int(batch["target"][0].abs().sum()) == 2  # 0 at every other step
    assert batch["question"][0, slots].tolist() == [1, 2, 2] and int(batch["question"][0].sum()) == 5
    assert batch["task"].tolist() == [8]


def test_a_batch_pads_shorter_streams_with_unscored_pad_words(tmp_path):
    second = "1 Bill got the milk.\n2 What is Bill carrying?\tmilk\t1\n"
    task = _task(tmp_path, train=STORY + second)
    batch = task.example_batch(2, split="train")
    assert batch["input"].shape[1] == 28  # the longer stream
    assert batch["mask"][1].tolist() == [0.0] * 10 + [1.0] + [0.0] * 17
    assert torch.equal(batch["input"][1, 11:].argmax(-1), torch.zeros(17, dtype=torch.long))  # <pad> after its end
    assert batch["question"][1].tolist() == [0] * 10 + [1] + [0] * 17


def test_a_test_answer_word_never_seen_in_training_is_target_minus_one(tmp_path):
    task = _task(tmp_path, test=STORY.replace("milk,apple", "milk,pear"))
    batch = task.split("test").__getitems__([0])
    assert batch["target"][0, [10, 26, 27]].tolist() == [1, 1, -1]


def test_the_validation_split_holds_whole_stories_as_babi_data_module_does():
    task = BabiSequenceTask(str(FIXTURES), tasks=[1, 8], val_fraction=0.5, seed=3)
    train, val = task.split("train"), task.split("val")
    assert len(train) + len(val) == len(task.source.split("train").stories) + len(task.source.split("val").stories)
    assert [s.sentences for s in val.stories] == [s.sentences for s in task.source.split("val").stories]
    assert {s.sentences for s in train.stories}.isdisjoint({s.sentences for s in val.stories})


def test_training_batches_cover_every_stream_once_in_a_seeded_order():
    def epochs(seed: int) -> list[list[int]]:
        task = BabiSequenceTask(str(FIXTURES), tasks=[1, 8], batch_size=2, val_fraction=0.0, seed=seed)
        loader = task.train_dataloader()
        assert len(task.split("train")) == 8 and len(loader) == 4
        return [[b for batch in loader.batch_sampler for b in batch] for _ in range(2)]

    first, second = epochs(0)
    assert sorted(first) == sorted(second) == list(range(8)) and first != second  # each epoch another order
    assert epochs(0) == [first, second]  # the seed repeats them


def test_streams_of_a_training_batch_have_similar_lengths():
    if not REAL.is_dir():
        pytest.skip(f"the bAbI 10k files are not at {REAL} (set MANNKIT_BABI_DIR); the fixtures are too small to bucket")
    task = BabiSequenceTask(str(REAL), tasks=[1, 2], batch_size=16)
    lengths = task.split("train").lengths
    padded = sum(int(lengths[b].max()) * len(b) for b in task.train_dataloader().batch_sampler)
    assert padded < 1.1 * int(lengths.sum())  # under 10% of the steps are padding


def test_a_missing_folder_is_an_error_naming_this_task(tmp_path):
    with pytest.raises(DataError, match=r"^BabiSequenceTask: data_dir '.*nowhere' is not a folder; download the bAbI"):
        BabiSequenceTask(str(tmp_path / "nowhere"), tasks=[1])


def test_a_missing_task_file_is_an_error_that_lists_the_tasks_present():
    with pytest.raises(DataError, match=r"BabiSequenceTask: task 3 has no train file .* e\.g\. tasks: \[1, 8\]"):
        BabiSequenceTask(str(FIXTURES), tasks=[1, 3, 8])


def test_a_missing_test_file_is_an_error_when_testing(tmp_path):
    (tmp_path / "qa8_lists-sets_train.txt").write_text(STORY)
    task = BabiSequenceTask(str(tmp_path), tasks=[8])
    task.setup("fit")
    with pytest.raises(DataError, match=r"BabiSequenceTask: task 8 has no test file .*add the file or run only fit and validate"):
        task.setup("test")


def test_a_malformed_line_names_its_file_and_line(tmp_path):
    task = _task(tmp_path, train=STORY.replace("carrying?\tmilk\t1", "carrying? milk 1"))
    with pytest.raises(DataError, match=r"qa8_lists-sets_train\.txt, line 2: a question without a tab-separated answer"):
        task.setup("fit")


@pytest.mark.parametrize("value", [0, -2, True])
def test_batch_size_must_be_positive(value):
    with pytest.raises(ConfigError, match=rf"^BabiSequenceTask: batch_size must be an integer of at least 1, got {value!r}"):
        BabiSequenceTask(str(FIXTURES), tasks=[1], batch_size=value)


def test_bad_tasks_are_refused_naming_this_task():
    with pytest.raises(ConfigError, match=r"^BabiSequenceTask: tasks holds 21, which is not a bAbI task number"):
        BabiSequenceTask(str(FIXTURES), tasks=[1, 21])
