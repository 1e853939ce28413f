"""Registry: strict names, sources in errors, plugin failures reported not raised."""

import sys
import types
import warnings
from importlib.metadata import EntryPoint

import pytest

import importlib

registry_module = importlib.import_module("mannkit.core.registry")
from mannkit.core.errors import ConfigError, PluginError
from mannkit.core.interfaces import Controller
from mannkit.core.registry import Registry, registry


def _controller(name: str) -> type:
    return type(name, (Controller,), {"__module__": "tests.fake"})


def test_builtins_are_registered_by_kind():
    import mannkit.cell  # noqa: F401  (MemoryCell registers when the cell module is imported)

    assert "LSTMController" in registry.names("controller")
    assert "MatrixMemory" in registry.names("memory")
    assert "ContentAddressing" in registry.names("addressing")
    assert {"ReadHead", "WriteHead"} <= set(registry.names("head"))
    assert "MemoryCell" in registry.names("model")


def test_duplicate_name_names_both_sources():
    reg = Registry()
    reg.register(_controller("Twin"))
    other = _controller("Twin")
    with pytest.raises(PluginError, match=r"'Twin' is registered twice: by tests\.fake\.Twin .* and by tests\.fake\.Twin"):
        reg.register(other)


def test_same_class_twice_is_fine():
    reg = Registry()
    cls = _controller("Once")
    assert reg.register(cls) is reg.register(cls)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ConfigError, match=r"unknown controller class 'LSTMControler'; did you mean 'LSTMController'\?"):
        registry.get("LSTMControler", "controller")


def test_kind_cannot_be_guessed_for_plain_classes():
    with pytest.raises(PluginError, match="cannot tell what kind of component"):
        Registry().register(type("Plain", (), {}))


def _fake_entry_points(monkeypatch, eps):
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [e for e in eps if e.group == group])


def test_broken_plugin_is_reported_and_others_still_load(monkeypatch):
    good = types.ModuleType("mk_good_plugin")
    good.MANNKIT_API = 1

    def _import_good():
        registry_module.register(_controller("GoodController"))

    sys.modules["mk_good_plugin"] = good
    eps = [
        EntryPoint("broken", "mk_missing_module_xyz", "mannkit.plugins"),
        EntryPoint("good", "mk_good_plugin", "mannkit.plugins"),
    ]
    _fake_entry_points(monkeypatch, eps)
    reg = Registry()
    monkeypatch.setattr(registry_module, "registry", reg)
    with pytest.warns(registry_module.PluginWarning, match="plugin 'broken' .* failed to load .*ModuleNotFoundError"):
        reg.load_plugins(disabled=[])
    assert "ModuleNotFoundError" in reg.plugins["broken"].error
    assert reg.plugins["good"].error is None
    del sys.modules["mk_good_plugin"]


def test_wrong_api_version_is_a_failure(monkeypatch):
    mod = types.ModuleType("mk_old_plugin")
    mod.MANNKIT_API = 0
    sys.modules["mk_old_plugin"] = mod
    _fake_entry_points(monkeypatch, [EntryPoint("old", "mk_old_plugin", "mannkit.plugins")])
    reg = Registry()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.load_plugins(disabled=[])
    assert "MANNKIT_API = 0" in reg.plugins["old"].error
    del sys.modules["mk_old_plugin"]


def test_disabled_plugins_are_not_imported(monkeypatch):
    _fake_entry_points(monkeypatch, [EntryPoint("off", "mk_never_imported", "mannkit.plugins")])
    monkeypatch.setenv("MANNKIT_DISABLE_PLUGINS", "off")
    reg = Registry()
    reg.load_plugins()
    assert reg.plugins["off"].disabled and reg.plugins["off"].error is None
    assert "mk_never_imported" not in sys.modules


