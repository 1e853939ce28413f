"""Declarative difficulty: what a task's ``difficulty`` declaration implies (checks, attributes, test sets, axes), and Batch's docs."""

from __future__ import annotations

import pydoc

import pytest
import torch

from mannkit.core.errors import ConfigError
from mannkit.tasks import (
    AssociativeRecallTask,
    Batch,
    CopyTask,
    DynamicNGramsTask,
    FamilyTreeTask,
    GraphTraversalTask,
    PrioritySortTask,
    RepeatCopyTask,
    SequenceTask,
    ShortestPathTask,
    SortTask,
)
from mannkit.tasks.difficulty import Difficulty, check_difficulty


class Blocks(SequenceTask):
    """A toy task with two axes: blocks (ranged, 2 or more, at most ``capacity``) and width (one attribute, at most blocks' max).

    The input and target are ``[B, T, 1]`` zeros with T = blocks x width.
    """

    difficulty = (
        Difficulty("blocks", tag="b", tests="test_blocks", low=2, at_most="capacity"),
        Difficulty("width", tag="w", tests="test_widths", ranged=False, at_most="max_blocks"),
    )

    def __init__(
        self, min_blocks=2, max_blocks=3, width=2, test_blocks=(4, 5), test_widths=(3, 3), capacity=7, **kw
    ) -> None:
        super().__init__(**kw)
        self.capacity = capacity
        self.set_difficulty(
            min_blocks=min_blocks, max_blocks=max_blocks, width=width, test_blocks=test_blocks, test_widths=test_widths
        )
        self.input_size = self.output_size = 1

    def generate(self, generator, batch_size, min_blocks=2, max_blocks=3, width=2):
        blocks = int(torch.randint(min_blocks, max_blocks + 1, (1,), generator=generator))
        T = blocks * width
        return {"input": torch.zeros(batch_size, T, 1), "target": torch.zeros(batch_size, T, 1), "mask": torch.ones(batch_size, T)}


