"""The graph memory: message passing by hand, edge writes, the heads under the common interfaces, pictures, the kit."""

import pytest
import torch

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError
from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.testing import check_head, check_memory, head_sets
from mannkit.viz import view_of
from mannkit_relational import EdgeWriteHead, GraphMemory, GraphState
from mannkit_relational.graph_memory import gated_update, messages, write_edges

CPU = torch.device("cpu")
B, N, W = 3, 7, 5


def test_messages_by_hand():
    sender = torch.tensor([[[0.5], [0.0], [-1.0]]])  # P h_i + b: [B=1, N=3, F=1]
    receiver = torch.tensor([[[0.0], [1.0], [2.0]]])  # Q h_j
    E = torch.tensor([[[0.0, 1.0, 0.5], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    u = torch.tensor([2.0])
    got = messages(sender, receiver, u, E)[0, :, 0]
    t = torch.tanh
    expected = torch.stack([1.0 * t(torch.tensor(0.5 + 1.0 + 2.0)) + 0.5 * t(torch.tensor(0.5 + 2.0 + 1.0)),
                            torch.tensor(0.0), 1.0 * t(torch.tensor(-1.0 + 0.0 + 2.0))])
    torch.testing.assert_close(got, expected)


def test_mean_messages_by_hand_divide_by_the_degree_floored_at_one():
    sender = torch.tensor([[[0.5], [0.0], [-1.0]]])
    receiver = torch.tensor([[[0.0], [1.0], [2.0]]])
    E = torch.tensor([[[0.0, 1.0, 0.5], [0.0, 0.0, 0.0], [0.25, 0.0, 0.0]]])  # degrees 1.5, 0, 0.25
    u = torch.tensor([2.0])
    total = messages(sender, receiver, u, E)
    got = messages(sender, receiver, u, E, mean=True)[0, :, 0]
    # node 0: divided by 1.5; node 1 (no edges) and node 2 (degree 0.25 < 1): the plain sum
    torch.testing.assert_close(got, torch.stack([total[0, 0, 0] / 1.5, total[0, 1, 0], total[0, 2, 0]]))


def test_mean_messages_stay_in_the_unit_box_however_many_nodes_link():
    torch.manual_seed(0)
    n = 64
    sender, receiver = torch.randn(2, n, 4) * 3, torch.randn(2, n, 4) * 3
    E = torch.full((2, n, n), 0.5)  # what a learned adjacency starts near
    assert messages(sender, receiver, torch.ones(4), E).abs().max() > 5  # the sum grows with the degree
    assert messages(sender, receiver, torch.ones(4), E, mean=True).abs().max() <= 1.0


def test_the_mean_aggregate_is_used_by_the_memory_and_gradchecks():
    torch.manual_seed(0)
    mean = GraphMemory(4, 3, rounds=2, message_size=3, update="residual", aggregate="mean").double()
    total = GraphMemory(4, 3, rounds=2, message_size=3, update="residual").double()
    total.load_state_dict(mean.state_dict())
    state = mean.initial_state(2, CPU, torch.float64)
    # the learned adjacency links every node at about 0.5, so degrees are about 2 > 1 and the two differ
    assert not torch.allclose(mean.propagate(state).memory, total.propagate(state).memory)
    adjacency = torch.rand(2, 4, 4, dtype=torch.float64) + 0.5  # degrees above 1: the division is in the graph
    nodes = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.softmax(torch.randn(2, 1, 4, dtype=torch.float64), -1)
    add = torch.randn(2, 1, 3, dtype=torch.float64, requires_grad=True)
    erase = torch.rand(2, 1, 3, dtype=torch.float64)
    written = GraphMemory(4, 3, rounds=2, message_size=3, edges="written", update="residual", aggregate="mean").double()
    assert torch.autograd.gradcheck(lambda n, a: written.write(w, erase, a, GraphState(n, adjacency)).memory, (nodes, add))


def test_an_unknown_aggregate_is_refused():
    with pytest.raises(ConfigError, match=r"^GraphMemory: aggregate must be sum or mean, got 'max'; pick one of those\.$"):
        GraphMemory(aggregate="max")


def test_edge_write_by_hand_erases_then_adds():
    E = torch.full((1, 2, 2), 0.5)
    s, t = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 1.0]]])
    got = write_edges(E, s, t, torch.tensor([[1.0]]), torch.tensor([[0.25]]))
    torch.testing.assert_close(got, torch.tensor([[[0.5, 0.25], [0.5, 0.5]]]))


