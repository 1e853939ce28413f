"""The mann plugin's components: the conformance kit, LRUA behaviour in a cell, gradcheck of a whole LRUA step,
the plastic controller (plastic vs not, rules), and the one-sentence refusals."""

import pytest
import torch

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError
from mannkit.nn import LSTMController, MatrixMemory, MLPController, ReadHead, ContentAddressing
from mannkit.testing import check_component
from mannkit_mann import LRUAHead, LRUAMemory, PlasticController, ReadoutNet


@pytest.mark.parametrize("target", [LRUAMemory, LRUAHead, PlasticController, lambda: PlasticController(13, rule="oja"),
                                    lambda: ReadoutNet(PlasticController(13))], ids=["memory", "head", "plastic", "oja", "readout"])
def test_the_conformance_kit(target):
    check_component(target)


def _step(head: LRUAHead, memory: LRUAMemory, params: torch.Tensor, state):
    mem_state, prev = state
    out = head(params, memory, mem_state, prev)
    return out.reads, (out.memory_state, out.state)


def test_a_gate_shut_writes_to_the_least_used_slot_and_open_writes_where_it_read():
    memory, head = LRUAMemory(slots=5, word_size=3, gamma=0.5), LRUAHead(count=1)
    state = (memory.initial_state(1, torch.device("cpu"), torch.float32), head.initial_state(1, memory, torch.device("cpu"), torch.float32))
    value = torch.tensor([2.0, 0.0, -2.0])
    key = value  # reads back what it writes
    shut = torch.cat([key, value, torch.tensor([20.0, -30.0])]).view(1, 1, 8)  # sharp read, gate sigma(-30) = 0
    reads, state = _step(head, memory, shut, state)
    M = state[0].memory[0]
    assert torch.allclose(M[0], torch.tanh(value) + 1e-6, atol=1e-6)  # slot 0: least used (ties -> first)
    assert torch.allclose(M[1:], torch.full((4, 3), 1e-6))
    assert state[1][0, 0].argmax() == 0 and torch.allclose(reads[0, 0], M[0], atol=1e-4)  # reads its write back
    usage = state[0].usage[0]
    assert usage[0] > 1.9 and (usage[1:] < 0.01).all()  # write 1 + read ~1 at slot 0
    opened = torch.cat([-key, value * 0.5, torch.tensor([20.0, 30.0])]).view(1, 1, 8)  # gate 1: rewrite slot 0
    _, state = _step(head, memory, opened, state)
    M2 = state[0].memory[0]
    assert torch.allclose(M2[0], M[0] + torch.tanh(value * 0.5), atol=1e-4)
    assert torch.allclose(M2[2:], torch.full((3, 3), 1e-6))  # slot 1 (least used) zeroed but written with ~0 weight
    assert M2[1].abs().max() < 1e-4


def test_gradcheck_float64_of_lrua_steps():
    torch.manual_seed(0)
    memory, head = LRUAMemory(slots=5, word_size=3), LRUAHead(count=2)
    params = torch.randn(2, 3, 2, 8, dtype=torch.float64, requires_grad=True)  # [steps, B, h, P]

    def run(p):
        state = (memory.initial_state(3, torch.device("cpu"), torch.float64), head.initial_state(3, memory, torch.device("cpu"), torch.float64))
        total = 0
        for t in range(p.shape[0]):
            reads, state = _step(head, memory, p[t], state)
            total = total + reads.sum()
        return total + state[0].memory.sum()

    assert torch.autograd.gradcheck(run, (params,))


def test_lrua_runs_under_any_controller_and_its_writes_sum_to_one():
    for controller in (LSTMController(7), MLPController(7), PlasticController(7)):
        cell = MemoryCell(controller, LRUAMemory(11, 5), [LRUAHead(count=3)])
        cell.bind(4, 2)
        out = cell(torch.randn(2, 6, 4), record=True)
        assert out.logits.shape == (2, 6, 2) and out.trace["write_weights"].shape == (2, 6, 3, 11)
        sums = out.trace["write_weights"].sum(-1)  # [B, T, h]
        assert torch.allclose(sums[:, 1:], torch.ones(2, 5, 3))  # after the first step w^r_{t-1} sums to 1 too
        assert (sums[:, 0] < 1).all()  # w^r_0 = 0: the first write is (1 - gate) at the least-used slot


def test_plastic_controller_without_plasticity_is_a_plain_rnn_and_alpha_matters():
    torch.manual_seed(0)
    plain = PlasticController(5, plastic=False)
    plain.bind(3)
    x = torch.randn(2, 3)
    state = plain.initial_state(2, torch.device("cpu"), torch.float32)
    h1, state = plain(x, state)
    h2, _ = plain(x, state)
    assert torch.allclose(h2, torch.tanh(plain.input(x) + h1 @ plain.w))
    plastic = PlasticController(5, init_scale=0.5)
    plastic.bind(3)
    s = plastic.initial_state(2, torch.device("cpu"), torch.float32)
    _, s = plastic(x, s)
    _, s = plastic(x, s)  # the trace is non-zero after two steps (y_0 = 0 leaves it 0 after the first)
    assert s.hebb.abs().sum() > 0
    with torch.no_grad():
        plastic.alpha.zero_()
    h, _ = plastic(x, s)
    assert torch.allclose(h, torch.tanh(plastic.input(x) + s.y @ plastic.w))


@pytest.mark.parametrize("build, match", [
    (lambda: LRUAMemory(slots=0), r"LRUAMemory: slots must be a positive integer, got 0; set it to 1 or more"),
    (lambda: LRUAMemory(gamma=1.5), r"LRUAMemory: gamma must be in \[0, 1\], got 1.5; use e.g. 0.95"),
    (lambda: LRUAHead(count=0), r"LRUAHead: count must be a positive integer, got 0"),
    (lambda: MemoryCell(LSTMController(4), MatrixMemory(5, 3), [LRUAHead()]).bind(2, 2),
     r"LRUAHead needs a memory with read, lrua_write, use \(such as LRUAMemory\), but the memory is MatrixMemory"),
    (lambda: PlasticController(4, rule="bcm"), r"PlasticController: rule must be hebb or oja, got 'bcm'"),
    (lambda: PlasticController(4, clamp=0), r"PlasticController: clamp must be positive, got 0"),
    (lambda: ReadoutNet(ReadHead(ContentAddressing())), r"ReadoutNet: controller must be a Controller, got ReadHead"),
])
def test_refusals_are_one_sentence(build, match):
    with pytest.raises(ConfigError, match=match):
        build()
