"""SortTask: a hand-computed case, the target as the key-sorted permutation of the inputs, masks, seeding, errors."""

from __future__ import annotations

import doctest

import pytest
import torch

import mannkit.tasks.sorting as sorting_module
from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.registry import registry
from mannkit.tasks import SortTask
from mannkit.tasks.sorting import sort_by_key

SIZES = {"batch_size": 7, "train_batches": 3, "val_batches": 2, "test_batches": 2}


def small(**kw) -> SortTask:
    return SortTask(**{"bits": 5, "min_items": 2, "max_items": 6, "key_space": 17, "test_items": [11, 13], **SIZES, **kw})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_sort_by_key_hand_computed():
    vectors = torch.tensor([[[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], [[1.0, 1, 0], [0, 1, 1], [1, 0, 1], [0, 0, 0]]])
    keys = torch.tensor([[9, 2, 5, 0], [1, 3, 2, 0]])
    expected = [
        [[1.0, 1, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0]],  # keys 0, 2, 5, 9
        [[0.0, 0, 0], [1, 1, 0], [1, 0, 1], [0, 1, 1]],  # keys 0, 1, 2, 3
    ]
    assert sort_by_key(vectors, keys).tolist() == expected
    with pytest.raises(ShapeError, match=r"keys has shape \[2, 3\] but \[2, 4\] was expected"):
        sort_by_key(vectors, keys[:, :3])


def test_layout_and_target_is_the_inputs_sorted_by_key():
    W, N, B, K = 5, 6, 11, 17
    task = small()
    batch = task.generate(gen(), B, min_items=N, max_items=N)
    x, y, mask = batch["input"], batch["target"], batch["mask"]
    T = 2 * N + 1
    assert x.shape == (B, T, W + 2) and y.shape == (B, T, W) and (task.input_size, task.output_size) == (7, 5)
    assert mask.tolist() == [[0.0] * (N + 1) + [1.0] * N] * B
    assert x[:, N, W + 1].tolist() == [1.0] * B and x[:, :N, W + 1].abs().sum() == 0  # delimiter once
    assert x[:, N + 1 :].abs().sum() == 0 and y[:, : N + 1].abs().sum() == 0
    keys = x[:, :N, W] * K - 1  # back to integers 0..K-1
    assert torch.allclose(keys, keys.round()) and keys.min() >= 0 and keys.max() <= K - 1
    for b in range(B):
        k = keys[b].round().long().tolist()
        assert len(set(k)) == N  # distinct
        order = sorted(range(N), key=lambda i: k[i])
        assert torch.equal(y[b, N + 1 :], x[b, order, :W])  # a permutation of the inputs, ascending keys


def test_keys_cover_the_key_space():
    batch = small().generate(gen(3), 40, min_items=6, max_items=6)
    keys = (batch["input"][:, :6, 5] * 17 - 1).round().long()
    assert set(keys.flatten().tolist()) == set(range(17))


def test_item_count_drawn_per_batch_within_range():
    task = small()
    g = gen(5)
    counts = {int(task.generate(g, 2, min_items=2, max_items=6)["mask"][0].sum()) for _ in range(60)}
    assert counts == {2, 3, 4, 5, 6}


def test_seeded_and_deterministic():
    task = small()
    a, b, c = (task.generate(gen(s), 5, min_items=4, max_items=4) for s in (7, 7, 8))
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["input"], c["input"])
    assert torch.equal(small().example_batch()["input"], small().example_batch()["input"])
    first = next(iter(small().train_dataloader()))
    other = next(iter(small(seed=1).train_dataloader()))
    assert first["input"].shape != other["input"].shape or not torch.equal(first["input"], other["input"])


def test_test_sets_run_longer_and_curriculum_state():
    task = small()
    assert task.test_set_names == ["items11", "items13"]
    task.setup("test")
    assert [s[0]["mask"].sum(dim=1)[0].item() for s in task.test_sets] == [11.0, 13.0]
    assert torch.equal(small().test_sets[1][1]["input"], task.test_sets[1][1]["input"])  # fixed
    loader = iter(task.train_dataloader())
    task.min_items = task.max_items = 9  # a curriculum, mid-epoch
    assert next(loader)["input"].shape[1] == 19
    state = task.state_dict()
    assert state == {"min_items": 9, "max_items": 9, "train_epoch": 1}
    restored = small()
    restored.load_state_dict(state)
    assert restored.train_difficulty() == {"min_items": 9, "max_items": 9}
    task.max_items = 18
    with pytest.raises(ConfigError, match=r"SortTask: max_items \(18\) must be at most key_space \(17\)"):
        next(loader)


def test_registered_and_docstrings():
    assert registry.get("SortTask", "task") is SortTask
    assert doctest.testmod(sorting_module).failed == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_items": 33}, r"^SortTask: max_items \(33\) must be at most key_space \(32\); lower max_items or raise key_space\.$"),
        ({"min_items": 9}, r"^SortTask: min_items \(9\) must be at most max_items \(8\); lower min_items or raise max_items\.$"),
        ({"min_items": 0}, r"^SortTask: min_items \(0\) must be at least 1; set min_items to 1 or more\.$"),
        ({"bits": 0}, r"^SortTask: bits \(0\) must be at least 1"),
        ({"key_space": 0}, r"^SortTask: key_space \(0\) must be at least 1"),
        ({"test_items": [8, 40]}, r"^SortTask: test_items \(\[8, 40\]\) holds values above key_space \(32\); raise key_space to 40 or lower test_items\.$"),
        ({"test_items": [8, 0]}, r"^SortTask: test_items \(\[8, 0\]\) holds values below 1"),
        ({"test_items": []}, r"^SortTask: test_items is empty"),
    ],
)
def test_constructor_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SortTask(**kwargs)
