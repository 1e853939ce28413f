"""Declarative difficulty: a task names its difficulty axes once, and the checks, curriculum attributes and test sets follow.

A generated task gets harder along a few axes (sequence length, repeats, items, graph nodes,
path length ...). Each is one :class:`Difficulty` in the task's ``difficulty`` tuple:

>>> LENGTH = Difficulty("length", tag="len", tests="test_lengths")
>>> LENGTH.attributes, LENGTH.test_name(20)
(('min_length', 'max_length'), 'len20')

From that declaration :class:`~mannkit.tasks.SequenceTask` derives

- ``difficulty_attributes`` (``min_length``, ``max_length``): what a curriculum may raise and what
  ``state_dict`` saves;
- the checks (:func:`check_difficulty`): at least ``low``, ``min_x <= max_x``, at most ``at_most``,
  run at construction and before every generated batch (a curriculum's bad value is caught at once);
- the checks of the test lists (:func:`check_tests`): non-empty, at least ``low``, at most a fixed
  bound, one entry per test set on every axis;
- the test sets (:func:`difficulties_of_test_sets`): entry i of every axis's test list, named by the tags
  (``len10_rep20``), each at a single value of every axis (``min_x == max_x``);
- the axes of the generalisation pictures (the ``plotted`` axes whose test values differ).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mannkit.core.errors import ConfigError

__all__ = ["Difficulty", "check_at_least", "check_order", "check_list", "check_difficulty", "check_tests", "difficulties_of_test_sets"]


@dataclass(frozen=True)
class Difficulty:
    """One difficulty axis of a task.

    Attributes:
        name: the axis, e.g. ``"length"``. A ranged axis lives in two attributes, ``min_<name>`` and
            ``max_<name>`` (the generator draws a value in between); with ``ranged=False`` in one,
            ``<name>``.
        tag: the prefix of the test-set names (``"len"`` names a test set ``len20``).
        tests: the attribute holding one value per test set (``"test_lengths"``); None keeps the
            training setting of this axis in every test set, and so does that attribute's value None on
            a task (an optional test list, such as addition's ``test_digits``).
        low: the smallest value the axis may take (checked for the training range and every test value).
        at_most: an attribute that bounds the axis from above: a fixed one such as ``"id_space"``
            (also bounds the test values), or another axis's attribute (``"num_inputs"``; checked per
            difficulty, with that axis's value in the same difficulty).
        plotted: whether the generalisation pictures draw this axis (False for an axis whose test
            values follow another's, like priority sort's outputs).
    """

    name: str
    tag: str
    tests: str | None = None
    low: int = 1
    at_most: str | None = None
    ranged: bool = True
    plotted: bool = True

    @property
    def attributes(self) -> tuple[str, ...]:
        """The task attributes of this axis: ``(min_<name>, max_<name>)`` or ``(<name>,)``."""
        return (f"min_{self.name}", f"max_{self.name}") if self.ranged else (self.name,)

    def test_name(self, value: int) -> str:
        """The part of a test-set name for ``value``: ``tag`` then the value."""
        return f"{self.tag}{value}"

    def at(self, value: int) -> dict[str, int]:
        """The difficulty keywords of a test set at ``value`` (``min_x == max_x`` for a ranged axis)."""
        return {attribute: value for attribute in self.attributes}


# -- validation helpers shared by the tasks --------------------------------------------


def check_at_least(owner: str, name: str, value: int | float, low: int | float) -> None:
    """Raise :class:`ConfigError` unless ``value >= low``.

    >>> check_at_least("CopyTask", "bits", 0, 1)
    Traceback (most recent call last):
    ...
    mannkit.core.errors.ConfigError: CopyTask: bits (0) must be at least 1; set bits to 1 or more.
    """
    if value < low:
        raise ConfigError(f"{owner}: {name} ({value}) must be at least {low}; set {name} to {low} or more.")


def check_order(owner: str, low_name: str, low: int, high_name: str, high: int) -> None:
    """Raise :class:`ConfigError` unless ``low <= high`` (a ``min_x``/``max_x`` pair)."""
    if low > high:
        raise ConfigError(
            f"{owner}: {low_name} ({low}) must be at most {high_name} ({high}); "
            f"lower {low_name} or raise {high_name}."
        )


def check_list(owner: str, name: str, values: list[int], low: int) -> None:
    """Raise :class:`ConfigError` unless ``values`` is a non-empty list of ints that are all ``>= low``."""
    if len(values) == 0:
        raise ConfigError(f"{owner}: {name} is empty; give at least one value, for example [{low}].")
    bad = [v for v in values if v < low]
    if bad:
        raise ConfigError(f"{owner}: {name} ({list(values)}) holds values below {low}; make every entry {low} or more.")


# -- what a declaration implies ----------------------------------------------------------


def _axis_attributes(axes: Sequence[Difficulty]) -> set[str]:
    return {attribute for axis in axes for attribute in axis.attributes}


def check_difficulty(owner: str, axes: Sequence[Difficulty], difficulty: Mapping[str, Any], task: Any) -> None:
    """Check one difficulty (training or test) against the declared axes, axis by axis, in order.

    Per axis: the lowest value is at least ``low``; ``min_x <= max_x``; the highest value is at most
    ``at_most`` (read from ``difficulty`` when it is another axis's attribute, else from ``task``).
    An axis missing from ``difficulty`` is skipped.

    >>> check_difficulty("CopyTask", [Difficulty("length", "len")], {"min_length": 5, "max_length": 3}, None)
    Traceback (most recent call last):
    ...
    mannkit.core.errors.ConfigError: CopyTask: min_length (5) must be at most max_length (3); lower min_length or raise max_length.
    """
    for axis in axes:
        if not all(attribute in difficulty for attribute in axis.attributes):
            continue
        first, last = axis.attributes[0], axis.attributes[-1]
        check_at_least(owner, first, difficulty[first], axis.low)
        if axis.ranged:
            check_order(owner, first, difficulty[first], last, difficulty[last])
        if axis.at_most is not None:
            bound = difficulty[axis.at_most] if axis.at_most in difficulty else getattr(task, axis.at_most)
            check_order(owner, last, difficulty[last], axis.at_most, bound)


def _tested(axes: Sequence[Difficulty], task: Any) -> list[Difficulty]:
    """The axes with a test list on ``task`` (a declared list whose value is None is left out)."""
    return [axis for axis in axes if axis.tests is not None and getattr(task, axis.tests, None) is not None]


def check_tests(owner: str, axes: Sequence[Difficulty], task: Any) -> None:
    """Check every axis's test list on ``task``: non-empty, at least ``low``, within a fixed ``at_most``, equal lengths."""
    tested = _tested(axes, task)
    for axis in tested:
        values = list(getattr(task, axis.tests))
        check_list(owner, axis.tests, values, axis.low)
        if axis.at_most is not None and axis.at_most not in _axis_attributes(axes):
            bound = getattr(task, axis.at_most)
            if max(values) > bound:
                raise ConfigError(
                    f"{owner}: {axis.tests} ({values}) holds values above {axis.at_most} ({bound}); "
                    f"raise {axis.at_most} to {max(values)} or lower {axis.tests}."
                )
    for axis in tested[1:]:
        first, values, others = tested[0].tests, getattr(task, tested[0].tests), getattr(task, axis.tests)
        if len(others) != len(values):
            raise ConfigError(
                f"{owner}: {first} ({list(values)}) and {axis.tests} ({list(others)}) must have the same number of "
                f"entries; give one {axis.tests} entry per entry of {first}."
            )


def difficulties_of_test_sets(axes: Sequence[Difficulty], task: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(name, difficulty)`` per test set: entry i of every test list, the other axes at their training setting.

    >>> from types import SimpleNamespace
    >>> task = SimpleNamespace(test_lengths=[10, 20], test_repeats=[10, 10])
    >>> difficulties_of_test_sets([Difficulty("length", "len", "test_lengths"), Difficulty("repeats", "rep", "test_repeats")], task)[1]
    ('len20_rep10', {'min_length': 20, 'max_length': 20, 'min_repeats': 10, 'max_repeats': 10})
    """
    tested = _tested(axes, task)
    if not tested:
        return []
    sets = []
    for values in zip(*(getattr(task, axis.tests) for axis in tested)):
        chosen = dict(zip((axis.name for axis in tested), values))
        difficulty: dict[str, Any] = {}
        for axis in axes:
            if axis.name in chosen:
                difficulty.update(axis.at(chosen[axis.name]))
            else:
                difficulty.update({attribute: getattr(task, attribute) for attribute in axis.attributes})
        sets.append(("_".join(axis.test_name(chosen[axis.name]) for axis in tested), difficulty))
    return sets
