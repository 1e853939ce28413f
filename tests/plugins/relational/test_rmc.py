"""The Relational Memory Core: shapes, the gating extremes, a float64 gradcheck of the update, the kit, the refusals."""

import pytest
import torch

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError
from mannkit.nn import ContentAddressing, MatrixMemory, ReadHead, WriteHead
from mannkit.nn.attention import attend, per_head_weights
from mannkit.testing import check_controller, check_sequence_model
from mannkit_relational import RelationalMemoryCore, RelationalMemoryModel, gated_update, initial_memory

CPU = torch.device("cpu")
B, I, N, W, A, K = 3, 5, 7, 12, 3, 5  # distinct sizes: a transposed axis breaks a test


def _core(**kwargs):
    core = RelationalMemoryCore(**{"slots": N, "word_size": W, "num_heads": A, "key_size": K, **kwargs})
    core.bind(I)
    return core


def test_shapes_of_a_step_and_of_the_parts():
    core = _core(blocks=2)
    state = core.initial_state(B, CPU, torch.float32)
    h, new = core(torch.randn(B, I), state)
    assert state.shape == new.shape == (B, N, W)
    assert h.shape == (B, N * W) == (B, core.output_size)
    assert torch.equal(h, new.reshape(B, N * W)), "the output is the new memory, flattened"
    qkv = core.attention[0].qkv
    assert qkv.out_features == A * (2 * K + W // A), "queries and keys of K numbers, values of W / A, per head"
    assert len(core.attention) == 2 and core.attention[0].mlp is core.attention[1].mlp, "one MLP shared by the blocks"
    assert core.attention[0].qkv is not core.attention[1].qkv, "each block has its own attention"


def test_initial_memory_is_the_identity_padded_or_cut():
    assert torch.equal(initial_memory(2, 4, 1, CPU, torch.float32)[0], torch.eye(2, 4))
    assert torch.equal(initial_memory(4, 2, 3, CPU, torch.float32)[2], torch.eye(4, 2))


@pytest.mark.parametrize("gate_style", ["unit", "memory"])
def test_input_gate_shut_and_forget_gate_open_leave_the_memory_unchanged(gate_style):
    core = _core(gate_style=gate_style, input_bias=-1e4, forget_bias=1e4)
    state = torch.randn(B, N, W)
    _, new = core(torch.randn(B, I), state)
    torch.testing.assert_close(new, state, rtol=0, atol=0)


@pytest.mark.parametrize("gate_style", ["unit", "memory"])
def test_input_gate_open_and_forget_gate_shut_replace_the_memory_by_the_attended_slots(gate_style):
    core = _core(gate_style=gate_style, input_bias=1e4, forget_bias=-1e4)
    state, x = torch.randn(B, N, W), torch.randn(B, I)
    _, new = core(x, state)
    candidate = core.attend_over_memory(state, core.input_projection(x).unsqueeze(1))
    torch.testing.assert_close(new, torch.tanh(candidate))
    assert not torch.allclose(new, state)


def test_gate_sizes_follow_the_gate_style():
    assert _core(gate_style="unit").gate_memory.out_features == 2 * W
    assert _core(gate_style="memory").gate_memory.out_features == 2
    core = _core(gate_style="none")
    state, x = torch.randn(B, N, W), torch.randn(B, I)
    _, new = core(x, state)
    torch.testing.assert_close(new, core.attend_over_memory(state, core.input_projection(x).unsqueeze(1)))


def test_the_gated_update_by_hand():
    m, c = torch.tensor([[[2.0]]]), torch.tensor([[[0.5]]])
    i, f = torch.tensor([[[0.0]]]), torch.tensor([[[1.0]]])
    expected = 0.5 * torch.tanh(torch.tensor(0.5)) + torch.sigmoid(torch.tensor(1.0)) * 2.0
    torch.testing.assert_close(gated_update(m, c, i, f), expected.view(1, 1, 1))


def test_attention_reads_values_with_per_head_weights_by_hand():
    q = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # [B=1, q=1, A=2, D=2]: head 1 uniform
    k = torch.tensor([[[[2.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]])  # [B=1, N=2, A=2, D=2]
    v = torch.tensor([[[[1.0], [3.0]], [[-1.0], [5.0]]]])  # [B=1, N=2, A=2, V=1]
    w0 = torch.softmax(torch.tensor([2.0, 0.0]) / 2 ** 0.5, 0)
    torch.testing.assert_close(per_head_weights(q, k, None)[0, 0, 0], w0)
    torch.testing.assert_close(attend(q, k, v, None)[0, 0, :, 0], torch.stack([w0[0] - w0[1], torch.tensor(4.0)]))


def test_gradcheck_of_the_update_in_float64():
    torch.manual_seed(0)
    core = RelationalMemoryCore(slots=3, word_size=4, num_heads=2, key_size=3, blocks=2)
    core.bind(2)
    core.double()
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, m: core(x, m)[1], (x, memory))


def test_the_core_conforms():
    check_controller(RelationalMemoryCore)


def test_the_model_conforms():
    check_sequence_model(RelationalMemoryModel)


def test_the_core_drives_a_memory_cell():
    core = RelationalMemoryCore(slots=N, word_size=W, num_heads=A)
    cell = MemoryCell(core, MatrixMemory(11, 6),
                      [WriteHead(ContentAddressing()), ReadHead(ContentAddressing(), count=2)])
    cell.bind(input_size=I, output_size=4)
    assert cell(torch.randn(B, 6, I)).logits.shape == (B, 6, 4)
    assert cell.controller.input_projection.in_features == I + 2 * 6, "the controller reads [x_t, r_{t-1}]"


def test_heads_not_dividing_the_width_are_refused():
    with pytest.raises(ConfigError, match=r"^RelationalMemoryCore: num_heads \(3\) must divide word_size \(16\); set word_size "
                                          r"to a multiple of 3, e\.g\. 15\.$"):
        RelationalMemoryCore(word_size=16, num_heads=3)


def test_a_core_given_as_the_memory_is_refused():
    with pytest.raises(ConfigError, match=r"^MemoryCell: memory is a RelationalMemoryCore, not a Memory; give a memory "
                                          r"class_path such as MatrixMemory\.$"):
        MemoryCell(_core(), RelationalMemoryCore(), [ReadHead(ContentAddressing())])


@pytest.mark.parametrize("kwargs, match", [
    ({"slots": 0}, r"^RelationalMemoryCore: slots must be a positive integer, got 0; set slots to 1 or more\.$"),
    ({"gate_style": "lstm"}, r"^RelationalMemoryCore: gate_style must be unit, memory or none, got 'lstm'; pick one"),
    ({"blocks": 0}, r"^RelationalMemoryCore: blocks must be a positive integer, got 0;"),
])
def test_bad_arguments_are_refused_in_one_sentence(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RelationalMemoryCore(**kwargs)


def test_the_model_refuses_another_controller_as_its_core():
    from mannkit.nn import LSTMController

    with pytest.raises(ConfigError, match=r"^RelationalMemoryModel: core is a LSTMController, not a RelationalMemoryCore;"):
        RelationalMemoryModel(LSTMController(8))


def test_a_core_given_as_the_memory_in_yaml_is_refused_naming_the_field(tmp_path, capsys):
    from pathlib import Path

    from mannkit.cli import main

    preset = Path(__file__).parents[3] / "configs" / "relational" / "nth_farthest_dnc.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(preset.read_text().replace("class_path: DNCMemory, init_args: {slots: 16, word_size: 16}",
                                              "class_path: RelationalMemoryCore"))
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(bad), "--trainer.max_steps", "1"])
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("mannkit: error: model.init_args.core.init_args.memory: MemoryCell expects a Memory here, "
                              "but RelationalMemoryCore is a Controller; give one of ")
