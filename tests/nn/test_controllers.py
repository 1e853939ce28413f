"""Controllers: shapes, state threading, gradients, validation."""

import pytest
import torch

from mannkit.core.errors import ConfigError
from mannkit.nn import GRUController, LSTMController, MLPController

B, I, H = 3, 7, 11


@pytest.mark.parametrize("make", [lambda: LSTMController(H, layers=2), lambda: GRUController(H, layers=2), lambda: MLPController(H, layers=2)])
def test_shapes_and_state_threading(make):
    ctrl = make()
    ctrl.bind(I)
    state = ctrl.initial_state(B, torch.device("cpu"), torch.float32)
    x = torch.randn(B, I, requires_grad=True)
    h1, state = ctrl(x, state)
    h2, _ = ctrl(x, state)
    assert h1.shape == (B, H) and ctrl.output_size == H
    if not isinstance(ctrl, MLPController):
        assert not torch.allclose(h1, h2), "a recurrent controller's state must change its output"
    else:
        torch.testing.assert_close(h1, h2)
    h2.sum().backward()
    assert all(p.grad is not None for p in ctrl.parameters())


def test_learned_initial_state_is_a_parameter():
    ctrl = LSTMController(H, learn_initial_state=True)
    ctrl.bind(I)
    state = ctrl.initial_state(B, torch.device("cpu"), torch.float32)
    assert state.h.shape == (1, B, H)
    h, _ = ctrl(torch.randn(B, I), state)
    h.sum().backward()
    assert ctrl.h0.grad is not None


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LSTMController(0), r"LSTMController: hidden_size must be a positive integer, got 0"),
        (lambda: GRUController(4, layers=-1), r"GRUController: layers must be a positive integer, got -1"),
        (lambda: MLPController(4, activation="swish"), r"activation must be one of relu, tanh, sigmoid, gelu, got 'swish'"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