def test_no_edges_no_messages_so_the_residual_update_keeps_the_nodes():
    memory = GraphMemory(N, W, edges="written", update="residual")
    state = memory.initial_state(B, CPU, torch.float32)
    out = memory.propagate(state)
    # h' = h + tanh(Linear([h; 0])): with zero messages only the node's own term moves it
    expected = state.memory + torch.tanh(memory.node_update(torch.cat([state.memory, torch.zeros(B, N, 16)], -1)))
    torch.testing.assert_close(out.memory, expected)


def test_an_identity_start_keeps_what_is_written_and_still_learns():
    torch.manual_seed(0)
    memory = GraphMemory(N, W, rounds=3, update="residual", update_init="identity")
    state = memory.initial_state(B, CPU, torch.float32)
    w = torch.softmax(torch.randn(B, 1, N), -1)
    erase, add = torch.rand(B, 1, W), torch.randn(B, 1, W)
    after = memory.write(w, erase, add, state)
    # exactly the matrix memory's erase/add: three rounds of message passing left the nodes as written
    torch.testing.assert_close(after.memory, state.memory * (1 - w.mT @ erase) + w.mT @ add)
    after.memory.square().sum().backward()
    assert memory.node_update.weight.grad.abs().sum() > 0  # U learns from the first step


def test_an_identity_start_needs_the_residual_update():
    with pytest.raises(ConfigError, match=r"^GraphMemory: update_init identity needs update: residual, got update 'gru'; "):
        GraphMemory(update_init="identity")
    with pytest.raises(ConfigError, match=r"^GraphMemory: update_init must be random or identity, got 'zero'; "):
        GraphMemory(update="residual", update_init="zero")


def test_a_gated_update_is_h_plus_gate_times_candidate_by_hand():
    memory = GraphMemory(N, W, edges="written", update="gated", gate_bias=0.0)
    state = memory.initial_state(B, CPU, torch.float32)
    out = memory.propagate(state)
    # zero messages (no edges): h' = h + sigmoid(G [h; 0] + g) * tanh(C [h; 0] + c), G and C the two halves of U
    z = memory.node_update(torch.cat([state.memory, torch.zeros(B, N, 16)], -1))
    torch.testing.assert_close(out.memory, state.memory + torch.sigmoid(z[..., W:]) * torch.tanh(z[..., :W]))
    assert (out.memory - state.memory).abs().max() > 1e-3  # an open gate moves the nodes


def test_a_closed_gate_keeps_nearly_what_is_written_and_its_gate_still_learns():
    torch.manual_seed(0)
    memory = GraphMemory(N, W, rounds=3, update="gated")  # gate_bias -5: sigmoid(-5) = 0.0067
    assert torch.allclose(memory.node_update.bias[W:], torch.full((W,), -5.0))
    state = memory.initial_state(B, CPU, torch.float32)
    w = torch.softmax(torch.randn(B, 1, N), -1)
    erase, add = torch.rand(B, 1, W), torch.randn(B, 1, W)
    after = memory.write(w, erase, add, state)
    written = state.memory * (1 - w.mT @ erase) + w.mT @ add  # the matrix memory's erase/add
    opened = GraphMemory(N, W, rounds=3, update="gated", gate_bias=0.0)
    opened.load_state_dict(memory.state_dict())
    with torch.no_grad():
        opened.node_update.bias[W:] = 0.0  # the same weights with the gate starting half open
        moved_open = (opened.write(w, erase, add, state).memory - written).abs().max()
    moved = (after.memory - written).abs().max()
    assert 0 < moved < 0.1 * moved_open, (moved, moved_open)  # nearly kept, but messages pass a little
    after.memory.square().sum().backward()
    assert memory.node_update.weight.grad[W:].abs().sum() > 0  # the gate rows learn from the first step


def test_gated_update_gradcheck_in_float64():
    gen = torch.Generator().manual_seed(1)
    nodes = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    projected = torch.randn(2, 3, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gated_update, (nodes, projected))


