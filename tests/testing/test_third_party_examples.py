"""Where a plugin registers its conformance examples: in its package, so that mannkit's own suite can use them.

A third-party tape memory needs its own head (the kit's default matrix heads refuse it). Loaded
through an entry point, a plugin that calls ``register_example`` in its package is checked by
mannkit's registry-driven test like a built-in; one that registers the example only in its own
tests is left out of mannkit's suite with a one-sentence reason instead of failing it.
"""

import importlib
import sys
from importlib.metadata import EntryPoint

import pytest

from mannkit.core.registry import Registry
from mannkit.testing import check_component, unchecked_reason
from mannkit.testing import defaults as kit_defaults

registry_module = importlib.import_module("mannkit.core.registry")

PLUGIN = '''
"""A third-party tape memory (append and attend) that only its own head fits."""
from mannkit.core.registry import register
from mannkit.testing.growing import TapeMemory, tape_harness

MANNKIT_API = 1


@register
class PluginTape(TapeMemory):
    """The tape, as a plugin would ship it."""
'''
EXAMPLE_IN_PACKAGE = "\nfrom mannkit.testing import register_example\n\nregister_example(PluginTape, harness=tape_harness)\n"


@pytest.fixture()
def load_plugin(monkeypatch, tmp_path):
    """``load_plugin(source)``: install a module as plugin 'tape' of distribution 'mk-tape' in a private registry."""
    monkeypatch.setattr(kit_defaults, "_EXAMPLES", dict(kit_defaults._EXAMPLES))
    monkeypatch.syspath_prepend(str(tmp_path))
    real = registry_module.packages_distributions()
    monkeypatch.setattr(registry_module, "packages_distributions", lambda: {**real, "mk_tape_plugin": ["mk-tape"]})
    monkeypatch.setattr(registry_module, "entry_points",
                        lambda group: [EntryPoint("tape", "mk_tape_plugin", "mannkit.plugins")] if group == "mannkit.plugins" else [])

    def load(source: str) -> Registry:
        (tmp_path / "mk_tape_plugin.py").write_text(source)
        reg = Registry()
        monkeypatch.setattr(registry_module, "registry", reg)  # what @register writes to
        monkeypatch.setattr(kit_defaults, "registry", reg)  # what the kit reads
        reg.load_plugins(disabled=[])
        assert reg.plugins["tape"].error is None, reg.plugins["tape"].error
        return reg

    yield load
    sys.modules.pop("mk_tape_plugin", None)


def test_an_example_registered_in_the_package_is_used_by_mannkits_suite(load_plugin):
    reg = load_plugin(PLUGIN + EXAMPLE_IN_PACKAGE)
    assert [(e.plugin, e.distribution) for e in reg.entries("memory")] == [("tape", "mk-tape")]
    assert unchecked_reason("PluginTape", "memory") == ""
    check_component("PluginTape")  # what tests/testing/test_conformance.py runs for every registered memory


def test_without_an_example_in_the_package_mannkits_suite_leaves_it_out_with_a_reason(load_plugin):
    load_plugin(PLUGIN)
    reason = unchecked_reason("PluginTape", "memory")
    assert reason.startswith("memory PluginTape from plugin 'tape' (distribution 'mk-tape') does not fit the kit's default "
                             "partners (WriteHead needs a memory with read and write")
    assert reason.endswith("call mannkit.testing.register_example(PluginTape, ...) in the plugin package, not only in its tests.")
    with pytest.raises(AssertionError, match="memory PluginTape fails the contract check"):
        check_component("PluginTape")  # what would have failed mannkit's suite


def test_mannkits_own_components_are_never_left_out():
    assert all(unchecked_reason(name, "memory") == "" for name in ("MatrixMemory", "DNCMemory", "StoryMemory"))