# -- issue 10, item 14: built-ins win name clashes; the disable switch is checked and explained ---------
BUILTIN_SOURCE = """
MANNKIT_API = 1
from mannkit.core.registry import register
from mannkit.core.interfaces import Memory


@register
class TwinMemory(Memory):
    pass
"""
THIRD_SOURCE = """
MANNKIT_API = 1
from mannkit.core.registry import register
from mannkit.core.interfaces import Controller, Memory


@register
class ThirdOnlyController(Controller):
    pass


@register
class TwinMemory(Memory):
    pass
"""


def _plugins(monkeypatch, tmp_path, sources, builtin=()):
    """Fake plugins ``name -> source``, listed in this order; those in ``builtin`` come with mannkit."""
    real = registry_module.packages_distributions()
    dists = {f"mk_{name}_plugin": ["mannkit" if name in builtin else f"mk-{name}"] for name in sources}
    for name, source in sources.items():
        (tmp_path / f"mk_{name}_plugin.py").write_text(source)
        monkeypatch.delitem(sys.modules, f"mk_{name}_plugin", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_module, "packages_distributions", lambda: {**real, **dists})
    _fake_entry_points(monkeypatch, [EntryPoint(name, f"mk_{name}_plugin", "mannkit.plugins") for name in sources])
    reg = Registry()
    monkeypatch.setattr(registry_module, "registry", reg)
    return reg


def test_a_built_in_keeps_its_name_when_a_third_party_plugin_loads_first(monkeypatch, tmp_path):
    reg = _plugins(monkeypatch, tmp_path, {"third": THIRD_SOURCE, "twin": BUILTIN_SOURCE}, builtin={"twin"})
    with pytest.warns(
        registry_module.PluginWarning,
        match=r"plugin 'third' from '\?' failed to load \(PluginError: its memory mk_third_plugin\.TwinMemory "
        r"\(plugin 'third', distribution 'mk-third'\) takes the name 'TwinMemory' of the built-in mk_twin_plugin\.TwinMemory "
        r"\(plugin 'twin', distribution 'mannkit'\), so the built-in is kept and this plugin is not loaded; rename the class "
        r"\(or register it with name=\.\.\.\), or set MANNKIT_DISABLE_PLUGINS=twin to use it in place of the built-in\.\)",
    ):
        reg.load_plugins(disabled=[])
    assert reg.plugins["twin"].error is None and reg.get("TwinMemory").__module__ == "mk_twin_plugin"
    assert "ThirdOnlyController" not in reg and reg.plugins["third"].registered == []  # nothing of a failed plugin stays


def test_the_disable_switch_lets_the_third_party_class_take_the_name(monkeypatch, tmp_path):
    reg = _plugins(monkeypatch, tmp_path, {"third": THIRD_SOURCE, "twin": BUILTIN_SOURCE}, builtin={"twin"})
    reg.load_plugins(disabled=["twin"])
    assert reg.plugins["third"].error is None and reg.get("TwinMemory").__module__ == "mk_third_plugin"


def test_a_misspelt_disabled_plugin_is_reported(monkeypatch, tmp_path, capsys):
    reg = _plugins(monkeypatch, tmp_path, {"twin": BUILTIN_SOURCE}, builtin={"twin"})
    monkeypatch.setenv("MANNKIT_DISABLE_PLUGINS", "twni")
    with pytest.warns(
        registry_module.PluginWarning,
        match=r"MANNKIT_DISABLE_PLUGINS names 'twni', which is no installed plugin; did you mean 'twin'\? \(installed: twin\); "
        r"correct the name in MANNKIT_DISABLE_PLUGINS\.",
    ):
        reg.load_plugins()
    assert reg.plugins["twin"].error is None and reg.unknown_disabled == ["twni"]


