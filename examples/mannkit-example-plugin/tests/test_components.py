"""The example plugin's own tests: mannkit's conformance kit, then the components' behaviour.

``mannkit.testing`` checks shapes, gradients, all-zero memories, determinism, state_dict,
pickling and the config round trip; a plugin adds the tests only it can write.
"""

import pytest
import torch

from mannkit import ConfigError
from mannkit.nn import MatrixMemory, MatrixState
from mannkit.testing import check_addressing, check_controller
from mannkit_example import IndRNNController, ScaledDotAddressing

ADDRESSINGS = {
    "defaults": ScaledDotAddressing,
    "sharp-fixed-scale": lambda: ScaledDotAddressing(scale=4.0, learn_scale=False),
}
CONTROLLERS = {
    "defaults": IndRNNController,
    "two-tanh-layers-clipped": lambda: IndRNNController(hidden_size=13, layers=2, activation="tanh", recurrent_max=1.5),
}


@pytest.mark.parametrize("factory", list(ADDRESSINGS.values()), ids=list(ADDRESSINGS))
def test_scaled_dot_addressing_conforms(factory):
    check_addressing(factory)


@pytest.mark.parametrize("factory", list(CONTROLLERS.values()), ids=list(CONTROLLERS))
def test_indrnn_controller_conforms(factory):
    check_controller(factory)


def test_scaled_dot_addressing_by_hand():
    memory = MatrixMemory(slots=3, word_size=2)
    rows = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])  # [B=1, N=3, W=2]
    params = torch.tensor([[[1.0, 0.0, 0.0]]])  # key (1, 0), raw strength 0 -> beta = ln 2
    weights, _ = ScaledDotAddressing(scale=1.0)(params, MatrixState(rows), ())
    scores = torch.tensor([2.0, 0.0, 0.0]) / 2**0.5 * torch.log(torch.tensor(2.0))
    torch.testing.assert_close(weights[0, 0], torch.softmax(scores, 0))
    assert ScaledDotAddressing().param_size(memory) == 3


def test_indrnn_with_zero_recurrent_weights_forgets_the_past():
    controller = IndRNNController(hidden_size=7)
    controller.bind(input_size=5)
    with torch.no_grad():
        controller.recurrent.zero_()
    x = torch.randn(3, 5)
    state = controller.initial_state(3, torch.device("cpu"), torch.float32)
    first, state = controller(x, state)
    second, _ = controller(x, state)
    torch.testing.assert_close(first, second)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: IndRNNController(hidden_size=0), r"IndRNNController: hidden_size must be a positive integer, got 0"),
        (lambda: IndRNNController(activation="gelu"), r"IndRNNController: activation must be relu or tanh, got 'gelu'"),
        (lambda: IndRNNController(recurrent_max=0.0), r"IndRNNController: recurrent_max must be positive or null"),
        (lambda: ScaledDotAddressing(scale=-1.0), r"ScaledDotAddressing: scale must be a positive number, got -1\.0"),
    ],
)
def test_bad_arguments_are_one_sentence(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
