"""The attention plugin as a whole: registration, the conformance kit, training in a MemoryCell, configs.

The kit runs every registered addressing at its defaults (tests/testing/test_conformance.py); here
it also runs the non-default settings. The plugin tells the kit (mannkit_attention._examples) to
run its addressings over a MatrixMemory with random rows: over the default constant memory every
row stays equal, attention is uniform, and learned projections get only rounding-error gradients.
"""

import pytest
import torch
import torch.nn.functional as F

from mannkit.cell import MemoryCell
from mannkit.core.config import instantiate
from mannkit.core.registry import load_plugins, registry
from mannkit.nn import LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.tasks import CopyTask
from mannkit.testing import check_addressing
from mannkit.testing.defaults import example_for
from mannkit_attention import (
    LinformerAddressing,
    MultiHeadAddressing,
    PerformerAddressing,
    ScaledDotProductAddressing,
)
from mannkit_attention._examples import random_memory

NAMES = ["ScaledDotProductAddressing", "MultiHeadAddressing", "LinformerAddressing", "PerformerAddressing"]
FACTORIES = {
    "ScaledDotProductAddressing": lambda: ScaledDotProductAddressing(),
    "MultiHeadAddressing": lambda: MultiHeadAddressing(num_heads=3),
    "LinformerAddressing": lambda: LinformerAddressing(projected=5),
    "PerformerAddressing": lambda: PerformerAddressing(features=32),
}


def test_registered_through_the_entry_point():
    load_plugins()
    info = registry.plugins["attention"]
    assert info.error is None and info.module == "mannkit_attention" and info.distribution == "mannkit"
    for name in NAMES:
        assert registry.get(name, kind="addressing").__name__ == name
        assert f"addressing:{name}" in info.registered


def test_plugin_module_declares_its_api():
    import mannkit_attention

    assert mannkit_attention.MANNKIT_API == 1
    assert set(mannkit_attention.__all__) >= set(NAMES) | {"performer_weights", "linformer_weights", "multi_head_weights"}
    assert all(hasattr(mannkit_attention, name) for name in mannkit_attention.__all__)


@pytest.mark.parametrize("name", NAMES)
def test_the_kit_runs_them_over_a_random_memory(name):
    memory = example_for(registry.get(name, kind="addressing")).memory()
    assert example_for(registry.get(name, kind="addressing")).memory is random_memory
    assert isinstance(memory, MatrixMemory) and memory.init == "random"


@pytest.mark.parametrize(
    "factory",
    [
        lambda: ScaledDotProductAddressing(scale=False),
        lambda: MultiHeadAddressing(num_heads=3, head_size=5),
        lambda: MultiHeadAddressing(num_heads=1),
        lambda: LinformerAddressing(projected=3),
        lambda: LinformerAddressing(projected=13),
        lambda: LinformerAddressing(projected=7, projection="identity"),
        lambda: PerformerAddressing(features=5),
        lambda: PerformerAddressing(features=29, redraw=True, seed=3),
    ],
    ids=["plain-dot", "mh-3x5", "mh-1", "lin-k3", "lin-k13", "lin-identity", "perf-m5", "perf-redraw"],
)
def test_non_default_settings_conform(factory):
    check_addressing(factory)


@pytest.mark.parametrize("name", NAMES)
def test_a_few_copy_steps_lower_the_loss_and_reach_every_parameter(name):
    """LSTM + random MatrixMemory, one write head and two read heads with the addressing, 25 Adam steps on one batch."""
    torch.manual_seed(0)
    batch = CopyTask(bits=4, min_length=3, max_length=3).example_batch(8)  # input [8, 8, 5], target [8, 8, 4]
    make = FACTORIES[name]
    cell = MemoryCell(
        LSTMController(hidden_size=23), MatrixMemory(slots=11, word_size=7, init="random"),
        [WriteHead(make()), ReadHead(make(), count=2)], clip=20.0,
    )
    cell.bind(batch["input"].shape[-1], batch["target"].shape[-1])
    optimizer = torch.optim.Adam(cell.parameters(), lr=1e-2)
    mask = batch["mask"].unsqueeze(-1)  # [B, T, 1]
    losses = []
    for step in range(25):
        logits = cell(batch["input"]).logits  # [B, T, O]
        loss = (F.binary_cross_entropy_with_logits(logits, batch["target"], reduction="none") * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            for param_name, p in cell.named_parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.any(), param_name
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize(
    "config",
    [
        {"class_path": "ScaledDotProductAddressing", "init_args": {"scale": False}},
        {"class_path": "MultiHeadAddressing", "init_args": {"num_heads": 2, "head_size": 3}},
        {"class_path": "LinformerAddressing", "init_args": {"projected": 4, "projection": "learned"}},
        {"class_path": "PerformerAddressing", "init_args": {"features": 16, "redraw": True, "seed": 2}},
    ],
    ids=lambda c: c["class_path"],
)
def test_config_round_trip(config):
    built = instantiate(config)
    assert built.to_config()["init_args"] == config["init_args"]
    assert built.to_config()["class_path"].startswith("mannkit_attention.")
    assert instantiate(built.to_config()).to_config() == built.to_config()


@pytest.mark.parametrize("name", NAMES)
def test_memn2n_hops_attend_through_each_addressing(name):
    """MemN2N (another plugin) passes u as params [B, 1, P] over its story memory; padded sentences get zero weight."""
    memn2n = pytest.importorskip("mannkit_memn2n")
    torch.manual_seed(0)
    model = memn2n.MemN2N(embedding_dim=6, hops=2, random_noise=0.0, addressing=FACTORIES[name]())
    model.bind(vocab_size=13, answer_size=5, max_sentences=7, sentence_length=4, question_length=3)
    story = torch.randint(1, 13, (3, 7, 4), generator=torch.Generator().manual_seed(1))
    story[0, 4:] = 0  # example 0 holds 4 sentences, example 1 holds 6
    story[1, 6:] = 0
    question = torch.randint(1, 13, (3, 3), generator=torch.Generator().manual_seed(2))
    out = model(story, question, record=True)
    attention = out.trace["attention"]  # [B, hops, N]
    assert attention.shape == (3, 2, 7)
    assert (attention[0, :, 4:] == 0).all() and (attention[1, :, 6:] == 0).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 2))
    out.logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_memn2n_linear_start_with_scaled_dot_product():
    memn2n = pytest.importorskip("mannkit_memn2n")
    model = memn2n.MemN2N(embedding_dim=6, hops=2, linear_start=True, addressing=ScaledDotProductAddressing(scale=False))
    model.bind(vocab_size=13, answer_size=5, max_sentences=7, sentence_length=4, question_length=3)
    story = torch.randint(1, 13, (3, 7, 4), generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(model(story, torch.ones(3, 3, dtype=torch.long)).logits).all()