def test_a_class_of_a_disabled_plugin_is_named_as_such(monkeypatch, tmp_path):
    from mannkit.core.config import resolve_class
    from mannkit.core.registry import DisabledPluginError

    reg = _plugins(monkeypatch, tmp_path, {"twin": BUILTIN_SOURCE}, builtin={"twin"})
    reg.load_plugins(disabled=["twin"])
    assert "mk_twin_plugin" not in sys.modules  # found by reading its source, not importing it
    with pytest.raises(
        DisabledPluginError,
        match=r"^model\.memory\.class_path: 'TwinMemory' is a class of the plugin 'twin', which MANNKIT_DISABLE_PLUGINS "
        r"disables; remove 'twin' from MANNKIT_DISABLE_PLUGINS to use it\.$",
    ):
        resolve_class("TwinMemory", "model.memory.class_path")
    with pytest.raises(ConfigError, match=r"unknown class 'TwinMemry'; run 'mannkit plugins'"):  # not a disabled one
        reg.get("TwinMemry")


def test_ntm_plugin_comes_from_its_entry_point():
    info = registry.plugins["ntm"]
    assert info.error is None, info.error
    assert info.distribution == "mannkit"
    assert "addressing:NTMAddressing" in info.registered


def test_forced_reload_keeps_what_an_imported_plugin_registered():
    registry.load_plugins(force=True)
    assert "addressing:NTMAddressing" in registry.plugins["ntm"].registered


# -- credit: each class to the plugin and distribution that define it ----------------------------
PLUGIN_SOURCE = """
MANNKIT_API = 1
from mannkit.core.registry import register
from mannkit.core.interfaces import Controller
import mannkit.cell, mannkit.tasks
register(mannkit.cell.MemoryCell)  # built-ins registered while a third-party plugin loads
register(mannkit.tasks.CopyTask)


@register
class ThirdController(Controller):
    pass
"""


def test_builtins_imported_by_a_plugin_are_credited_to_mannkit(monkeypatch, tmp_path):
    import mannkit.cell  # noqa: F401  (imported here first, so the global registry keeps them)
    import mannkit.tasks  # noqa: F401

    (tmp_path / "mk_third_party.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    real = registry_module.packages_distributions()
    monkeypatch.setattr(registry_module, "packages_distributions", lambda: {**real, "mk_third_party": ["mk-third-party"]})
    _fake_entry_points(monkeypatch, [EntryPoint("third", "mk_third_party", "mannkit.plugins")])
    reg = Registry()
    monkeypatch.setattr(registry_module, "registry", reg)
    try:
        reg.load_plugins(disabled=[])
    finally:
        sys.modules.pop("mk_third_party", None)
    assert reg.plugins["third"].error is None, reg.plugins["third"].error
    sources = {e.name: (e.plugin, e.distribution) for e in reg.entries()}
    assert sources["MemoryCell"] == sources["CopyTask"] == ("mannkit", "mannkit")
    assert sources["ThirdController"] == ("third", "mk-third-party")
    assert reg.plugins["third"].registered == ["controller:ThirdController"]


def test_a_class_outside_every_plugin_is_credited_from_its_module():
    reg = Registry()
    reg.register(_controller("Stray"))  # module tests.fake: no plugin, no distribution
    assert [(e.plugin, e.distribution) for e in reg.entries()] == [("?", "?")]


def test_mannkit_plugins_lists_every_kind_under_the_plugin_that_defines_it(capsys):
    from mannkit.cli import format_plugins

    listing = format_plugins()
    sections: dict[str, list[str]] = {}
    for line in listing.splitlines():
        if line.startswith("    "):
            sections[current].append(line.strip())
        else:
            current = line.split(":")[0]
            sections[current] = []
    core = sections["core"]
    for item in ("task:CopyTask", "system:SequenceSystem", "system:QASystem", "callback:MemoryPictures",
                 "metric:BitsPerSequence", "model:MemoryCell", "memory:MatrixMemory", "head:ReadHead"):
        assert item in core, f"{item} is not listed under core"
    assert "head:HopReadHead" in sections["memn2n"] and "memory:DNCMemory" in sections["dnc"]
    for plugin, items in sections.items():
        for item in items:
            kind, name = item.split(" ")[0].split(":")
            expected = registry.source_of(registry.get(name, kind))[0]
            assert plugin == ("core" if expected == "mannkit" else expected), f"{item} is listed under {plugin}"
