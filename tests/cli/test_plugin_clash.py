"""Issue 10, item 14, end to end in fresh processes: a third-party class cannot displace a built-in's name,
and a config naming a class of a disabled plugin says so."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
TWIN = '''
MANNKIT_API = 1
from mannkit.core.interfaces import Memory
from mannkit.core.registry import register


@register
class DNCMemory(Memory):
    """A third-party memory that takes the built-in DNC memory's name."""
'''
# the third-party entry point is listed before the built-in ones, as an installed distribution may be
RUN = '''
import importlib, sys
from importlib.metadata import EntryPoint
registry_module = importlib.import_module("mannkit.core.registry")
real = registry_module.entry_points
registry_module.entry_points = lambda group: [EntryPoint("third", "mk_dnc_twin", group), *real(group=group)]
from mannkit.cli import main
main(sys.argv[1:])
'''


def _mannkit(tmp_path, *argv, env=None, script=RUN):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tmp_path), **(env or {})}
    return subprocess.run([sys.executable, "-c", script, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_dnc_preset_keeps_the_built_in_dnc_memory(tmp_path):
    (tmp_path / "mk_dnc_twin.py").write_text(TWIN)
    run = _mannkit(tmp_path, "fit", "--config", "configs/dnc/copy.yaml", "--print_config")
    assert run.returncode == 0, run.stderr
    assert "class_path: mannkit_dnc.DNCMemory" in run.stdout and "mk_dnc_twin" not in run.stdout
    assert (
        "mannkit plugin 'third' from '?' failed to load (PluginError: its memory mk_dnc_twin.DNCMemory (plugin 'third', "
        "distribution '?') takes the name 'DNCMemory' of the built-in mannkit_dnc.memory.DNCMemory (plugin 'dnc', "
        "distribution 'mannkit'), so the built-in is kept" in run.stderr
    ), run.stderr


def test_a_class_of_a_disabled_plugin(tmp_path):
    run = _mannkit(tmp_path, "fit", "--config", "configs/dnc/copy.yaml", env={"MANNKIT_DISABLE_PLUGINS": "dnc"},
                   script="from mannkit.cli import main; main()")
    assert run.returncode == 2
    assert run.stderr == (
        "mannkit: error: model.init_args.core.init_args.memory.class_path: 'DNCMemory' is a class of the plugin 'dnc', "
        "which MANNKIT_DISABLE_PLUGINS disables; remove 'dnc' from MANNKIT_DISABLE_PLUGINS to use it.\n"
    )
