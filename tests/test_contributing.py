"""CONTRIBUTING.md's "Write a plugin" walk-through, followed literally.

The package is written from the document's own code blocks; instead of ``pip install -e``
(slow, and it would change the test environment) the test lays down the equivalent installed
distribution: the package plus a ``.dist-info`` folder whose ``entry_points.txt`` is made from
the document's ``pyproject.toml``. Then it checks ``mannkit plugins`` and trains with the new
class named by its short name in YAML.
"""

import re
import sys
import tomllib
from pathlib import Path

import pytest
import torch
import yaml

from mannkit.cli import main
from mannkit.core.registry import registry

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")


def _block_after(text: str, marker: str) -> str:
    start = text.index(marker)
    match = re.compile(r"```[a-z]*\n(.*?)```", re.S).search(text, start)
    return match.group(1)


@pytest.fixture()
def installed_plugin(tmp_path, monkeypatch):
    doc = (ROOT / "CONTRIBUTING.md").read_text()
    pyproject = tomllib.loads(_block_after(doc, "`pyproject.toml`:"))
    source = _block_after(doc, "`mannkit_dotaddress/__init__.py`:")
    site = tmp_path / "site"
    package = site / "mannkit_dotaddress"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(source)
    project = pyproject["project"]
    dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    group = project["entry-points"]["mannkit.plugins"]
    (dist_info / "entry_points.txt").write_text(
        "[mannkit.plugins]\n" + "".join(f"{name} = {value}\n" for name, value in group.items())
    )
    monkeypatch.syspath_prepend(str(site))
    registry.load_plugins(force=True)
    yield
    sys.modules.pop("mannkit_dotaddress", None)


def test_walkthrough_plugin_loads_lists_and_trains(installed_plugin, tmp_path, capsys):
    info = registry.plugins["dotaddress"]
    assert info.error is None, info.error
    assert (info.distribution, info.version, info.registered) == ("mannkit-dotaddress", "0.1.0", ["addressing:DotAddressing"])
    main(["plugins"])
    assert "dotaddress: mannkit-dotaddress 0.1.0" in capsys.readouterr().out

    config = yaml.safe_load((ROOT / "tests" / "fixtures" / "tiny_copy.yaml").read_text())
    heads = config["model"]["init_args"]["core"]["init_args"]["heads"]
    heads[1]["init_args"]["addressing"] = {"class_path": "DotAddressing", "init_args": {"temperature": 0.5}}
    path = tmp_path / "dot.yaml"
    path.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(path), "--trainer.default_root_dir", str(tmp_path), "--trainer.max_steps", "2"])
    ckpt = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=True)
    read_addressing = ckpt["hyper_parameters"]["core"]["init_args"]["heads"][1]["init_args"]["addressing"]
    assert read_addressing == {"class_path": "mannkit_dotaddress.DotAddressing", "init_args": {"temperature": 0.5}}
