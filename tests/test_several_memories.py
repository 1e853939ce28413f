"""Several memories in one MemoryCell: heads act on the memory they name, the state holds one state per memory.

``memories: {name: Memory}`` adds named memories beside ``memory``; ``OnMemory(name, head)`` puts
a head bank on one of them. Distinct sizes per memory (N 7 and 5, W 4 and 3) so that a head
routed to the wrong memory breaks a shape.
"""

from pathlib import Path

import pytest
import torch
import yaml

from mannkit.cell import MemoryCell
from mannkit.core.config import instantiate
from mannkit.core.errors import ConfigError
from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, MLPController, OnMemory, ReadHead, WriteHead
from mannkit.testing import check_head, check_sequence_model

B, T, I, O = 3, 5, 6, 2
PRESET = Path(__file__).parents[1] / "configs" / "mixes" / "ntm_two_memories_copy.yaml"


def _two(seed: int = 0, bind: bool = True) -> MemoryCell:
    """Main memory [N=7, W=4] with a content write and read head; ``aux`` [N=5, W=3] with its own pair."""
    torch.manual_seed(seed)
    cell = MemoryCell(
        LSTMController(11), MatrixMemory(7, 4, init="random"),
        [WriteHead(ContentAddressing()), ReadHead(ContentAddressing()),
         OnMemory("aux", WriteHead(ContentAddressing())), OnMemory("aux", ReadHead(ContentAddressing(), count=2))],
        memories={"aux": MatrixMemory(5, 3, init="random")},
    )
    if bind:
        cell.bind(I, O)
    return cell


def test_each_head_acts_on_the_memory_it_names():
    cell = _two()
    assert cell.read_width == 4 + 2 * 3  # one read of W=4 from memory, two of W=3 from aux
    state = cell.initial_state(B, torch.device("cpu"), torch.float32)
    assert list(state.memory) == ["memory", "aux"]
    assert state.memory["memory"].memory.shape == (B, 7, 4) and state.memory["aux"].memory.shape == (B, 5, 3)
    _, after, trace = cell.step(torch.randn(B, I), state, record=True)
    for name in ("memory", "aux"):  # each memory was written by its own write head
        assert not torch.equal(after.memory[name].memory, state.memory[name].memory), name
    assert trace["write_weights"].shape == (B, 1, 7) and trace["aux/write_weights"].shape == (B, 1, 5)
    assert trace["read_weights"].shape == (B, 1, 7) and trace["aux/read_weights"].shape == (B, 2, 5)
    assert trace["memory"].shape == (B, 7, 4) and trace["aux/memory"].shape == (B, 5, 3)


def test_heads_on_a_named_memory_compute_what_they_would_on_the_main_one():
    """All heads on ``aux`` (the main memory idle) = a one-memory cell with that memory and those heads."""
    def build(several: bool) -> MemoryCell:
        torch.manual_seed(1)
        heads = [WriteHead(ContentAddressing()), ReadHead(ContentAddressing(), count=2)]
        if several:
            cell = MemoryCell(LSTMController(11), MatrixMemory(3, 2), [OnMemory("aux", h) for h in heads],
                              memories={"aux": MatrixMemory(5, 3, init="learned")})
        else:
            cell = MemoryCell(LSTMController(11), MatrixMemory(5, 3, init="learned"), heads)
        cell.bind(I, O)
        return cell

    one, several = build(False), build(True)
    state = {k.replace("memories.aux.", "memory."): v for k, v in several.state_dict().items()}
    one.load_state_dict({k.replace("heads.0.head.", "heads.0.").replace("heads.1.head.", "heads.1."): v for k, v in state.items()})
    x = torch.randn(B, T, I)
    torch.testing.assert_close(several(x).logits, one(x).logits)


def test_the_cell_with_several_memories_passes_the_kit():
    check_sequence_model(lambda: _two(bind=False))
    check_head("OnMemory")  # its registered example runs on a second memory


