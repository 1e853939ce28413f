"""ACT (Graves 2016): halting weights, remainders, ponder cost, state mixing, gradients and bad input.

Sizes are distinct per axis (B=3, I=2, O=2, M=3 or 5) so that a transposed axis breaks a test.
"""

from typing import NamedTuple

import pytest
import torch
from torch import Tensor

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import RecurrentCell
from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, ReadHead, RNNController, WriteHead
from mannkit.nn import ControllerCell
from mannkit_act import ACT, halting_weights, keeps_pondering
from mannkit_act.tree import batch_axes, leaves, mix, rebuild


class ScriptState(NamedTuple):
    count: Tensor  # [B], ponder steps taken
    memory: Tensor  # [B, 3], each element = count (batch-first)
    ctrl: Tensor  # [2, B], each element = count (batch on axis 1, like an LSTM's [L, B, H])


class ScriptedCell(RecurrentCell):
    """A cell whose n-th step outputs ``[n, first-step flag]`` and the halting logit ``logits[b, n - 1]``."""

    def __init__(self, logits: Tensor) -> None:
        super().__init__()
        self.logits = logits  # [B, M]

    def bind(self, input_size: int, output_size: int) -> None:
        assert output_size == 3, output_size  # O = 2 plus the halting unit

    def initial_state(self, batch_size, device, dtype):
        return ScriptState(torch.zeros(batch_size, dtype=dtype), torch.zeros(batch_size, 3, dtype=dtype),
                           torch.zeros(2, batch_size, dtype=dtype))

    def step(self, x, state, record=False):
        n = state.count + 1
        logit = self.logits.gather(1, (n.long() - 1).clamp(max=self.logits.shape[1] - 1).unsqueeze(1))[:, 0]
        y = torch.stack([n, x[:, -1], logit], dim=1)  # [B, 3]
        trace = {"seen": n.unsqueeze(1)} if record else {}
        return y, ScriptState(n, n.unsqueeze(1).expand(-1, 3), n.unsqueeze(0).expand(2, -1)), trace


def logit(p: float) -> float:
    return float(torch.logit(torch.tensor(p, dtype=torch.float64)))


# h per example and ponder step: example 0 halts at n=3 (0.3 + 0.5 + 0.9 >= 0.99), example 1 at once,
# example 2 never reaches 0.99 and is forced to halt at M = 3 with its remainder.
H = [[0.3, 0.5, 0.9], [0.995, 0.5, 0.5], [0.1, 0.1, 0.1]]
P = [[0.3, 0.5, 0.2], [1.0, 0.0, 0.0], [0.1, 0.1, 0.8]]  # p_t^n by hand (eq. 10)
N, R = [3, 1, 3], [0.2, 1.0, 0.8]


def scripted_act(tau: float = 0.5, requires_grad: bool = False) -> tuple[ACT, Tensor]:
    logits = torch.tensor([[logit(h) for h in row] for row in H], dtype=torch.float64, requires_grad=requires_grad)
    act = ACT(ScriptedCell(logits), max_ponder=3, epsilon=0.01, tau=tau, halting_bias_init=0.0).double()
    act.bind(input_size=2, output_size=2)
    return act, logits


def test_halting_weights_by_hand_with_forced_remainder():
    act, _ = scripted_act()
    out = act(torch.zeros(3, 1, 2, dtype=torch.float64), record=True)
    p = out.trace["halting_p"][:, 0]  # [B, n]
    torch.testing.assert_close(p, torch.tensor(P, dtype=torch.float64))
    torch.testing.assert_close(p.sum(-1), torch.ones(3, dtype=torch.float64))
    assert out.trace["ponder"][:, 0].tolist() == N
    torch.testing.assert_close(out.trace["remainder"][:, 0], torch.tensor(R, dtype=torch.float64))
    # y_t = sum_n p_t^n y_t^n: channel 0 is n, channel 1 the first-step flag (so its mix is p_t^1)
    expected_y = [[sum(p * (n + 1) for n, p in enumerate(row)), row[0]] for row in P]
    torch.testing.assert_close(out.logits[:, 0], torch.tensor(expected_y, dtype=torch.float64))


