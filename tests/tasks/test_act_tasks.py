"""The ACT paper's tasks (parity, logic, addition): targets against plain-Python references, seeding, bad settings."""

import pytest
import torch

from mannkit.core.errors import ConfigError
from mannkit.tasks import AdditionTask, LogicTask, ParityTask
from mannkit.tasks.act_tasks import GATES, sum_digits


def test_parity_target_is_the_parity_of_the_plus_ones_and_entries_follow_the_range():
    task = ParityTask(size=16, min_entries=3, max_entries=9, test_entries=[5, 16], seed=4)
    batch = task.example_batch(50)
    x = batch["input"][:, 0]  # [B, S]
    assert batch["input"].shape == (50, 1, 16) and batch["target"].shape == (50, 1, 1) and batch["mask"].shape == (50, 1)
    counts = (x != 0).sum(1)
    assert counts.min() >= 3 and counts.max() <= 9 and len(set(counts.tolist())) > 3  # per-example difficulty
    assert set(x.unique().tolist()) == {-1.0, 0.0, 1.0}
    for b in range(50):
        assert batch["target"][b, 0, 0].item() == sum(v == 1.0 for v in x[b].tolist()) % 2
    assert task.test_set_names == ["n5", "n16"]
    torch.testing.assert_close(ParityTask(size=16, min_entries=3, max_entries=9, test_entries=[5], seed=4).example_batch(50)["input"], batch["input"])


def _logic_reference(x: torch.Tensor) -> list[int]:
    """Targets of one sequence ``[L, 102]``, one vector and one gate at a time."""
    out, previous = [], int(x[0, 0])
    for vector in x:
        a, b = previous, int(vector[1])
        for chunk in vector[2:].view(10, 10):
            if chunk.sum() == 0:
                break
            a, b = b, int(GATES[int(chunk.argmax()), 2 * a + b])
        out.append(b)
        previous = b
    return out


def test_logic_targets_match_a_plain_python_chain_of_gates():
    task = LogicTask(min_length=3, max_length=6, min_gates=1, max_gates=10, test_lengths=[6], seed=2)
    batch = task.example_batch(20)
    x = batch["input"]
    assert x.shape[2] == 102 and (x[:, 1:, 0] == 0).all()  # b0 given on the first vector only
    for b in range(20):
        assert batch["target"][b, :, 0].tolist() == _logic_reference(x[b])
    gates = x[:, :, 2:].view(20, -1, 10, 10).sum((-1, -2))
    assert gates.min() >= 1 and gates.max() <= 10 and batch["mask"].eq(1).all()


def test_logic_gates_are_the_ten_that_use_both_inputs():
    assert GATES.shape == (10, 4) and len({tuple(g) for g in GATES.tolist()}) == 10
    for table in GATES.tolist():  # neither constant nor a function of one input
        assert table not in ([0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 0], [1, 0, 1, 0], [0] * 4, [1] * 4)


def test_addition_targets_are_the_running_sums_in_six_digits():
    task = AdditionTask(min_length=2, max_length=5, min_digits=1, max_digits=5, test_lengths=[5], seed=1)
    batch = task.example_batch(8)
    x = batch["input"].view(8, -1, 5, 10)  # [B, L, 5 chunks, 10]
    assert batch["target"].shape == (8, x.shape[1], 6) and batch["target"].dtype == torch.long
    for b in range(8):
        total = 0
        for t in range(x.shape[1]):
            digits = [int(c.argmax()) for c in x[b, t] if c.sum() > 0]
            assert digits and (len(digits) == 1 or digits[0] != 0)
            total += int("".join(map(str, digits)))
            text = str(total)
            assert batch["target"][b, t].tolist() == [int(c) for c in text] + [10] * (6 - len(text))
    assert task.input_size == 50 and task.output_size == 66 and task.loss == "ce"


def test_addition_test_digits_give_one_set_per_digit_count_at_the_training_lengths():
    task = AdditionTask(min_length=1, max_length=3, test_lengths=None, test_digits=[1, 3, 5], test_batches=2, seed=2)
    assert task.test_set_names == ["d1", "d3", "d5"]
    assert task.test_axes() == [("digits", [1, 3, 5])]
    for k, batches in zip([1, 3, 5], task.test_sets):
        for batch in batches:
            chunks = batch["input"].view(batch["input"].shape[0], -1, 5, 10).sum(-1)  # [B, L, 5]: 1 where a digit is
            assert (chunks.sum(-1) == k).all()  # every number has exactly k digits
            assert 1 <= chunks.shape[1] <= 3  # lengths still from the training range
    paired = AdditionTask(test_lengths=[5, 5], test_digits=[2, 4])
    assert paired.test_set_names == ["len5_d2", "len5_d4"]
    assert AdditionTask().test_set_names == ["len5"]  # without test_digits: the sets as before


def test_sum_digits_by_hand():
    assert sum_digits(torch.tensor([0, 999990, 10]), 6).tolist() == [
        [0, 10, 10, 10, 10, 10], [9, 9, 9, 9, 9, 0], [1, 0, 10, 10, 10, 10]]


@pytest.mark.parametrize("make, match", [
    (lambda: ParityTask(size=8, max_entries=9, test_entries=[8]), r"ParityTask: .*max_entries.*size"),
    (lambda: LogicTask(max_gates=11), r"LogicTask: .*max_gates.*chunks"),
    (lambda: AdditionTask(max_digits=6), r"AdditionTask: .*max_digits.*digit_limit"),
    (lambda: AdditionTask(test_lengths=[11]), r"AdditionTask: test_lengths .*length_limit"),
    (lambda: AdditionTask(test_digits=[6]), r"AdditionTask: test_digits .*digit_limit"),
    (lambda: AdditionTask(test_lengths=[5, 5], test_digits=[1]), r"AdditionTask: test_lengths .* test_digits .*same number"),
])
def test_bad_settings_are_one_sentence(make, match):
    with pytest.raises(ConfigError, match=match) as info:
        make()
    assert "\n" not in str(info.value) and str(info.value).endswith(".")
