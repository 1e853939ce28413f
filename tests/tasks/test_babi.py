"""BabiDataModule: parsing the bAbI format, vocabulary and sizes, the batch format, the split, and one-sentence errors.

The fixtures (tests/fixtures/babi) are hand-written in the bAbI format: task 1 (4 training stories, 2 test
stories; the test holds the word and answer 'bathroom', never seen in training) and task 8 (4 + 1 stories,
with the two-word answers 'apple,football' and 'football,milk'). Sizes: V = 35 words (with <pad> and
<unk>), A = 10 answers, N = 6 statements (the longest story), L = 7 words, Q = 5 words.
"""

import doctest
import os
from pathlib import Path

import pytest
import torch

import mannkit.tasks.babi as babi_module
from mannkit.core.errors import ConfigError, DataError
from mannkit.tasks import BabiDataModule
from mannkit.tasks.babi import PAD, UNK, answer_word_ids, parse_babi, tokenize

FIXTURES = Path(__file__).parents[1] / "fixtures" / "babi"
QA1_TRAIN = FIXTURES / "qa1_single-supporting-fact_train.txt"
REAL = Path(os.environ.get("MANNKIT_BABI_DIR", "/work/shared/data/babi/tasks_1-20_v1-2"))


def _data(**overrides) -> BabiDataModule:
    data = BabiDataModule(**{"data_dir": str(FIXTURES), "tasks": [1, 8], "batch_size": 3, **overrides})
    data.setup("test")
    return data


def _words(data: BabiDataModule, ids: torch.Tensor) -> str:
    return " ".join(data.vocab[int(i)] for i in ids if int(i) != 0)


def test_docstrings():
    assert doctest.testmod(babi_module).failed == 0


# -- parsing ------------------------------------------------------------------------------------
def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("Where is Mary? ") == ["where", "is", "mary", "?"]
    assert tokenize("Sandra went back to the hallway.") == ["sandra", "went", "back", "to", "the", "hallway", "."]


def test_parse_keeps_statements_in_order_and_maps_supporting_ids_past_questions():
    stories = parse_babi(QA1_TRAIN, task=1)
    assert [len(s.sentences) for s in stories] == [6, 3, 3, 3]
    first = stories[0]
    assert first.task == 1 and first.sentences[2] == ("sandra", "journeyed", "to", "the", "office", ".")
    # line IDs 1 2 [3?] 4 5 [6?] 7 8 [9?]: statements 4 and 7 are sentences 2 and 4 of the story
    assert [(q.answer, q.supporting, q.end) for q in first.questions] == [("kitchen", (0,), 2), ("office", (2,), 4), ("bedroom", (4,), 6)]
    assert first.questions[0].words == ("where", "is", "sandra", "?")


def test_multi_word_answers_stay_one_string():
    stories = parse_babi(FIXTURES / "qa8_lists-sets_train.txt", task=8)
    answers = [q.answer for s in stories for q in s.questions]
    assert answers == ["apple", "apple,football", "football", "milk", "nothing", "football,milk", "apple"]
    assert stories[0].questions[2].supporting == (1, 2, 3)


# -- vocabulary, answers, sizes --------------------------------------------------------------------
def test_sizes_vocabulary_and_answers_from_the_training_files():
    data = _data()
    assert data.vocab[:2] == [PAD, UNK] and data.vocab[2:] == sorted(data.vocab[2:])
    assert (data.vocab_size, data.answer_size, data.max_sentences, data.sentence_length, data.question_length) == (35, 10, 6, 7, 5)
    assert len(data.vocab) == data.vocab_size and len(data.answers) == data.answer_size
    assert "bathroom" not in data.vocab  # only in the test file
    assert {"apple,football", "football,milk", "nothing"} <= set(data.answers)
    assert data.tasks == [1, 8] and data.task_names == {1: "single-supporting-fact", 8: "lists-sets"}


def test_unseen_test_words_map_to_unk_and_unseen_answers_to_minus_one():
    data = _data()
    test = data.split("test")
    first = test[0]  # "where is sandra ?" after "john went to the bathroom ." / "sandra moved to the garden ."
    assert _words(data, first["story"][0]) == "john went to the <unk> ."
    assert data.answers[int(first["answer"])] == "garden"
    assert int(test[1]["answer"]) == -1  # "bathroom": no class
    assert test.answer.tolist().count(-1) == 1


def test_answer_word_ids_split_multi_word_answers():
    data = _data()
    ids = answer_word_ids(data.vocab, data.answers)
    row = data.answers.index("apple,football")
    assert ids.shape == (10, 2) and [data.vocab[i] for i in ids[row]] == ["apple", "football"]
    assert ids[data.answers.index("nothing")].tolist() == [1, 0]  # 'nothing' is not a story word: <unk>, padded


