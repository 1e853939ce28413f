"""Every docstring example in mannkit and its built-in plugins runs (and must pass).

pytest collects only ``tests/``, so the examples are run here with :mod:`doctest`, each module
imported once under its real name (importing a source file a second time would register its
classes twice).
"""

import doctest
import importlib
import pkgutil

import pytest

import mannkit

PACKAGES = [
    "mannkit", "mannkit_ntm", "mannkit_dnc", "mannkit_attention", "mannkit_memn2n", "mannkit_dmn", "mannkit_stack",
    "mannkit_relational", "mannkit_act", "mannkit_mann",
]


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"


def test_the_examples_are_found():
    assert mannkit.__name__ in _modules() and "mannkit.nn.text" in _modules()
