"""The NTM paper's five tasks: layout checked by independent reconstruction, seeding, DataModule plumbing.

Sizes are distinct per axis (B, T, W, I, O differ) so a transposed axis breaks a test.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.registry import registry
from mannkit.tasks import (
    AssociativeRecallTask,
    CopyTask,
    DynamicNGramsTask,
    PrioritySortTask,
    RepeatCopyTask,
    SequenceTask,
    ngram_bayes_optimal_bits,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Small instances of every task, with few batches, for the shared checks.
SMALL = {
    "copy": lambda **kw: CopyTask(bits=5, min_length=2, max_length=4, test_lengths=[6, 9], **kw),
    "repeat_copy": lambda **kw: RepeatCopyTask(
        bits=3, max_length=3, max_repeats=4, test_lengths=[3, 5], test_repeats=[4, 2], **kw
    ),
    "assoc": lambda **kw: AssociativeRecallTask(
        bits=5, item_length=2, min_items=2, max_items=4, test_items=[4, 7], **kw
    ),
    "ngrams": lambda **kw: DynamicNGramsTask(n=3, length=13, test_lengths=[13, 29], **kw),
    "priority": lambda **kw: PrioritySortTask(bits=3, num_inputs=7, num_outputs=5, test_inputs=[7, 11], **kw),
}
SIZES = {"batch_size": 11, "train_batches": 3, "val_batches": 2, "test_batches": 2}


def small(name: str, **kw) -> SequenceTask:
    return SMALL[name](**{**SIZES, **kw})


def assert_batches_equal(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def batches_differ(a: dict, b: dict) -> bool:
    return a["input"].shape != b["input"].shape or not torch.equal(a["input"], b["input"])


# -- 1. copy ---------------------------------------------------------------------------------


def test_copy_layout():
    task = CopyTask(bits=5, min_length=3, max_length=3)
    batch = task.generate(gen(), 11, min_length=3, max_length=3)
    x, y, mask = batch["input"], batch["target"], batch["mask"]
    assert x.shape == (11, 7, 6) and y.shape == (11, 7, 5) and mask.shape == (11, 7)
    assert (task.input_size, task.output_size, task.loss) == (6, 5, "bce")
    assert mask[0].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert torch.equal(y[:, 4:], x[:, :3, :5])  # the vectors come back in order
    assert y[:, :4].abs().sum() == 0
    assert x[:, :, 5].tolist() == [[0, 0, 0, 1, 0, 0, 0]] * 11  # the delimiter, once
    assert x[:, 4:].abs().sum() == 0  # blank while answering


def test_copy_lengths_drawn_per_batch_within_range():
    task = CopyTask(bits=2, min_length=2, max_length=5)
    g = gen(3)
    lengths = {(task.generate(g, 3, min_length=2, max_length=5)["input"].shape[1] - 1) // 2 for _ in range(60)}
    assert lengths == {2, 3, 4, 5}


# -- 2. repeat copy --------------------------------------------------------------------------


def test_repeat_copy_layout():
    task = RepeatCopyTask(bits=3, max_length=2, max_repeats=10)
    L, R = 2, 5
    batch = task.generate(gen(), 7, min_length=L, max_length=L, min_repeats=R, max_repeats=R)
    x, y, mask = batch["input"], batch["target"], batch["mask"]
    T = L + 1 + L * R + 1
    assert x.shape == (7, T, 5) and y.shape == (7, T, 4) and mask.shape == (7, T)
    assert (task.input_size, task.output_size) == (5, 4)
    assert torch.equal(mask, torch.cat([torch.zeros(7, L + 1), torch.ones(7, L * R + 1)], dim=1))
    assert torch.allclose(x[:, L, 4], torch.full((7,), R / 10))  # repeats normalised by max_repeats
    assert x[:, L, 3].tolist() == [1.0] * 7 and x[:, :L, 3:].abs().sum() == 0
    for r in range(R):
        for i in range(L):
            assert torch.equal(y[:, L + 1 + r * L + i, :3], x[:, i, :3])
    assert y[:, :, 3].tolist() == [[0.0] * (T - 1) + [1.0]] * 7  # end marker on the last step only
    assert y[:, -1, :3].abs().sum() == 0


def test_repeat_scale_is_fixed_when_max_repeats_changes():
    task = RepeatCopyTask(bits=2, max_length=2, max_repeats=4)
    task.max_repeats = 8  # a curriculum raises it
    batch = task.generate(gen(), 3, min_length=1, max_length=1, min_repeats=8, max_repeats=8)
    assert torch.allclose(batch["input"][:, 1, 3], torch.full((3,), 2.0))
    assert RepeatCopyTask(max_repeats=4, repeat_scale=16.0).repeat_scale == 16.0


def test_repeat_copy_test_set_names():
    assert RepeatCopyTask().test_set_names == ["len10_rep10", "len20_rep10", "len10_rep20"]


# -- 3. associative recall -------------------------------------------------------------------


def test_associative_recall_answer_is_the_item_after_the_query():
    W, S, K, B = 5, 3, 4, 7
    task = AssociativeRecallTask(bits=W, item_length=S, min_items=K, max_items=K)
    batch = task.generate(gen(1), B, min_items=K, max_items=K)
    x, y, mask = batch["input"], batch["target"], batch["mask"]
    T = K * (S + 1) + 2 * S + 2
    assert x.shape == (B, T, W + 2) and y.shape == (B, T, W) and (task.input_size, task.output_size) == (7, 5)
    assert mask[0].tolist() == [0.0] * (T - S) + [1.0] * S
    for b in range(B):  # parse each sequence by its delimiters
        starts = torch.nonzero(x[b, :, W]).flatten().tolist()
        queries = torch.nonzero(x[b, :, W + 1]).flatten().tolist()
        assert starts == [k * (S + 1) for k in range(K)] and len(queries) == 2
        items = [x[b, s + 1 : s + 1 + S, :W] for s in starts]
        query = x[b, queries[0] + 1 : queries[1], :W]
        hits = [k for k, item in enumerate(items) if torch.equal(item, query)]
        assert len(hits) == 1 and hits[0] < K - 1  # never the last item
        assert torch.equal(y[b, T - S :], items[hits[0] + 1])
    assert y[:, : T - S].abs().sum() == 0 and x[:, T - S :].abs().sum() == 0


def test_associative_recall_queries_every_position_but_the_last():
    task = AssociativeRecallTask(bits=6, item_length=2, min_items=4, max_items=4)
    batch = task.generate(gen(2), 200, min_items=4, max_items=4)
    x = batch["input"]
    query = x[:, 4 * 3 + 1 : 4 * 3 + 3, :6]  # [B, S, W]
    items = x[:, :12].reshape(200, 4, 3, 8)[:, :, 1:, :6]  # [B, K, S+1, I] -> the items' vectors
    position = (items == query.unsqueeze(1)).all(dim=3).all(dim=2).float().argmax(dim=1)
    assert set(position.tolist()) == {0, 1, 2}


# -- 4. dynamic N-grams ----------------------------------------------------------------------


def test_bayes_estimator_hand_computed():
    # n = 3: contexts are two bits. t=1 (no context), t=2 and t=3 (unseen contexts): 1 bit each;
    # t=4: context 10 was followed by 1 once -> P(1) = 1.5/2; t=5: context 01 was followed by 0 once -> P(1) = 0.5/2.
    bits = torch.tensor([[1, 0, 1, 0, 1, 1], [0, 0, 0, 0, 0, 0]])
    # second row: t=1 1 bit; t=2 context 00 unseen: 1 bit;
    # t=3,4,5 context 00 seen after 1, 2, 3 zeros: P(0) = 1.5/2, 2.5/3, 3.5/4.
    expected = [3 + math.log2(4 / 3) + 2, 2 + math.log2(2 / 1.5) + math.log2(3 / 2.5) + math.log2(4 / 3.5)]
    assert torch.allclose(ngram_bayes_optimal_bits(bits, n=3), torch.tensor(expected, dtype=torch.float64))


def _bayes_loop(bits: list[int], n: int) -> float:
    """Reference: the estimator as a plain loop over a dict of counts (bit 0 is seen, not scored)."""
    m, counts, cost = n - 1, {}, 0.0
    for t in range(len(bits)):
        if t < m:  # a fair coin, not drawn from the table
            cost += 1.0 if t >= 1 else 0.0
            continue
        c = tuple(bits[t - m : t])
        n0, n1 = counts.get(c, (0, 0))
        p1 = (n1 + 0.5) / (n0 + n1 + 1)
        if t >= 1:
            cost -= math.log2(p1 if bits[t] else 1 - p1)
        counts[c] = (n0 + (bits[t] == 0), n1 + (bits[t] == 1))
    return cost


@pytest.mark.parametrize("n", [1, 2, 4])
def test_bayes_estimator_matches_loop_reference(n):
    bits = torch.randint(0, 2, (5, 23), generator=gen(n))
    expected = torch.tensor([_bayes_loop(row, n) for row in bits.tolist()], dtype=torch.float64)
    assert torch.allclose(ngram_bayes_optimal_bits(bits, n), expected)


def test_bayes_estimator_rejects_wrong_shape():
    with pytest.raises(ShapeError, match=r"bits has shape \[2, 3, 1\]"):
        ngram_bayes_optimal_bits(torch.zeros(2, 3, 1), n=2)


def test_ngrams_layout_and_reference():
    task = DynamicNGramsTask(n=4, length=17)
    batch = task.generate(gen(), 7, length=17)
    x, y = batch["input"], batch["target"]
    assert x.shape == (7, 16, 1) and y.shape == (7, 16, 1) and (task.input_size, task.output_size) == (1, 1)
    assert torch.equal(batch["mask"], torch.ones(7, 16))
    assert torch.equal(x[:, 1:], y[:, :-1])  # the target is the next input
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    bits = torch.cat([x[:, :, 0], y[:, -1:, 0]], dim=1)  # [B, 17]
    assert batch["reference_bits"].dtype == torch.float32 and batch["reference_bits"].shape == (7,)
    assert torch.allclose(batch["reference_bits"].double(), ngram_bayes_optimal_bits(bits, 4), atol=1e-4)


def test_ngrams_follow_a_skewed_table():
    # Beta(1/2, 1/2) tables are mostly near 0 or 1, so the Bayesian predictor pays well under
    # 1 bit per step; fair coins would cost it more than 1.
    batch = DynamicNGramsTask(n=2, length=300).generate(gen(5), 32, length=300)
    assert (batch["reference_bits"].mean() / 299) < 0.75


# -- 5. priority sort ------------------------------------------------------------------------


def test_priority_sort_layout_and_order():
    W, N, K, B = 3, 7, 5, 11
    task = PrioritySortTask(bits=W, num_inputs=N, num_outputs=K)
    batch = task.generate(gen(), B, num_inputs=N, num_outputs=K)
    x, y, mask = batch["input"], batch["target"], batch["mask"]
    T = N + 1 + K
    assert x.shape == (B, T, W + 2) and y.shape == (B, T, W) and (task.input_size, task.output_size) == (5, 3)
    assert mask[0].tolist() == [0.0] * (N + 1) + [1.0] * K
    assert x[:, N, W + 1].tolist() == [1.0] * B and x[:, :N, W + 1].abs().sum() == 0
    priorities = x[:, :N, W]
    assert priorities.min() >= -1 and priorities.max() <= 1
    for b in range(B):
        order = sorted(range(N), key=lambda i: -priorities[b, i].item())[:K]
        assert torch.equal(y[b, N + 1 :], x[b, order, :W])
    assert y[:, : N + 1].abs().sum() == 0


def test_priority_sort_test_sets_keep_the_output_ratio():
    assert PrioritySortTask().test_set_names == ["in20_out16", "in40_out32"]
    task = PrioritySortTask(bits=2, num_inputs=5, num_outputs=2, test_inputs=[3, 10], **SIZES)
    assert task.test_set_names == ["in3_out1", "in10_out4"]
    task.setup("test")
    assert [s[0]["mask"].sum(dim=1)[0].item() for s in task.test_sets] == [1.0, 4.0]


# -- every task --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SMALL))
def test_batch_contract(name):
    task = small(name)
    batch = task.example_batch(batch_size=3)
    x, y, mask = batch["input"], batch["target"], batch["mask"]
    B, T = mask.shape
    assert B == 3 and x.shape == (B, T, task.input_size) and y.shape == (B, T, task.output_size)
    assert x.dtype == y.dtype == mask.dtype == torch.float32
    assert set(y.unique().tolist()) <= {0.0, 1.0} and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert mask.sum() > 0 and y[mask == 0].abs().sum() == 0  # nothing to predict where nothing is scored
    assert set(batch) <= {"input", "target", "mask", "reference_bits"}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_seeded_generation(name):
    task = small(name)
    difficulty = task.train_difficulty()
    assert_batches_equal(task.generate(gen(7), 5, **difficulty), task.generate(gen(7), 5, **difficulty))
    assert batches_differ(task.generate(gen(7), 5, **difficulty), task.generate(gen(8), 5, **difficulty))
    assert_batches_equal(task.example_batch(), small(name).example_batch())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_training_stream_seeding(name):
    first = list(small(name).train_dataloader())
    assert len(first) == SIZES["train_batches"]
    assert_batches_equal(first[0], next(iter(small(name).train_dataloader())))  # reproducible
    assert batches_differ(first[0], next(iter(small(name, seed=1).train_dataloader())))  # seed
    task = small(name)
    loader = task.train_dataloader()
    next(iter(loader))
    assert batches_differ(first[0], next(iter(loader)))  # each epoch draws new batches
    ranked = small(name)
    ranked.trainer = SimpleNamespace(global_rank=1)  # a second DDP process
    assert batches_differ(first[0], next(iter(ranked.train_dataloader())))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_dataloaders_end_to_end(name):
    task = small(name)
    task.setup("fit")
    train = next(iter(task.train_dataloader()))
    assert train["input"].shape[0] == 11 and train["input"].shape[2] == task.input_size
    val = list(task.val_dataloader())
    assert len(val) == SIZES["val_batches"]
    assert_batches_equal(val[0], next(iter(task.val_dataloader())))  # fixed
    task.setup("test")
    loaders = task.test_dataloader()
    assert len(loaders) == len(task.test_set_names) == 2
    test_batches = [list(loader) for loader in loaders]
    assert all(len(batches) == SIZES["test_batches"] for batches in test_batches)
    assert batches_differ(val[0], test_batches[0][0]) and batches_differ(test_batches[0][0], test_batches[1][0])
    assert_batches_equal(next(iter(task.predict_dataloader())), test_batches[0][0])
    assert_batches_equal(test_batches[1][1], list(small(name).test_dataloader()[1])[1])  # reproducible


def test_test_sets_run_at_their_difficulty():
    task = small("copy")
    assert task.test_set_names == ["len6", "len9"]
    assert [s[0]["input"].shape[1] for s in task.test_sets] == [13, 19]
    assert DynamicNGramsTask(test_lengths=[200, 400]).test_set_names == ["len200", "len400"]
    assert AssociativeRecallTask().test_set_names == ["items6", "items12", "items20"]


def test_curriculum_reads_difficulty_at_generation_time_and_state_round_trips():
    task = small("copy")
    loader = iter(task.train_dataloader())
    task.min_length = task.max_length = 7  # a curriculum callback, mid-epoch
    assert next(loader)["input"].shape[1] == 15
    state = task.state_dict()
    assert state == {"min_length": 7, "max_length": 7, "train_epoch": 1}
    restored = small("copy")
    restored.load_state_dict(state)
    assert (restored.min_length, restored.max_length, restored.train_epoch) == (7, 7, 1)
    with pytest.raises(ConfigError, match=r"CopyTask.load_state_dict: unknown keys \['num_items'\]"):
        restored.load_state_dict({"num_items": 3})


def test_bad_difficulty_set_later_is_caught_at_generation():
    task = small("copy")
    task.min_length = 9
    with pytest.raises(ConfigError, match=r"min_length \(9\) must be at most max_length \(4\)"):
        next(iter(task.train_dataloader()))


def test_every_task_is_registered():
    assert {"CopyTask", "RepeatCopyTask", "AssociativeRecallTask", "DynamicNGramsTask", "PrioritySortTask"} <= set(
        registry.names("task")
    )
    assert registry.get("CopyTask", "task") is CopyTask


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (CopyTask, {"min_length": 30}, r"^CopyTask: min_length \(30\) must be at most max_length \(20\); lower min_length or raise max_length\.$"),
        (CopyTask, {"bits": 0}, r"^CopyTask: bits \(0\) must be at least 1; set bits to 1 or more\.$"),
        (CopyTask, {"min_length": 0}, r"CopyTask: min_length \(0\) must be at least 1"),
        (CopyTask, {"test_lengths": []}, r"CopyTask: test_lengths is empty; give at least one value"),
        (CopyTask, {"test_lengths": [20, 0]}, r"CopyTask: test_lengths \(\[20, 0\]\) holds values below 1"),
        (CopyTask, {"batch_size": 0}, r"CopyTask: batch_size \(0\) must be at least 1"),
        (CopyTask, {"train_batches": -1}, r"CopyTask: train_batches \(-1\) must be at least 1"),
        (RepeatCopyTask, {"min_repeats": 11}, r"RepeatCopyTask: min_repeats \(11\) must be at most max_repeats \(10\)"),
        (RepeatCopyTask, {"test_repeats": [10]}, r"RepeatCopyTask: test_lengths \(\[10, 20, 10\]\) and test_repeats \(\[10\]\) must have the same number"),
        (RepeatCopyTask, {"repeat_scale": 0.0}, r"RepeatCopyTask: repeat_scale \(0.0\) must be positive"),
        (AssociativeRecallTask, {"min_items": 1}, r"AssociativeRecallTask: min_items \(1\) must be at least 2"),
        (AssociativeRecallTask, {"item_length": 0}, r"AssociativeRecallTask: item_length \(0\) must be at least 1"),
        (AssociativeRecallTask, {"test_items": [6, 1]}, r"AssociativeRecallTask: test_items \(\[6, 1\]\) holds values below 2"),
        (DynamicNGramsTask, {"n": 0}, r"DynamicNGramsTask: n \(0\) must be at least 1"),
        (DynamicNGramsTask, {"n": 17}, r"DynamicNGramsTask: n \(17\) must be at most 16"),
        (DynamicNGramsTask, {"length": 5}, r"DynamicNGramsTask: length \(5\) must be at least max\(2, n\) = 6"),
        (DynamicNGramsTask, {"test_lengths": [200, 4]}, r"DynamicNGramsTask: test_lengths \(4\) must be at least max\(2, n\) = 6"),
        (PrioritySortTask, {"num_outputs": 21}, r"PrioritySortTask: num_outputs \(21\) must be at most num_inputs \(20\)"),
        (PrioritySortTask, {"num_outputs": 0}, r"PrioritySortTask: num_outputs \(0\) must be at least 1"),
    ],
)
def test_constructor_validation(cls, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        cls(**kwargs)


def test_fits_and_tests_under_a_trainer(tmp_path):
    import lightning.pytorch as pl

    class Linear(pl.LightningModule):
        def __init__(self, task: SequenceTask) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(task.input_size, task.output_size)

        def _loss(self, batch):
            logits = self.layer(batch["input"])
            bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["target"], reduction="none")
            return (bce.sum(2) * batch["mask"]).sum() / batch["mask"].sum()

        def training_step(self, batch, batch_idx):
            return self._loss(batch)

        def validation_step(self, batch, batch_idx):
            self.log("val", self._loss(batch))

        def test_step(self, batch, batch_idx, dataloader_idx=0):
            self.log("test", self._loss(batch))

        def predict_step(self, batch, batch_idx):
            return self.layer(batch["input"])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    task = small("copy")
    model = Linear(task)
    trainer = pl.Trainer(
        max_epochs=2, default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, task)
    assert trainer.global_step == 2 * SIZES["train_batches"] and task.train_epoch == 2
    checkpoint = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    assert checkpoint["CopyTask"] == {"min_length": 2, "max_length": 4, "train_epoch": 2}
    results = trainer.test(model, task, verbose=False)
    assert len(results) == len(task.test_set_names)
    predictions = trainer.predict(model, task)
    assert len(predictions) == SIZES["test_batches"] and predictions[0].shape == task.test_sets[0][0]["target"].shape