# -- the batch format -----------------------------------------------------------------------------
def test_batch_format():
    data = _data()
    batch = next(iter(data.test_dataloader()))
    assert sorted(batch) == ["answer", "question", "story", "task"]
    assert all(v.dtype == torch.int64 for v in batch.values())
    assert batch["story"].shape == (3, 6, 7) and batch["question"].shape == (3, 5)
    assert batch["answer"].shape == (3,) and batch["task"].tolist() == [1, 1, 1]
    story = batch["story"][1]  # "where is john ?" after two statements of its story
    assert [_words(data, s) for s in story[:3]] == ["john went to the <unk> .", "sandra moved to the garden .", "mary journeyed to the office ."]
    assert not story[3:].any()  # unused sentence slots after the real ones are all 0
    assert story[0, 6] == 0 and story[0, :6].ne(0).all()  # a 6-word sentence right-padded to L = 7
    assert _words(data, batch["question"][1]) == "where is john ?" and batch["question"][1, 4] == 0


def test_story_is_cut_to_the_most_recent_memory_size_statements():
    data = _data(memory_size=2, tasks=[1], val_fraction=0.0)
    assert data.max_sentences == 2
    train = data.split("train")
    index = [i for i, (s, k) in enumerate(train.items) if (s, k) == (0, 2)][0]  # the 3rd question of story 0
    item = train[index]
    assert [_words(data, s) for s in item["story"]] == ["daniel travelled to the bedroom .", "john moved to the garden ."]
    text = data.example(index, "train")
    assert text["sentences"] == ["daniel travelled to the bedroom .", "john moved to the garden ."]
    assert text["supporting"] == [0] and text["answer"] == "bedroom"


def test_memory_size_larger_than_any_story_gives_the_longest_story():
    assert _data(memory_size=50).max_sentences == 6


# -- the validation split -------------------------------------------------------------------------
def test_validation_split_keeps_stories_whole_and_is_seeded():
    data = _data()
    train, val = data.split("train"), data.split("val")
    assert len(val.stories) == 2 and len(train.stories) == 6  # one story of each task held out (10% of 4, at least 1)
    assert not {id(s) for s in train.stories} & {id(s) for s in val.stories}
    assert len(train) + len(val) == 8 + 7  # every training question (8 of task 1, 7 of task 8) is on one side
    assert sorted(s.task for s in val.stories) == [1, 8]
    again = _data()
    assert [s.sentences for s in again.split("val").stories] == [s.sentences for s in val.stories]
    splits = {tuple(s.sentences for s in _data(seed=seed).split("val").stories) for seed in range(6)}
    assert len(splits) > 1


def test_no_validation_split():
    data = _data(val_fraction=0.0)
    assert len(data.split("val")) == 0 and len(data.split("train")) == 15
    assert data.example_batch(2)["story"].shape == (2, 6, 7)  # from the training questions instead


def test_dataloaders():
    data = _data(batch_size=4)
    orders = []
    for _ in range(4):
        batches = list(data.train_dataloader())
        orders.append(torch.cat([b["question"] for b in batches]).tolist())
        assert sum(len(b["answer"]) for b in batches) == len(data.split("train"))
    assert any(o != orders[0] for o in orders[1:])  # reshuffled each epoch
    assert data.train_dataloader().num_workers == 0
    val = torch.cat([b["answer"] for b in data.val_dataloader()])
    assert val.tolist() == data.split("val").answer.tolist()  # in order
    test = torch.cat([b["answer"] for b in data.predict_dataloader()])
    assert test.tolist() == torch.cat([b["answer"] for b in data.test_dataloader()]).tolist() == data.split("test").answer.tolist()


def test_example_batch_matches_example_text():
    data = _data()
    batch, text = data.example_batch(2), data.example(1)
    assert batch["story"].shape[0] == 2
    assert [_words(data, s) for s in batch["story"][1] if s.any()] == text["sentences"]
    assert data.answers[int(batch["answer"][1])] == text["answer"]


def test_task_selection():
    assert _data(tasks=8).tasks == [8]
    assert BabiDataModule(str(FIXTURES), tasks=[8, 1, 8]).tasks == [1, 8]


# -- one-sentence errors ------------------------------------------------------------------------------
def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith(".") and message.count("; ") <= 2, message


def test_missing_directory_says_where_the_data_comes_from(tmp_path):
    with pytest.raises(DataError, match=r"data_dir '.*nowhere' is not a folder; download the bAbI tasks v1\.2 from Facebook Research "
                                        r"\(tasks_1-20_v1-2\.tar\.gz\) and pass its en or en-10k folder") as info:
        BabiDataModule(str(tmp_path / "nowhere"))
    _one_sentence(str(info.value))
    with pytest.raises(DataError, match=r"data_dir is not set; download the bAbI tasks v1\.2"):
        BabiDataModule()