def test_ponder_cost_by_hand_and_the_remainder_gradient():
    act, logits = scripted_act(tau=0.5, requires_grad=True)
    out = act(torch.zeros(3, 1, 2, dtype=torch.float64))
    # tau * mean_B (1/T) sum_t (N(t) + R(t)) = 0.5 * mean(3.2, 2.0, 3.8) with T = 1
    torch.testing.assert_close(out.losses["ponder"], torch.tensor(1.5, dtype=torch.float64))
    assert out.stats["ponder_mean"].item() == pytest.approx(7 / 3) and out.stats["ponder_max"].item() == 3
    out.losses["ponder"].backward()
    # R = 1 - sum_{n<N} h_n: d(tau * R / B)/d logit_n = -tau / B * h_n (1 - h_n) for n < N, and 0 from N on
    h = torch.tensor(H, dtype=torch.float64)
    before_halt = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 1, 0]], dtype=torch.float64)
    torch.testing.assert_close(logits.grad, -0.5 / 3 * h * (1 - h) * before_halt)


def test_state_is_the_weighted_mix_along_each_batch_axis():
    act, _ = scripted_act()
    state = act.initial_state(3, torch.device("cpu"), torch.float64)
    _, state, _ = act.step(torch.zeros(3, 2, dtype=torch.float64), state)
    mean_n = torch.tensor([sum(p * (n + 1) for n, p in enumerate(row)) for row in P], dtype=torch.float64)  # [1.9, 1, 2.7]
    torch.testing.assert_close(state.count, mean_n)
    torch.testing.assert_close(state.memory, mean_n.unsqueeze(1).expand(-1, 3))
    torch.testing.assert_close(state.ctrl, mean_n.unsqueeze(0).expand(2, -1))


def test_trace_entries_of_the_cell_are_mixed_over_ponder_steps():
    act, _ = scripted_act()
    out = act(torch.zeros(3, 2, 2, dtype=torch.float64), record=True)
    assert out.trace["seen"].shape == (3, 2, 1) and out.trace["halting_p"].shape[:2] == (3, 2)
    torch.testing.assert_close(out.trace["seen"][:, 0, 0], torch.tensor([1.9, 1.0, 2.7], dtype=torch.float64))


def test_halting_rule_alone_by_hand_and_no_weight_after_halting():
    h = torch.tensor(H, dtype=torch.float64).t()  # [n, B]
    total, running, going = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.bool), []
    for n in range(3):
        total, running = keeps_pondering(h[n], total, running, last=n == 2, epsilon=0.01)
        going.append(running)
    going = torch.stack(going)
    assert going.t().tolist() == [[True, True, False], [False, False, False], [True, True, False]]
    p, remainder, steps = halting_weights(h, going)
    torch.testing.assert_close(p.t(), torch.tensor(P, dtype=torch.float64))
    torch.testing.assert_close(remainder, torch.tensor(R, dtype=torch.float64))
    assert steps.tolist() == N
    # an example that halted at n = 1 gets weight 0 afterwards whatever h it would have
    assert p[1:, 1].tolist() == [0.0, 0.0]


def test_the_ponder_loop_records_no_gradient_of_its_own():
    """The halting decision is made without gradient: backward nodes grow with the cell's steps only."""

    def nodes(loss: Tensor) -> int:
        seen, todo = set(), [loss.grad_fn]
        while todo:
            fn = todo.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            todo += [next_fn for next_fn, _ in fn.next_functions]
        return len(seen)

    x = torch.randn(3, 1, 2)
    few, many = rnn_act(M=2, bias=-30.0), rnn_act(M=6, bias=-30.0)  # forced halts at exactly 2 and 6 steps
    bare = ControllerCell(RNNController(7))
    bare.bind(3, 3)
    state = bare.initial_state(3, x.device, x.dtype)
    ys, grown = [], []
    for k in range(5):  # the nodes of the cell's steps, every step's output used, as ACT uses them
        y, state, _ = bare.step(torch.cat([x[:, 0], torch.full((3, 1), float(k == 0))], -1), state)
        ys.append(y)
        grown.append(nodes(torch.stack(ys).sum()))
    per_cell_step = grown[-1] - grown[-2]
    extra = nodes(many(x).logits.sum()) - nodes(few(x).logits.sum())
    assert extra == 4 * per_cell_step, (extra, per_cell_step)


