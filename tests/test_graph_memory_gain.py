"""benchmarks/graph_memory_gain.py: the power iteration finds the largest singular value of one round's Jacobian."""

import pytest
import torch

from mannkit_relational import GraphMemory, GraphState


@pytest.mark.parametrize(("edges", "aggregate"), [("learned", "sum"), ("written", "mean")])
def test_the_round_gain_is_the_spectral_norm_of_the_full_jacobian(benchmark_script, edges, aggregate):
    script = benchmark_script("graph_memory_gain")
    torch.manual_seed(0)
    memory = GraphMemory(5, 3, rounds=2, message_size=4, edges=edges, update="residual", aggregate=aggregate).double()
    nodes = torch.randn(5, 3, dtype=torch.float64)
    adjacency = torch.rand(5, 5, dtype=torch.float64) * 2
    memory.rounds = 1  # the full Jacobian of one round, by hand

    def one_round(flat):
        return memory.propagate(GraphState(flat.view(1, 5, 3), adjacency.unsqueeze(0))).memory.reshape(-1)

    expected = torch.linalg.matrix_norm(torch.autograd.functional.jacobian(one_round, nodes.reshape(-1)), ord=2)
    memory.rounds = 2
    assert script.round_gain(memory, nodes, adjacency) == pytest.approx(float(expected), rel=1e-6)
    assert memory.rounds == 2  # the memory is left as it was
