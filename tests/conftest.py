"""Test-wide settings: one torch thread (see LIGHTNING_NOTES), plugins loaded once."""

import importlib.util
import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _plugins():
    from mannkit.core.registry import load_plugins

    load_plugins()


@pytest.fixture
def benchmark_script():
    """Import a script of ``benchmarks/`` (a folder of scripts, not a package) by name, freshly each call.

    ``benchmark_script("run_memn2n_babi")`` is that file's module, so a test can call its ``main`` or helpers.
    """

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
