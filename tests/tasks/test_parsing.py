"""Dyck-n recognition: the targets by hand, balanced strings within the depth bound, longer and deeper test sets."""

import pytest
import torch

from mannkit.core.errors import ConfigError
from mannkit.tasks import DyckTask
from mannkit.tasks.parsing import dyck_targets


def _strings(batch, kinds):  # noqa: ANN001,ANN202
    return [x[mask > 0].argmax(-1).tolist() for x, mask in zip(batch["input"], batch["mask"])]


def _max_depth(string, kinds):  # noqa: ANN001,ANN202
    depth, deepest = 0, 0
    for c in string:
        depth += 1 if c < kinds else -1
        deepest = max(deepest, depth)
        assert depth >= 0
    assert depth == 0, "balanced"
    return deepest


def test_targets_by_hand():
    # ( [ [ ] ] ) ( ) with ( = 0, [ = 1, ) = 2, ] = 3
    bits = dyck_targets(torch.tensor([[0, 1, 1, 3, 3, 2, 0, 2]]), kinds=2)
    expected = [[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1]]
    assert bits[0].tolist() == expected


def test_strings_are_balanced_within_the_bound_and_their_targets_match():
    task = DyckTask(kinds=3, min_length=2, max_length=30, depth=4, batch_size=16)
    batch = task.example_batch(16)
    assert batch["input"].shape[-1] == 6 and batch["target"].shape[-1] == 4
    strings = _strings(batch, 3)
    assert len({len(s) for s in strings}) > 1 and all(len(s) % 2 == 0 for s in strings)
    assert max(_max_depth(s, 3) for s in strings) <= 4
    for s, target, mask in zip(strings, batch["target"], batch["mask"]):
        n = len(s)
        assert torch.equal(target[:n], dyck_targets(torch.tensor([s]), 3)[0]) and not target[n:].any()
        assert mask.sum() == n


def test_test_sets_are_longer_and_nest_deeper():
    task = DyckTask(kinds=2, max_length=50, depth=6, test_lengths=[50, 100], test_depths=[6, 30], batch_size=32, test_batches=1)
    assert task.test_set_names == ["len50_depth6", "len100_depth30"]
    short, long = (batches[0] for batches in task.test_sets)
    assert {len(s) for s in _strings(long, 2)} == {100}
    train_deepest = max(_max_depth(s, 2) for s in _strings(task.example_batch(32), 2))
    assert train_deepest <= 6 < max(_max_depth(s, 2) for s in _strings(long, 2))


def test_generation_is_seeded():
    a, b = DyckTask(seed=5), DyckTask(seed=5)
    assert torch.equal(a.example_batch(4)["input"], b.example_batch(4)["input"])
    assert not torch.equal(a.example_batch(4)["input"], DyckTask(seed=6).example_batch(4)["input"])


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: DyckTask(kinds=0), r"^DyckTask: kinds \(0\) must be at least 1"),
        (lambda: DyckTask(open_probability=1.0), r"^DyckTask: open_probability must be between 0 and 1 \(exclusive\), got 1\.0; use e\.g\. 0\.5\.$"),
        (lambda: DyckTask(test_lengths=[50, 100], test_depths=[10]), r"^DyckTask: "),
    ],
)
def test_bad_settings_are_refused_in_one_sentence(build, message):
    with pytest.raises(ConfigError, match=message):
        build()