@pytest.mark.parametrize("bad", [float("nan"), "closed", True])
def test_a_gate_bias_that_is_not_a_finite_number_is_refused(bad):
    with pytest.raises(ConfigError, match=r"^GraphMemory: gate_bias must be a finite number, got .*; set it to e\.g\. -5\.$"):
        GraphMemory(update="gated", gate_bias=bad)


def test_an_unknown_update_names_the_three():
    with pytest.raises(ConfigError, match=r"^GraphMemory: update must be gru, residual or gated, got 'lstm'; pick one of those\.$"):
        GraphMemory(update="lstm")


def test_rounds_compose():
    torch.manual_seed(0)
    two = GraphMemory(N, W, rounds=2)
    one = GraphMemory(N, W, rounds=1)
    one.load_state_dict(two.state_dict())
    state = two.initial_state(B, CPU, torch.float32)
    torch.testing.assert_close(two.propagate(state), one.propagate(one.propagate(state)))


def test_learned_adjacency_is_a_soft_matrix_in_the_state():
    memory = GraphMemory(N, W)
    state = memory.write(torch.softmax(torch.randn(B, 1, N), -1), torch.rand(B, 1, W), torch.randn(B, 1, W),
                         memory.initial_state(B, CPU, torch.float32))
    assert state.memory.shape == (B, N, W) and state.adjacency.shape == (B, N, N)
    assert ((state.adjacency > 0) & (state.adjacency < 1)).all()


def test_gradcheck_of_a_write_in_float64():
    torch.manual_seed(0)
    memory = GraphMemory(4, 3, rounds=2, message_size=3).double()
    adjacency = torch.rand(2, 4, 4, dtype=torch.float64)
    nodes = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.softmax(torch.randn(2, 1, 4, dtype=torch.float64), -1).requires_grad_(True)
    add = torch.randn(2, 1, 3, dtype=torch.float64, requires_grad=True)
    erase = torch.rand(2, 1, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda n, w, a: memory.write(w, erase, a, GraphState(n, adjacency)).memory, (nodes, w, add))


def test_the_memory_and_the_edge_head_conform():
    check_memory(GraphMemory)
    check_memory(lambda: GraphMemory(N, 11, update="residual", rounds=2))
    check_memory(lambda: GraphMemory(N, 11, update="gated", rounds=2))
    check_head(EdgeWriteHead)


def test_the_core_heads_and_the_edge_head_mix():
    assert ("WriteHead", "ReadHead") in head_sets(GraphMemory)
    cell = MemoryCell(LSTMController(9), GraphMemory(N, W, edges="written"),
                      [EdgeWriteHead(ContentAddressing()), WriteHead(ContentAddressing()), ReadHead(ContentAddressing(), count=2)])
    cell.bind(input_size=4, output_size=3)
    out = cell(torch.randn(B, 6, 4), record=True)
    assert out.logits.shape == (B, 6, 3)
    assert out.trace["adjacency"].abs().sum() > 0, "the edge head wrote edges"
    assert out.trace["source_weights"].shape == (B, 6, 1, N)


def test_describe_gives_adjacency_and_nodes_as_pictures():
    memory = GraphMemory(N, W)
    described = memory.describe(memory.initial_state(B, CPU, torch.float32))
    assert described["adjacency"].shape == (B, N, N) and described["nodes"].shape == (B, N, W)
    for name, value in described.items():  # one example over T = 4 steps
        assert view_of(name, value[0].unsqueeze(0).expand(4, *value.shape[1:]).detach().numpy()) == "final", f"{name} is not drawn"


def test_zero_message_rounds_are_refused():
    with pytest.raises(ConfigError, match=r"^GraphMemory: rounds must be a positive integer, got 0; set rounds to 1 or more "
                                          r"\(a graph memory without message passing is a MatrixMemory\)\.$"):
        GraphMemory(rounds=0)


def test_an_edge_head_is_refused_by_learned_edges_and_by_other_memories():
    with pytest.raises(ConfigError, match=r"^EdgeWriteHead: the GraphMemory's edges are learned, so they cannot be written; "
                                          r"set the memory's edges to written\.$"):
        EdgeWriteHead(ContentAddressing()).bind(GraphMemory())
    with pytest.raises(ConfigError, match=r"^EdgeWriteHead needs a memory with write_edges \(a GraphMemory\), but the memory "
                                          r"is MatrixMemory;"):
        EdgeWriteHead(ContentAddressing()).bind(MatrixMemory())
