"""DNCWriteHead(free_gate_bias): the free gates start where the bias puts them; bad values are one sentence."""

import math

import pytest
import torch

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError
from mannkit.nn import LSTMController
from mannkit_dnc import DNCMemory, DNCReadHead, DNCWriteHead

W, R = 4, 3


def _cell(write_head):
    torch.manual_seed(0)
    cell = MemoryCell(LSTMController(16), DNCMemory(slots=8, word_size=W), [write_head, DNCReadHead(count=R)])
    cell.bind(5, 2)
    return cell


def test_free_gates_start_nearly_closed_with_the_bias_and_the_other_numbers_keep_their_init():
    plain, biased = _cell(DNCWriteHead()), _cell(DNCWriteHead(free_gate_bias=-5))
    P = 3 * W + 3 + R
    free = slice(3 * W + 1, 3 * W + 1 + R)  # after key W, strength 1, erase W, vector W
    b0, b1 = plain.project.bias.detach()[:P], biased.project.bias.detach()[:P]
    assert torch.equal(b1[free], torch.full((R,), -5.0))
    keep = torch.ones(P, dtype=torch.bool)
    keep[free] = False
    assert torch.equal(b1[keep], b0[keep])
    # at the first step the controller output is small: f = sigmoid(W h + b) stays near sigmoid(-5)
    state = biased.initial_state(2, torch.device("cpu"), torch.float32)
    h = torch.zeros(2, 16)
    gates = torch.sigmoid(biased.project(h)[:, free])
    assert torch.allclose(gates, torch.full_like(gates, 1 / (1 + math.exp(5))))
    out, _, _ = biased.step(torch.randn(2, 5), state)
    assert torch.isfinite(out).all()


def test_without_the_option_nothing_changes():
    assert DNCWriteHead().param_bias(DNCMemory(slots=8, word_size=W)) is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "closed", True])
def test_bad_free_gate_bias_is_one_sentence(value):
    with pytest.raises(ConfigError, match=r"DNCWriteHead: free_gate_bias must be a finite number or null, got .*; e\.g\. free_gate_bias: -5") as info:
        DNCWriteHead(free_gate_bias=value)
    assert "\n" not in str(info.value)


def test_without_free_gates_no_slot_is_freed_and_the_head_has_r_fewer_numbers():
    memory = DNCMemory(slots=8, word_size=W)
    with_gates, without = _cell(DNCWriteHead()), _cell(DNCWriteHead(free_gates=False))
    assert with_gates.project.out_features - without.project.out_features == R
    torch.manual_seed(1)
    x = torch.randn(2, 12, 5)
    for cell, never_falls in ((without, True), (with_gates, False)):
        state = cell.initial_state(2, torch.device("cpu"), torch.float32)
        falls = []
        for t in range(12):
            before = state.memory.usage
            _, state, _ = cell.step(x[:, t], state)
            falls.append(float((before - state.memory.usage).max().detach()))
        # f = 0: psi = 1, so u_t = u + w - u * w >= u at every slot; with free gates (about 0.5 at init) usage falls
        assert (max(falls) <= 1e-7) == never_falls, falls
    assert DNCWriteHead(free_gates=False).param_size(memory) == 3 * W + 3
    assert DNCWriteHead(free_gates=False).param_bias(memory) is None


def test_free_gates_false_with_a_bias_is_one_sentence():
    with pytest.raises(ConfigError, match=r"DNCWriteHead: free_gate_bias \(-5\) needs free gates, but free_gates is false; remove one"):
        DNCWriteHead(free_gates=False, free_gate_bias=-5)
