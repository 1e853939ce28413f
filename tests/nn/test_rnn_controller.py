"""RNNController: the plain tanh RNN (h_t = tanh(W x_t + U h_{t-1} + b)), stacked, batch-first state."""

import pytest
import torch

from mannkit.core.errors import ConfigError
from mannkit.nn import RNNController
from mannkit.testing import check_controller


def test_one_step_by_hand_and_two_layers():
    torch.manual_seed(0)
    rnn = RNNController(5, layers=2)
    rnn.bind(input_size=3)
    x, state = torch.randn(7, 3), torch.randn(7, 2, 5)  # state [B, L, H]
    h, new = rnn(x, state)
    c0, c1 = rnn.cells
    h0 = torch.tanh(x @ c0.weight_ih.T + c0.bias_ih + state[:, 0] @ c0.weight_hh.T + c0.bias_hh)
    h1 = torch.tanh(h0 @ c1.weight_ih.T + c1.bias_ih + state[:, 1] @ c1.weight_hh.T + c1.bias_hh)
    torch.testing.assert_close(h, h1)
    torch.testing.assert_close(new, torch.stack([h0, h1], dim=1))
    assert rnn.initial_state(7, x.device, x.dtype).shape == (7, 2, 5)


def test_conforms_with_two_layers():
    check_controller(lambda: RNNController(13, layers=2))


def test_bad_size_is_one_sentence():
    with pytest.raises(ConfigError, match=r"RNNController: layers must be a positive integer, got 0; set layers to 1 or more\."):
        RNNController(4, layers=0)
