"""N-th farthest: the labels against a brute-force reference (farthest first, not nearest), layout, seeds, difficulty."""

import math

import pytest
import torch

from mannkit.core.errors import ConfigError
from mannkit.tasks import NthFarthestTask
from mannkit.tasks.nth_farthest import nth_farthest

S, D, K = 7, 3, 5  # distinct sizes


def _decode(batch, b):
    x = batch["input"][b]  # [K, D + 3S]
    vectors = x[:, :D].tolist()
    n = int(x[0, D + S: D + 2 * S].argmax()) + 1
    m = int(x[0, D + 2 * S:].argmax())
    return vectors, n, m


def test_labels_are_the_nth_farthest_by_brute_force():
    task = NthFarthestTask(label_space=S, dims=D, min_objects=K, max_objects=K, test_objects=[K], batch_size=64)
    batch = task.example_batch(64)
    assert batch["input"].shape == (64, K, D + 3 * S) and batch["target"].dtype == torch.long
    seen_n = set()
    for b in range(64):
        vectors, n, m = _decode(batch, b)
        seen_n.add(n)
        farthest_first = sorted(range(K), key=lambda i: -math.dist(vectors[i], vectors[m]))
        assert batch["target"][b, -1].item() == farthest_first[n - 1]
        assert batch["input"][b, :, D:D + S].argmax(-1).tolist() == list(range(K)), "object t is labelled t"
        assert torch.equal(batch["input"][b, :, D + S:], batch["input"][b, :1, D + S:].expand(K, -1)), "the question at every step"
    assert seen_n == set(range(1, K + 1))
    assert batch["mask"].sum().item() == 64 and batch["mask"][:, -1].eq(1).all()


def test_n_counts_from_the_farthest_not_the_nearest():
    v = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]]])
    assert nth_farthest(v, torch.tensor([1]), torch.tensor([0])).item() == 2
    assert nth_farthest(v, torch.tensor([3]), torch.tensor([0])).item() == 0, "n = K is the reference itself"


def test_seeded_and_deterministic():
    a = NthFarthestTask(label_space=4, dims=4, min_objects=4, max_objects=4, test_objects=[4], seed=3).example_batch(5)
    b = NthFarthestTask(label_space=4, dims=4, min_objects=4, max_objects=4, test_objects=[4], seed=3).example_batch(5)
    c = NthFarthestTask(label_space=4, dims=4, min_objects=4, max_objects=4, test_objects=[4], seed=4).example_batch(5)
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["input"], c["input"])


def test_declared_difficulty_and_test_sets():
    task = NthFarthestTask(label_space=8, dims=2, min_objects=3, max_objects=5, test_objects=[6, 8])
    assert task.difficulty_attributes == ("min_objects", "max_objects") and task.loss == "ce"
    assert task.test_set_names == ["obj6", "obj8"]


def test_too_many_objects_are_refused_in_one_sentence():
    with pytest.raises(ConfigError, match=r"^NthFarthestTask: max_objects \(5\) must be at most label_space \(4\); lower "
                                          r"max_objects or raise label_space\.$"):
        NthFarthestTask(label_space=4, min_objects=4, max_objects=5, test_objects=[4])
    with pytest.raises(ConfigError, match=r"^NthFarthestTask: min_objects \(1\) must be at least 2"):
        NthFarthestTask(label_space=4, min_objects=1, max_objects=4, test_objects=[4])
