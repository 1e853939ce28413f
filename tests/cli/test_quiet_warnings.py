"""The CLI hides known third-party messages a user cannot act on, and only those."""

import warnings

import pytest

from mannkit.cli import _quiet_known_third_party_warnings

CALLBACKS_ADVICE = ("Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be provided "
                    "during `Trainer` instantiation. Please add the following callbacks: ['Timer'].")


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_evaluation_hides_the_advice_to_add_the_checkpoint_s_callbacks(subcommand):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _quiet_known_third_party_warnings(subcommand)
        warnings.warn(CALLBACKS_ADVICE, UserWarning)
        warnings.warn("some other message", UserWarning)
    assert [str(w.message) for w in caught] == ["some other message"]


def test_fit_keeps_the_advice_since_a_resumed_fit_restores_callback_state():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _quiet_known_third_party_warnings("fit")
        warnings.warn(CALLBACKS_ADVICE, UserWarning)
    assert [str(w.message) for w in caught] == [CALLBACKS_ADVICE]