def test_a_head_naming_a_memory_that_does_not_exist_is_refused():
    with pytest.raises(ConfigError, match=r"^MemoryCell: heads\[1\] \(ReadHead in OnMemory\) acts on memory 'aux2', which the "
                       r"cell does not have; set its memory to one of memory, aux\.$"):
        MemoryCell(MLPController(5), MatrixMemory(3, 2), [WriteHead(ContentAddressing()), OnMemory("aux2", ReadHead(ContentAddressing()))],
                   memories={"aux": MatrixMemory(3, 2)})
    with pytest.raises(ConfigError, match=r"acts on memory 'aux', which the cell does not have; set its memory to one of memory\.$"):
        MemoryCell(MLPController(5), MatrixMemory(3, 2), [OnMemory("aux", ReadHead(ContentAddressing()))])


@pytest.mark.parametrize("memories, message", [
    ({"memory": MatrixMemory(3, 2)}, r"memories has the name 'memory', but a name must be an identifier other than 'memory'"),
    ({"a.b": MatrixMemory(3, 2)}, r"memories has the name 'a.b', but a name must be an identifier"),
    ({"aux": LSTMController(3)}, r"memories.aux is a LSTMController, not a Memory; give a memory class_path\."),
    ([MatrixMemory(3, 2)], r"memories must map names to memories, got list; write e.g. memories: \{tape: "),
])
def test_bad_memories_are_refused_in_one_sentence(memories, message):
    with pytest.raises(ConfigError, match=message):
        MemoryCell(MLPController(5), MatrixMemory(3, 2), [ReadHead(ContentAddressing())], memories=memories)


def test_on_memory_is_validated():
    with pytest.raises(ConfigError, match=r"OnMemory: memory must be the name of one of the cell's memories, got ''"):
        OnMemory("", ReadHead(ContentAddressing()))
    with pytest.raises(ConfigError, match=r"OnMemory: head must be a Head other than OnMemory, got OnMemory"):
        OnMemory("a", OnMemory("b", ReadHead(ContentAddressing())))


def test_one_memory_keeps_its_state_unwrapped_and_its_config_unchanged():
    cell = MemoryCell(MLPController(5), MatrixMemory(3, 2), [ReadHead(ContentAddressing())])
    cell.bind(I, O)
    assert cell.initial_state(B, torch.device("cpu"), torch.float32).memory.memory.shape == (B, 3, 2)
    assert cell.to_config()["init_args"]["memories"] is None
    assert "memories" not in dict(cell.named_children())


def test_the_preset_round_trips_through_to_config():
    core = yaml.safe_load(PRESET.read_text())["model"]["init_args"]["core"]
    cell = instantiate(core)
    assert [type(m).__name__ for m in cell._all] == ["MatrixMemory", "DNCMemory"]
    config = cell.to_config()
    rebuilt = instantiate(config)
    assert rebuilt.to_config() == config
    assert config["init_args"]["heads"][3]["init_args"]["memory"] == "dnc"
    for c in (cell, rebuilt):
        c.bind(9, 8)
    rebuilt.load_state_dict(cell.state_dict())
    x = torch.rand(2, 4, 9)
    torch.testing.assert_close(rebuilt(x).logits, cell(x).logits)


def test_memory_pictures_draw_every_memory_under_its_name():
    from mannkit.callbacks.memory_pictures import example_figures

    figures = example_figures(_two(), {"input": torch.rand(2, T, I), "target": torch.rand(2, T, O)})
    assert {"read_weights", "memory", "aux/read_weights", "aux/write_weights", "aux/memory"} <= set(figures)
    assert [ax.get_title() for ax in figures["aux/read_weights"].axes if ax.get_title()][:2] == ["aux/read head 0", "aux/read head 1"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")
@pytest.mark.filterwarnings("ignore::UserWarning:torch")
def test_a_traced_step_over_several_memories_matches_eager_without_recompiling():
    """The state dict of memories traces like one state: two graphs (first step, later steps), the same logits."""
    from torch._dynamo.utils import counters

    compiled, eager = _two(), _two()
    compiled.compile = True
    compiled.__dict__["_compiled_step"] = torch.compile(compiled._step, backend="aot_eager", dynamic=False)
    x = torch.randn(B, T, I, generator=torch.Generator().manual_seed(2))
    graphs_before = counters["stats"]["unique_graphs"]
    for _ in range(2):
        torch.manual_seed(4)  # the random memory inits
        got = compiled(x).logits
        torch.manual_seed(4)
        torch.testing.assert_close(got, eager(x).logits)
    assert counters["stats"]["unique_graphs"] - graphs_before == 2