def test_missing_training_file_names_the_file_the_task_and_how_to_skip_it():
    with pytest.raises(DataError, match=r"task 2 has no train file qa2_\*_train\.txt in '.*babi'; leave the task out, e.g\. "
                                        r"tasks: \[1, 8\] \(the tasks this folder holds\), or add the file\.") as info:
        BabiDataModule(str(FIXTURES), tasks=[1, 2, 8])
    _one_sentence(str(info.value))
    with pytest.raises(DataError, match=r"task 2 has no train file qa2_\*_train\.txt in '.*babi'; leave the task out, e\.g\. "
                                        r"tasks: \[1, 8\] \(the tasks this folder holds\), or add the file\.$"):
        BabiDataModule(str(FIXTURES), tasks="all")  # it used to suggest tasks 1, 3, 4, ... 20, which are not there either


def test_tasks_all_on_a_folder_of_one_task_names_that_task(tmp_path):
    (tmp_path / QA1_TRAIN.name).write_text(QA1_TRAIN.read_text())
    with pytest.raises(DataError, match=r"task 2 has no train file .*; leave the task out, e\.g\. tasks: \[1\] "
                                        r"\(the tasks this folder holds\), or add the file\.$"):
        BabiDataModule(str(tmp_path), tasks="all")
    (tmp_path / QA1_TRAIN.name).unlink()
    with pytest.raises(DataError, match=r"task 1 has no train file .*; the folder holds no qaN_\*_train\.txt file at all; pass the en "):
        BabiDataModule(str(tmp_path), tasks="all")


def test_missing_test_file_is_an_error_only_for_test_and_predict(tmp_path):
    (tmp_path / QA1_TRAIN.name).write_text(QA1_TRAIN.read_text())
    data = BabiDataModule(str(tmp_path), tasks=[1])
    data.setup("fit")  # training needs no test file
    with pytest.raises(DataError, match=r"task 1 has no test file qa1_\*_test\.txt in '.*' \(its qa1_single-supporting-fact_train\.txt "
                                        r"is there\); add the file or run only fit and validate\."):
        data.setup("test")


