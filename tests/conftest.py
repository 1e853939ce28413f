"""Test-wide settings: one torch thread (see LIGHTNING_NOTES), plugins loaded once."""

import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _plugins():
    from mannkit.core.registry import load_plugins

    load_plugins()