def test_the_declaration_gives_the_attributes_the_difficulties_and_the_names():
    task = Blocks(batch_size=2)
    assert Blocks.difficulty_attributes == ("min_blocks", "max_blocks", "width")
    assert task.train_difficulty() == {"min_blocks": 2, "max_blocks": 3, "width": 2}
    assert task.test_difficulties() == [
        ("b4_w3", {"min_blocks": 4, "max_blocks": 4, "width": 3}),
        ("b5_w3", {"min_blocks": 5, "max_blocks": 5, "width": 3}),
    ]
    assert task.test_set_names == ["b4_w3", "b5_w3"]
    assert task.test_axes() == [("blocks", [4, 5])]  # width does not vary across the test sets
    assert task.test_blocks == [4, 5]  # the given tuple, copied into a list
    assert [b["input"].shape[1] for b in (s[0] for s in task.test_sets)] == [12, 15]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_blocks": 1}, r"^Blocks: min_blocks \(1\) must be at least 2; set min_blocks to 2 or more\.$"),
        ({"min_blocks": 4}, r"^Blocks: min_blocks \(4\) must be at most max_blocks \(3\); lower min_blocks or raise max_blocks\.$"),
        ({"max_blocks": 8}, r"^Blocks: max_blocks \(8\) must be at most capacity \(7\); lower max_blocks or raise capacity\.$"),
        ({"width": 0}, r"^Blocks: width \(0\) must be at least 1"),
        ({"width": 4}, r"^Blocks: width \(4\) must be at most max_blocks \(3\)"),
        ({"test_blocks": []}, r"^Blocks: test_blocks is empty; give at least one value, for example \[2\]\.$"),
        ({"test_blocks": [4, 1]}, r"^Blocks: test_blocks \(\[4, 1\]\) holds values below 2"),
        ({"test_blocks": [4, 9]}, r"^Blocks: test_blocks \(\[4, 9\]\) holds values above capacity \(7\); raise capacity to 9 or lower test_blocks\.$"),
        ({"test_widths": [3]}, r"^Blocks: test_blocks \(\[4, 5\]\) and test_widths \(\[3\]\) must have the same number of entries"),
    ],
)
def test_the_declared_checks(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Blocks(**kwargs)


def test_a_bad_difficulty_set_by_a_curriculum_is_caught_before_the_next_batch():
    task = Blocks(batch_size=2)
    loader = iter(task.train_dataloader())
    next(loader)
    task.max_blocks = 8
    with pytest.raises(ConfigError, match=r"max_blocks \(8\) must be at most capacity \(7\)"):
        next(loader)


def test_set_difficulty_refuses_undeclared_names():
    with pytest.raises(TypeError, match=r"\['min_items'\] are not declared in difficulty"):
        Blocks().set_difficulty(min_items=3)


def test_a_task_without_test_lists_tests_at_its_training_difficulty():
    class Plain(SequenceTask):
        difficulty = (Difficulty("length", tag="len"),)

        def __init__(self) -> None:
            super().__init__(batch_size=2)
            self.set_difficulty(min_length=1, max_length=3)
            self.input_size = self.output_size = 1

        def generate(self, generator, batch_size, min_length=1, max_length=3):
            raise NotImplementedError

    assert Plain().test_difficulties() == [("test", {"min_length": 1, "max_length": 3})]
    assert Plain().test_axes() == []


def test_check_difficulty_skips_axes_that_are_not_given():
    check_difficulty("T", [Difficulty("length", "len")], {"width": 0}, None)  # no length: nothing to check


@pytest.mark.parametrize(
    ("task", "axes"),
    [
        (CopyTask(), [("length", [20, 40, 80, 120])]),
        (RepeatCopyTask(), [("length", [10, 20, 10]), ("repeats", [10, 10, 20])]),
        (AssociativeRecallTask(), [("items", [6, 12, 20])]),
        (DynamicNGramsTask(), [("length", [200, 1000])]),
        (PrioritySortTask(), [("num_inputs", [20, 40])]),  # the outputs follow the inputs: not an axis of its own
        (SortTask(), [("items", [8, 16, 24])]),
        (GraphTraversalTask(), [("nodes", [8, 12]), ("path_length", [3, 5])]),
        (ShortestPathTask(), [("nodes", [8, 12])]),
        (FamilyTreeTask(), [("people", [12, 18, 24])]),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, SequenceTask) else "",
)
def test_the_generalisation_axes_of_the_builtin_tasks(task, axes):
    assert task.test_axes() == axes


def test_multitask_reports_its_main_tasks_axes():
    from mannkit.tasks import MultiTask

    multi = MultiTask(RepeatCopyTask(bits=4), [CopyTask(bits=5)], [0.5])
    assert multi.test_axes() == RepeatCopyTask(bits=4).test_axes() == [("length", [10, 20, 10]), ("repeats", [10, 10, 20])]


def test_every_builtin_task_declares_its_difficulty_and_has_what_it_declares():
    from mannkit.core.registry import registry

    builtin = [e.cls for e in registry.entries("task")
               if issubclass(e.cls, SequenceTask) and e.cls.__module__.startswith("mannkit.tasks")]
    assert len(builtin) >= 9
    for cls in builtin:
        task = cls()
        assert cls.difficulty, cls.__name__
        assert cls.difficulty_attributes == tuple(a for axis in cls.difficulty for a in axis.attributes)
        for axis in cls.difficulty:
            assert all(isinstance(getattr(task, a), int) for a in axis.attributes), (cls.__name__, axis.name)
            # a declared test list is a list, or None where it is optional (the axis then keeps its training setting)
            assert axis.tests is None or getattr(task, axis.tests) is None or isinstance(getattr(task, axis.tests), list), (cls.__name__, axis.tests)


def test_batch_is_documented():
    text = pydoc.render_doc(Batch, renderer=pydoc.plaintext)
    assert "dict's docstring" not in text and "class ids" in text and "reference_bits" in text
    assert "dict() -> new empty dictionary" not in text
    assert Batch.__required_keys__ == {"input", "target", "mask"}
