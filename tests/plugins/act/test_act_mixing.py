"""ACT passes the conformance kit and wraps every registered recurrent model (and memory cells of each plugin memory).

The wrapped models come from the registry, so a new recurrent model is wrapped without new test code.
"""

import pytest
import torch
import torch.nn.functional as F

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import RecurrentCell
from mannkit.core.registry import registry
from mannkit.nn import GRUController, LSTMController, RNNController
from mannkit.tasks import CopyTask
from mannkit.testing import check_sequence_model, default_factory, registered_components
from mannkit.nn import ControllerCell
from mannkit_act import ACT

RECURRENT = [n for n in registered_components("model") if n != "ACT" and issubclass(registry.get(n, "model"), RecurrentCell)]


@pytest.mark.parametrize("controller", [RNNController, GRUController, LSTMController])
def test_act_around_a_controller_cell_conforms(controller):
    check_sequence_model(lambda: ACT(ControllerCell(controller(13)), max_ponder=4))


def test_act_around_a_dnc_memory_cell_conforms():
    check_sequence_model(lambda: ACT(
        MemoryCell(LSTMController(13), default_factory("DNCMemory")(), [default_factory("DNCWriteHead")(), default_factory("DNCReadHead")()]),
        max_ponder=3,
    ))


def _act_trains(build) -> None:  # noqa: ANN001
    """Wrap the built cell in ACT, take 3 Adam steps on a copy batch (task loss + ponder cost): finite, every parameter moves."""
    batch = CopyTask(bits=3, min_length=2, max_length=2).example_batch(4)
    torch.manual_seed(0)
    try:
        act = ACT(build(), max_ponder=3, tau=0.01)
        act.bind(batch["input"].shape[-1], batch["target"].shape[-1])
    except ConfigError as exc:
        pytest.skip(f"incompatible: {exc}")
    before = {name: p.detach().clone() for name, p in act.named_parameters()}
    optimizer = torch.optim.Adam(act.parameters(), lr=1e-2)
    mask = batch["mask"].unsqueeze(-1)
    for _ in range(3):
        out = act(batch["input"])
        loss = (F.binary_cross_entropy_with_logits(out.logits, batch["target"], reduction="none") * mask).sum() / mask.sum()
        loss = loss + out.losses["ponder"]
        assert torch.isfinite(loss), loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    unchanged = [name for name, p in act.named_parameters() if torch.equal(p, before[name])]
    assert not unchanged, f"parameters {unchanged} did not change in 3 Adam steps"
    assert 1 <= out.stats["ponder_mean"] <= 3


@pytest.mark.parametrize("name", RECURRENT)
def test_act_wraps_every_registered_recurrent_model(name):
    _act_trains(default_factory(name))


MEMORIES = [m for m in ("MatrixMemory", "DNCMemory", "SparseDNCMemory", "NeuralStack") if m in registered_components("memory")]


@pytest.mark.parametrize("memory", MEMORIES)
def test_act_wraps_a_memory_cell_with_each_plugin_memory(memory):
    from mannkit.testing import head_sets
    from mannkit.testing.mixing import build_heads

    sets = head_sets(memory)
    if not sets:
        pytest.skip(f"{memory} has no head set")
    _act_trains(lambda: MemoryCell(GRUController(13), default_factory(memory)(), build_heads(sets[0]), clip=20.0))
