"""The stack equations: hand-computed cases (the paper's worked example), invariants, float64 gradcheck."""

import pytest
import torch

from mannkit_stack import NeuralDeque, NeuralQueue, NeuralStack
from mannkit_stack import mechanisms as m

B, W = 3, 5


def _step(memory, state, pop, push, value):  # noqa: ANN001,ANN202
    """One step (pop, push, read) of ``memory`` with strengths [B, E] and values [B, E, W]."""
    state = memory.push(memory.pop(state, pop), value, push)
    reads, weights = memory.peek(state)
    return state, reads, weights


def _run(memory, pops, pushes, values):  # noqa: ANN001,ANN202
    state = memory.initial_state(1, torch.device("cpu"), torch.float64)
    reads = []
    for u, d, v in zip(pops, pushes, values):
        state, r, _ = _step(memory, state, torch.tensor([[u]], dtype=torch.float64), torch.tensor([[d]], dtype=torch.float64), v.view(1, 1, -1))
        reads.append(r[0, 0])
    return state, reads


def test_push_a_push_b_pop_one_reads_a():
    a, b, z = torch.eye(3, dtype=torch.float64)
    state, reads = _run(NeuralStack(3), [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [a, b, z])
    assert torch.equal(reads[0], a) and torch.equal(reads[1], b) and torch.equal(reads[2], a)
    assert state.strengths.tolist() == [[1.0, 0.0, 0.0]]


def test_the_papers_worked_example_with_fractional_strengths():
    """Grefenstette et al. 2015, fig. 1: d = (0.8, 0.5, 0.9), u = (0, 0.1, 0.9)."""
    v1, v2, v3 = torch.eye(3, dtype=torch.float64)
    state, reads = _run(NeuralStack(3), [0.0, 0.1, 0.9], [0.8, 0.5, 0.9], [v1, v2, v3])
    torch.testing.assert_close(state.strengths, torch.tensor([[0.3, 0.0, 0.9]], dtype=torch.float64))
    torch.testing.assert_close(reads[0], 0.8 * v1)  # r_1 = 0.8 v_1
    torch.testing.assert_close(reads[1], 0.5 * v2 + 0.5 * v1)  # s_2 = (0.7, 0.5)
    torch.testing.assert_close(reads[2], 0.9 * v3 + 0.1 * v1)  # v_2 popped away


def test_a_queue_gives_back_in_order_of_arrival():
    a, b, c = torch.eye(3, dtype=torch.float64)
    z = torch.zeros(3, dtype=torch.float64)
    # enqueue a, b, c (each read sees the front, a); then dequeue: b, then c
    _, reads = _run(NeuralQueue(3), [0.0, 0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0, 0.0], [a, b, c, z, z])
    assert [r.tolist() for r in reads] == [a.tolist(), a.tolist(), a.tolist(), b.tolist(), c.tolist()]


def test_a_deque_pushes_and_reads_at_both_ends():
    deque = NeuralDeque(2)
    state = deque.initial_state(1, torch.device("cpu"), torch.float64)
    top, bottom = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    ones, zeros = torch.ones(1, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
    state, reads, _ = _step(deque, state, zeros, ones, torch.stack([top, bottom]).unsqueeze(0))
    assert reads[0].tolist() == [top.tolist(), bottom.tolist()]  # read top, read bottom
    # pop one at the top only: the top value goes, so both ends now read the bottom value
    state, reads, _ = _step(deque, state, torch.tensor([[1.0, 0.0]], dtype=torch.float64), zeros, torch.zeros(1, 2, 2, dtype=torch.float64))
    assert reads[0].tolist() == [bottom.tolist(), bottom.tolist()]
    assert state.values.shape == (1, 4, 2)  # two values a step


def test_exclusive_sums_match_a_loop():
    s = torch.rand(B, 7, dtype=torch.float64)
    loop_above = torch.stack([s[:, i + 1 :].sum(1) for i in range(7)], 1)
    loop_below = torch.stack([s[:, :i].sum(1) for i in range(7)], 1)
    torch.testing.assert_close(m.above(s), loop_above)
    torch.testing.assert_close(m.below(s), loop_below)


@pytest.mark.parametrize("weights", [m.top_weights, m.bottom_weights])
def test_read_weights_are_non_negative_and_at_most_one_in_total(weights):
    s = torch.rand(B, 11, dtype=torch.float64)
    w = weights(s)
    assert (w >= 0).all() and (w <= s + 1e-12).all()
    torch.testing.assert_close(w.sum(1), s.sum(1).clamp(max=1.0))  # one unit of strength, or all there is


@pytest.mark.parametrize("pop", [m.pop_top, m.pop_bottom])
def test_a_pop_removes_its_strength_or_everything(pop):
    s, u = torch.rand(B, 7, dtype=torch.float64), torch.tensor([0.3, 1.5, 10.0], dtype=torch.float64)
    after = pop(s, u)
    assert (after >= 0).all() and (after <= s).all()
    torch.testing.assert_close(s.sum(1) - after.sum(1), torch.minimum(u, s.sum(1)))


def test_an_empty_stack_reads_zeros_and_pops_nothing():
    stack = NeuralStack(W)
    state = stack.initial_state(B, torch.device("cpu"), torch.float32)
    state = stack.pop(state, torch.ones(B, 1))
    reads, weights = stack.peek(state)
    assert reads.shape == (B, 1, W) and not reads.any() and weights.shape == (B, 1, 0)


@pytest.mark.parametrize("memory", [NeuralStack(W), NeuralQueue(W), NeuralDeque(W)], ids=lambda x: type(x).__name__)
def test_a_step_gradchecks_in_float64(memory):
    E, t = len(memory.ends), 4
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(2, t, W, dtype=torch.float64, generator=gen, requires_grad=True)
    # strengths away from the kinks of max/min (0, 1 and the cumulative sums' break points)
    s = torch.tensor([[0.33, 0.21, 0.46, 0.17], [0.52, 0.09, 0.28, 0.61]], dtype=torch.float64, requires_grad=True)
    u = torch.tensor([[0.37, 0.12], [0.71, 0.44]], dtype=torch.float64)[:, :E].clone().requires_grad_()
    d = torch.tensor([[0.63, 0.25], [0.18, 0.86]], dtype=torch.float64)[:, :E].clone().requires_grad_()
    v = torch.randn(2, E, W, dtype=torch.float64, generator=gen, requires_grad=True)

    def step(values, s, u, d, v):  # noqa: ANN001,ANN202
        from mannkit_stack.memory import StackState

        state = memory.push(memory.pop(StackState(values, s), u), v, d)
        return memory.peek(state)[0], state.strengths

    assert torch.autograd.gradcheck(step, (values, s, u, d, v))


def test_push_pop_noop_stack_moves_rows():
    S = torch.arange(6, dtype=torch.float64).view(1, 2, 3, 1)  # two stacks: (0, 1, 2), (3, 4, 5)
    actions = torch.tensor([[[1.0, 0.0, 0.0], [0.5, 0.25, 0.25]]], dtype=torch.float64)
    after = m.act(S, actions, torch.tensor([[[9.0], [7.0]]], dtype=torch.float64))
    assert after[0, 0].flatten().tolist() == [9.0, 0.0, 1.0]  # push: 9 on top, 2 falls off
    # 0.5 push (7, 3, 4) + 0.25 pop (4, 5, 0) + 0.25 no-op (3, 4, 5)
    assert after[0, 1].flatten().tolist() == [0.5 * 7 + 0.25 * 4 + 0.25 * 3, 0.5 * 3 + 0.25 * 5 + 0.25 * 4, 0.5 * 4 + 0.25 * 5]


def test_push_pop_noop_gradchecks_in_float64():
    gen = torch.Generator().manual_seed(1)
    S = torch.randn(2, 3, 5, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    a = torch.softmax(torch.randn(2, 3, 3, dtype=torch.float64, generator=gen), -1).requires_grad_()
    v = torch.randn(2, 3, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(m.act, (S, a, v))


@pytest.mark.parametrize("memory", [NeuralStack(W), NeuralQueue(W), NeuralDeque(W)], ids=lambda x: type(x).__name__)
def test_a_step_keeps_no_tensor_quadratic_in_the_stored_values(memory):
    """The update and the read are cumulative sums: nothing saved for backward has two axes of t = 53 or more."""
    from mannkit_stack.memory import StackState

    E, t = len(memory.ends), 53
    state = StackState(torch.randn(B, t, W), torch.rand(B, t).requires_grad_())
    shapes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda x: shapes.append(tuple(x.shape)) or x, lambda x: x):
        state = memory.push(memory.pop(state, torch.rand(B, E, requires_grad=True)), torch.randn(B, E, W), torch.rand(B, E))
        memory.peek(state)[0].sum().backward()
    assert shapes and all(sum(n >= t for n in shape) <= 1 for shape in shapes), shapes