def rnn_act(M: int = 5, bias: float = 1.0, dtype=torch.float32, seed: int = 0) -> ACT:
    torch.manual_seed(seed)
    act = ACT(ControllerCell(RNNController(7)), max_ponder=M, halting_bias_init=bias).to(dtype)
    act.bind(input_size=2, output_size=2)
    return act.to(dtype)


def test_examples_halting_at_different_times_match_their_runs_alone():
    act = rnn_act(M=6, bias=-1.0)
    x = 3 * torch.randn(5, 4, 2, generator=torch.Generator().manual_seed(1))
    out = act(x, record=True)
    ponder = out.trace["ponder"]  # [B, T]
    assert len(set(ponder[:, 0].tolist())) > 1, f"the examples should halt at different steps: {ponder[:, 0]}"
    torch.testing.assert_close(out.trace["halting_p"].sum(-1), torch.ones(5, 4))
    for b in range(5):  # no example is changed by the others pondering longer
        alone = act(x[b : b + 1], record=True)
        torch.testing.assert_close(alone.logits[0], out.logits[b])
        assert alone.trace["ponder"][0].tolist() == ponder[b].tolist()


def test_forced_halt_at_max_ponder_when_the_bias_is_very_negative():
    act = rnn_act(M=4, bias=-30.0)
    out = act(torch.randn(3, 2, 2), record=True)
    assert (out.trace["ponder"] == 4).all()
    torch.testing.assert_close(out.trace["halting_p"].sum(-1), torch.ones(3, 2))
    assert (out.trace["remainder"] > 0.99).all()  # h ~ 0, so R = 1 - sum h ~ 1


def test_gradcheck_float64():
    act = rnn_act(M=4, bias=0.5, dtype=torch.float64)
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    bias = act.halting_bias.detach().clone().requires_grad_(True)

    def run(x: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        out = torch.func.functional_call(act, {"halting_bias": bias}, (x,))
        return out.logits, out.losses["ponder"]

    assert torch.autograd.gradcheck(run, (x, bias))


def memory_cell() -> MemoryCell:
    return MemoryCell(LSTMController(7), MatrixMemory(5, 3, init="learned"),
                      [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])


def test_namedtuple_memory_state_is_mixed_like_a_hand_written_ponder_loop():
    torch.manual_seed(0)
    act = ACT(memory_cell(), max_ponder=4, halting_bias_init=0.0)
    act.bind(input_size=2, output_size=2)
    x = torch.randn(3, 2)
    state = act.initial_state(3, x.device, x.dtype)
    y, mixed, _ = act.step(x, state)
    for b in range(3):  # one example at a time, in plain Python
        s = act.cell.initial_state(1, x.device, x.dtype)
        total, ys, states, ps = 0.0, [], [], []
        for n in range(1, 5):
            out, s, _ = act.cell.step(torch.cat([x[b : b + 1], torch.tensor([[float(n == 1)]])], dim=1), s)
            h = torch.sigmoid(out[0, 2] + act.halting_bias).item()
            halt = total + h >= 0.99 or n == 4
            ps.append(1.0 - total if halt else h)
            ys.append(out[0, :2])
            states.append(s)
            total += h
            if halt:
                break
        torch.testing.assert_close(y[b], sum(p * v for p, v in zip(ps, ys)))
        for got, *each in zip(leaves(mixed), *(leaves(s) for s in states)):
            axis = 1 if got.shape[0] != 3 else 0  # the LSTM state is [L, B, H]
            want = sum(p * t for p, t in zip(ps, each))
            torch.testing.assert_close(got.select(axis, b), want.select(axis, 0))
    assert type(mixed.memory).__name__ == "MatrixState"


def test_tree_helpers_keep_structure_and_find_batch_axes():
    state = {"a": (torch.ones(2, 4), None), "b": torch.ones(3, 4, 5)}
    assert batch_axes(lambda b: {"a": (torch.ones(2, b), None), "b": torch.ones(3, b, 5)}, 4) == [1, 1]
    p = torch.tensor([[0.5, 0.0, 1.0, 0.25], [0.5, 1.0, 0.0, 0.75]])  # [n=2, B=4]
    mixed = mix([leaves(state), [2 * t for t in leaves(state)]], p, [1, 1])
    assert rebuild(state, mixed)["a"][0][0].tolist() == [1.5, 2.0, 1.0, 1.75] and rebuild(state, mixed)["a"][1] is None
    grown = mix([[torch.ones(2, 1)], [torch.ones(2, 3)]], torch.ones(2, 2), [0])  # a stack grew a row per step
    assert grown[0].tolist() == [[2.0, 1.0, 1.0], [2.0, 1.0, 1.0]]


class NotACell(torch.nn.Module):
    pass


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_ponder": 0}, r"ACT: max_ponder must be a positive integer, got 0; set max_ponder to 1 or more"),
        ({"max_ponder": 2.5}, r"ACT: max_ponder must be a positive integer, got 2\.5"),
        ({"epsilon": 0.0}, r"ACT: epsilon must be in \(0, 1\), got 0\.0; use e\.g\. 0\.01"),
        ({"epsilon": 1.0}, r"ACT: epsilon must be in \(0, 1\), got 1\.0"),
        ({"tau": -0.1}, r"ACT: tau must be 0 or more, got -0\.1; use e\.g\. 0\.001, or 0 for no ponder cost\."),
        ({"halting_bias_init": float("nan")}, r"ACT: halting_bias_init must be a finite number, got nan"),
    ],
)
def test_bad_settings_are_one_sentence(kwargs, match):
    with pytest.raises(ConfigError, match=match) as info:
        ACT(ControllerCell(RNNController(3)), **kwargs)
    assert "\n" not in str(info.value) and str(info.value).endswith(".")


