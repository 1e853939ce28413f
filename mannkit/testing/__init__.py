"""The conformance kit: the checks every component runs, ours and third parties'.

A plugin's tests call one check per component (each raises ``AssertionError`` with a
sentence naming the check, and the parameter or the shapes, on failure)::

    from mannkit.testing import check_addressing, check_controller

    def test_my_addressing():
        check_addressing(lambda: MyAddressing(temperature=0.5))

    def test_my_controller():
        check_controller(MyController)          # built with its defaults

and a test module can run every registered component of a kind::

    @pytest.mark.parametrize("name", registered_components("addressing"))
    def test_addressing_conforms(name):
        check_component(name)

Importing this package does not import pytest (only :func:`parametrize_registry` does).
"""

from mannkit.testing.conformance import (
    CHECKS,
    check_addressing,
    check_component,
    check_controller,
    check_head,
    check_memory,
    check_sequence_model,
)
from mannkit.testing.defaults import (
    KIT_KINDS,
    SIZES,
    Example,
    Sizes,
    build_default,
    default_factory,
    default_harness,
    default_memory,
    parametrize_registry,
    register_example,
    registered_components,
    unchecked_reason,
)
from mannkit.testing.mixing import fits, head_sets, no_set_reason
from mannkit.testing.qa import QA_SIZES, check_qa_model

__all__ = [
    "CHECKS",
    "KIT_KINDS",
    "QA_SIZES",
    "SIZES",
    "Example",
    "Sizes",
    "build_default",
    "check_addressing",
    "check_component",
    "check_controller",
    "check_head",
    "check_memory",
    "check_qa_model",
    "check_sequence_model",
    "default_factory",
    "default_harness",
    "default_memory",
    "fits",
    "head_sets",
    "no_set_reason",
    "parametrize_registry",
    "register_example",
    "registered_components",
    "unchecked_reason",
]
