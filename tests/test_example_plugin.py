"""The example third-party plugin in examples/mannkit-example-plugin, installed and used as a user would.

Instead of ``pip install`` (slow, needs setuptools, and would change the environment) the
fixture lays down the equivalent installed distribution in a temporary folder: the package
plus a ``.dist-info`` whose ``entry_points.txt`` is generated from the example's own
``pyproject.toml``. Then the plugin is loaded through its entry point, listed and checked with the conformance kit
in this process, then runs its own test-suite and trains from YAML by its short names in
fresh processes (as a user's shell would run them).
"""

import gc
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
import yaml

from mannkit.cli import main
from mannkit.core.registry import registry
from mannkit.testing import check_component, unchecked_reason
from mannkit.testing import defaults as kit_defaults
from mannkit.testing.defaults import example_for

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "mannkit-example-plugin"
COMPONENTS = ["addressing:ScaledDotAddressing", "controller:IndRNNController", "task:MajorityTask"]
CHECKED = [item for item in COMPONENTS if not item.startswith("task:")]  # the kinds the conformance kit checks
pytestmark = pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")


def _install(site: Path) -> None:
    """What ``pip install examples/mannkit-example-plugin --target site`` leaves behind, minus the bytecode."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    shutil.copytree(EXAMPLE / "mannkit_example", site / "mannkit_example", ignore=shutil.ignore_patterns("__pycache__"))
    dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    (dist_info / "top_level.txt").write_text("mannkit_example\n")  # what packages_distributions() reads
    (dist_info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items())
            for group, entries in project["entry-points"].items()
        )
    )


def _is_example(module: str) -> bool:
    return module == "mannkit_example" or module.startswith("mannkit_example.")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example installed on sys.path and loaded; afterwards its path, modules and registrations are gone."""
    site = tmp_path_factory.mktemp("site")
    _install(site)
    plugins = dict(registry.plugins)  # a forced reload replaces every plugin's record
    sys.path.insert(0, str(site))
    try:
        registry.load_plugins(force=True)
        yield site
    finally:
        sys.path.remove(str(site))
        for name in [m for m in sys.modules if _is_example(m)]:
            del sys.modules[name]
        for names in registry._entries.values():  # no public unregister: a test-only clean-up
            for name in [n for n, entry in names.items() if _is_example(entry.cls.__module__)]:
                del names[name]
        kept = {c: e for c, e in kit_defaults._EXAMPLES.items() if not _is_example(c.__module__)}  # the package's go
        kit_defaults._EXAMPLES.clear()
        kit_defaults._EXAMPLES.update(kept)
        registry.plugins.clear()
        registry.plugins.update(plugins)
        gc.collect()  # drop the classes, so no later parser finds them among the interfaces' subclasses
        from mannkit import Addressing, Controller

        left = [c for base in (Addressing, Controller) for c in base.__subclasses__() if _is_example(c.__module__)]
        assert not left, f"the example's classes are still alive after clean-up: {left}"


def test_the_plugin_loads_through_its_entry_point(site, capsys):
    info = registry.plugins["example"]
    assert info.error is None, info.error
    assert (info.distribution, info.version, info.module) == ("mannkit-example-plugin", "0.1.0", "mannkit_example")
    assert sorted(info.registered) == COMPONENTS
    main(["plugins"])
    out = capsys.readouterr().out
    assert "example: mannkit-example-plugin 0.1.0 (module mannkit_example)" in out
    assert all(f"    {item}" in out for item in COMPONENTS)


@pytest.mark.parametrize("kind, name", [item.split(":") for item in CHECKED])
def test_the_components_pass_the_conformance_kit_by_name(site, kind, name):
    """What mannkit's own registry-driven test does for every installed component (tests/testing/test_conformance.py)."""
    assert unchecked_reason(name, kind) == ""
    check_component(name)


def test_the_package_registers_its_conformance_example_on_import(site):
    """The example sits in the plugin package, so mannkit's suite uses it, not only the plugin's own tests."""
    from mannkit_example import ScaledDotAddressing, random_memory

    assert example_for(ScaledDotAddressing).memory is random_memory
    assert registry.source_of(ScaledDotAddressing) == ("example", "mannkit-example-plugin")


def _run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """A fresh Python process that sees the installed example, as a user's shell would after pip install.

    Fresh processes also keep jsonargparse's caches, which hold on to every class they parsed,
    free of the example's classes once this module has unloaded it.
    """
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_plugin_passes_its_own_tests(site, tmp_path):
    """The example's tests/ as its author runs them (its pyproject's pytest settings, warnings as errors)."""
    result = _run_installed(site, tmp_path, "-m", "pytest", str(EXAMPLE / "tests"), "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


def test_a_config_naming_all_three_components_trains(site, tmp_path):
    config = yaml.safe_load((ROOT / "tests" / "fixtures" / "tiny_copy.yaml").read_text())
    config["data"] = {"class_path": "MajorityTask", "init_args": {"bits": 2, "max_length": 5, "test_lengths": [5, 9],
                                                                   "batch_size": 4, "val_batches": 1, "test_batches": 1}}
    cell = config["model"]["init_args"]["core"]["init_args"]
    cell["controller"] = {"class_path": "IndRNNController", "init_args": {"hidden_size": 8, "recurrent_max": 2.0}}
    for head in cell["heads"]:
        head["init_args"]["addressing"] = {"class_path": "ScaledDotAddressing", "init_args": {"scale": 2.0}}
    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _run_installed(
        site, tmp_path, "-c", "from mannkit.cli import main; main()",
        "fit", "--config", str(path), "--trainer.default_root_dir", str(tmp_path), "--trainer.max_steps", "2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=True)
    assert checkpoint["global_step"] == 2
    core = checkpoint["hyper_parameters"]["core"]["init_args"]
    assert core["controller"]["class_path"] == "mannkit_example.controllers.IndRNNController"
    assert "MajorityTask" in str(checkpoint.get("datamodule_hyper_parameters", checkpoint.keys())), checkpoint.keys()
    assert core["heads"][1]["init_args"]["addressing"] == {
        "class_path": "mannkit_example.addressing.ScaledDotAddressing", "init_args": {"scale": 2.0, "learn_scale": True},
    }