def test_a_qa_model_or_a_non_cell_is_refused():
    from mannkit.testing import default_factory

    with pytest.raises(ConfigError, match=r"ACT: cell is a MemN2N, a question-answering model; ACT wraps a recurrent cell"):
        ACT(default_factory("MemN2N")())
    with pytest.raises(ConfigError, match=r"ACT: cell is a NotACell, not a recurrent cell; .*such as MemoryCell"):
        ACT(NotACell())
    with pytest.raises(ConfigError, match=r"ControllerCell: controller is a NotACell, not a Controller"):
        ControllerCell(NotACell())


def test_a_memory_updated_in_place_is_refused():
    from mannkit.testing import default_factory

    cell = MemoryCell(LSTMController(7), default_factory("SparseDNCMemory")(),
                      [default_factory("DNCWriteHead")(), default_factory("DNCReadHead")()])
    with pytest.raises(ConfigError, match=r"ACT: the cell holds a SparseDNCMemory, which updates its state in place"):
        ACT(cell)


def test_unbound_act_says_how_to_build_it():
    with pytest.raises(ConfigError, match=r"ACT is not built yet; call act\.bind"):
        ACT(ControllerCell(RNNController(3)))(torch.zeros(1, 2, 2))



def test_the_ponder_cost_is_per_input_step():
    """The task losses are means over input steps, so the ponder cost is too: tau * mean over B and T of N + R."""
    torch.manual_seed(0)
    act = ACT(ControllerCell(RNNController(5)), max_ponder=4, tau=0.3, halting_bias_init=-1.0)
    act.bind(input_size=3, output_size=2)
    act.double()
    out = act(torch.randn(4, 6, 3, dtype=torch.float64), record=True)
    rho = out.trace["ponder"].to(torch.float64) + out.trace["remainder"]  # [B, T]
    assert rho.shape == (4, 6) and (rho >= 1).all()
    torch.testing.assert_close(out.losses["ponder"], 0.3 * rho.mean())  # not 0.3 * rho.sum(1).mean(): 6x that