@pytest.mark.parametrize(
    "lines, line, reason",
    [
        (["1 Mary went home.", "Where is Mary?\thome\t1"], 2, r"the line does not start with a numeric ID followed by text"),
        (["1 Mary went home.", "3 John left."], 2, r"ID 3 follows ID 1 \(IDs count up from 1 within a story\)"),
        (["1 Mary went home.", "2 Where is Mary?\thome\t7"], 2, r"the supporting IDs '7' are not earlier statements of the story"),
        (["1 Mary went home.", "2 Where is Mary?\t\t1"], 2, r"a question line needs a question, an answer and supporting IDs"),
        (["1 Mary went home.", "", "2 John left.", "3 Where is John?\thome\t2\textra"], 4,
         r"a question line needs a question, an answer and supporting IDs"),
        (["7"], 1, r"the line does not start with a numeric ID followed by text"),
        # damaged lines that used to become story sentences or answer classes
        (["1 Mary went home.", "2 Where is Mary?"], 2, r"a question without a tab-separated answer \(a question whose tabs became "
         r"spaces, or whose answer is missing\)"),
        (["1 Mary went home.", "2 Where is Mary? home 1"], 2, r"a question without a tab-separated answer \(.*\)"),
        (["1 Mary went home.", "2 Where is Mary?\thome 1"], 2, r"the answer 'home 1' holds a space \(answers are one word, or words "
         r"joined by commas; are the supporting IDs separated by a space instead of a tab\?\)"),
        (["1 Mary went home.", "2 Where is Mary?\tho\x00me\t1"], 2, r"the line holds the control character '\\x00' \(damaged or binary data\)"),
        (["1 Mary went\x00\x00 home.", "2 Where is Mary?\thome\t1"], 1, r"the line holds the control character '\\x00' \(.*\)"),
    ],
)
def test_malformed_line_names_the_file_and_line(tmp_path, lines, line, reason):
    path = tmp_path / "qa1_broken_train.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"{path}, line {line}: {reason}, got '.*'; bAbI lines are 'ID text' or "
                                        r"'ID question<TAB>answer<TAB>supporting IDs'\.") as info:
        parse_babi(path)
    _one_sentence(str(info.value))
    (tmp_path / "qa1_broken_test.txt").write_text("1 Mary went home.\n")
    with pytest.raises(DataError, match=rf"line {line}:"):
        BabiDataModule(str(tmp_path), tasks=[1]).setup("fit")  # the data module reports the same


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"tasks": [1, 21]}, ConfigError, r"tasks holds 21, which is not a bAbI task number; choose numbers from 1 to 20, or 'all'\."),
        ({"tasks": 0}, ConfigError, r"tasks holds 0, which is not a bAbI task number"),
        ({"tasks": []}, ConfigError, r"tasks is empty; give at least one task number from 1 to 20, or 'all'\."),
        ({"tasks": "some"}, ConfigError, r"tasks must be 'all' or a list of task numbers from 1 to 20, got 'some'"),
        ({"memory_size": 0}, ConfigError, r"memory_size must be an integer of at least 1, got 0"),
        ({"batch_size": 0}, ConfigError, r"batch_size must be an integer of at least 1, got 0"),
        ({"val_fraction": 1.0}, ConfigError, r"val_fraction must be at least 0 and below 1, got 1\.0"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        BabiDataModule(str(FIXTURES), **{"tasks": [1], **kwargs})


def test_training_files_without_questions(tmp_path):
    (tmp_path / "qa1_empty_train.txt").write_text("1 Mary went home.\n")
    with pytest.raises(DataError, match=r"the train file '.*qa1_empty_train\.txt' of task 1 holds statements but no questions; restore it "
                                        r"from the bAbI tasks v1\.2 .*, or leave the task out of tasks\.$"):
        BabiDataModule(str(tmp_path), tasks=[1]).setup("fit")


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_empty_file_is_an_error_naming_it(tmp_path, split):
    """An empty test file used to give only Lightning's zero-length warning and no results."""
    for name in (QA1_TRAIN.name, QA1_TRAIN.name.replace("train", "test")):
        (tmp_path / name).write_text(QA1_TRAIN.read_text())
    empty = tmp_path / QA1_TRAIN.name.replace("train", split)
    empty.write_text("\n" if split == "train" else "")
    data = BabiDataModule(str(tmp_path), tasks=[1])
    with pytest.raises(DataError, match=rf"^BabiDataModule: the {split} file '{empty}' of task 1 is empty; restore it from") as info:
        data.setup("test")
    _one_sentence(str(info.value))


@pytest.mark.parametrize("where, line", [(b"1 Mary went to the \xff\xfekitchen.\n", 1), (b"1 Mary went home.\n2 Where is \xe9?\thome\t1\n", 2)])
def test_bytes_that_are_not_utf8_name_the_file_and_line(tmp_path, where, line):
    path = tmp_path / "qa1_latin_train.txt"
    path.write_bytes(where)
    with pytest.raises(DataError, match=rf"^{path}, line {line}: the bytes b'\\x.*' at column \d+ are not UTF-8 text; bAbI files are "
                                        r"plain UTF-8 \(ASCII\) text, so re-download the file or save it as UTF-8\.$") as info:
        parse_babi(path)
    _one_sentence(str(info.value))


def test_windows_line_ends_are_fine(tmp_path):
    path = tmp_path / "qa1_crlf_train.txt"
    path.write_bytes(QA1_TRAIN.read_bytes().replace(b"\n", b"\r\n"))
    assert parse_babi(path) == parse_babi(QA1_TRAIN)


# -- the real data, where present ---------------------------------------------------------------------
@pytest.mark.skipif(not (REAL / "en").is_dir(), reason=f"the bAbI tasks v1.2 are not at {REAL} (set MANNKIT_BABI_DIR to check them)")
def test_the_real_files_parse():
    en = REAL / "en"
    for task in range(1, 21):  # every line of every file is in the format the parser insists on
        for split in ("train", "test"):
            stories = parse_babi(babi_module.find_task_file(en, task, split), task)
            assert sum(len(s.questions) for s in stories) == 1000, (task, split)
    data = BabiDataModule(str(en), tasks=[1, 19], batch_size=50)
    data.setup("test")
    assert len(data.split("train")) + len(data.split("val")) == 2000 and len(data.split("test")) == 2000
    assert 150 <= len(data.split("val")) <= 250  # 10% of the stories of each task
    assert {"n,w", "s,e"} <= set(data.answers) and data.max_sentences <= 50
    assert (data.split("test").answer >= 0).all()  # every test answer was seen in training
    if (REAL / "en-10k").is_dir() and babi_module.find_task_file(REAL / "en-10k", 3, "train") is None:
        with pytest.raises(DataError, match=r"task 3 has no train file qa3_\*_train\.txt in '.*en-10k' \(its "
                                            r"qa3_three-supporting-facts_test\.txt is there\); leave the task out, e\.g\. tasks: \[1, 2, 4,"):
            BabiDataModule(str(REAL / "en-10k"), tasks="all")
