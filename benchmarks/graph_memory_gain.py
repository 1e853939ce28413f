"""Diagnostic: the gain of one message-passing round of a trained GraphMemory, with its own and the other aggregate.

A graph memory runs ``rounds`` rounds of ``h_i' = U(h_i, agg_j e_ij m_ij)`` after every write, so a sequence of
T writes chains ``T * rounds`` of them, and the gradient that reaches the first write is multiplied by the
Jacobian of every round. This script measures the spectral norm of one round's Jacobian ``d vec(H') / d vec(H)``
(``[N W, N W]``) at the node states the memory really sees: it runs the checkpoint's model on sequences of its
task (the config's data section, the training sizes), records the state at every write, and for each one
computes the largest singular value of the round (power iteration; the Jacobian is never built). It prints the
median and largest over the recorded writes, the product over the rounds of one sequence (a bound on the chain's
gain) and the mean node degree ``sum_j e_ij`` (with ``aggregate: sum`` a message's weight grows with it).

    OMP_NUM_THREADS=1 python benchmarks/graph_memory_gain.py --config configs/graph_memory/traversal.yaml \\
        --ckpt runs/graph_memory/traversal/lightning_logs/version_0/checkpoints/last.ckpt

A sequence of the small traversal task makes 7-14 writes; a round above 1 compounds over ``writes x rounds``.
"""

from __future__ import annotations

import argparse
import statistics
import warnings
from pathlib import Path

import torch
import yaml

from mannkit.core.config import instantiate
from mannkit.core.registry import load_plugins


def round_gain(memory: torch.nn.Module, nodes: torch.Tensor, adjacency: torch.Tensor, iterations: int = 100) -> float:
    """Largest singular value of one round's Jacobian J at ``nodes [N, W]`` (``adjacency [N, N]``: written edges).

    Power iteration on ``J^T J`` with one forward-mode and one reverse-mode product a step (J itself, ``[N W, N W]``,
    is never built): ``v <- J^T J v / |J^T J v|``, then ``sigma = |J v|``.
    """
    from mannkit_relational import GraphState

    rounds = memory.rounds
    memory.rounds = 1

    def one_round(flat: torch.Tensor) -> torch.Tensor:
        return memory.propagate(GraphState(flat.view(1, *nodes.shape), adjacency.unsqueeze(0))).memory.reshape(-1)

    try:
        with warnings.catch_warnings():
            # torch.func's forward mode scripts a decomposition on first use, and torch warns that jit.script is deprecated
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=DeprecationWarning)
            x = nodes.reshape(-1)
            v = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
            v = v / v.norm()
            _, pullback = torch.func.vjp(one_round, x)
            for _ in range(iterations):
                _, jv = torch.func.jvp(one_round, (x,), (v,))
                (jtjv,) = pullback(jv)
                v = jtjv / jtjv.norm()
            _, jv = torch.func.jvp(one_round, (x,), (v,))
    finally:
        memory.rounds = rounds
    return float(jv.detach().norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the preset the checkpoints were trained with (its data section)")
    parser.add_argument("--ckpt", nargs="+", required=True, help="checkpoints of a SequenceSystem whose cell has a GraphMemory")
    parser.add_argument("--sequences", type=int, default=4, help="sequences measured (every write of each)")
    parser.add_argument("--seed", type=int, default=123, help="seed of the drawn sequences")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_plugins()
    import mannkit.tasks  # noqa: F401
    from mannkit.systems import SequenceSystem
    from mannkit_relational import GraphMemory

    task = instantiate(yaml.safe_load(Path(args.config).read_text())["data"], "data")
    generator = torch.Generator().manual_seed(args.seed)
    batch = task.generate(generator, args.sequences, **task.train_difficulty())
    for path in args.ckpt:
        system = SequenceSystem.load_from_checkpoint(path, weights_only=True).eval().double()
        memory = next(m for m in system.modules() if isinstance(m, GraphMemory))
        seen: list[tuple[torch.Tensor, torch.Tensor]] = []  # the state each write hands to propagate
        propagate = memory.propagate

        def recording(state, _propagate=propagate):  # noqa: ANN001, ANN202
            seen.append((state.memory.detach(), state.adjacency.detach()))
            return _propagate(state)

        memory.propagate = recording
        with torch.no_grad():
            system(batch["input"].double())
        memory.propagate = propagate
        writes = len(seen)
        print(f"## {path}: aggregate {memory.aggregate}, {memory.rounds} rounds a write, {writes} writes a sequence, "
              f"{args.sequences} sequences")
        gains, degrees, products = [], [], []
        with torch.no_grad():
            for b in range(args.sequences):
                product = 1.0
                for nodes, adjacency in seen:
                    g = round_gain(memory, nodes[b], adjacency[b])
                    gains.append(g)
                    product *= g ** memory.rounds
                    if memory.edges == "learned":
                        degrees.append(float(memory.learned_adjacency(nodes[b : b + 1]).sum(-1).mean()))
                products.append(product)
        degree = f"; mean node degree sum_j e_ij {statistics.median(degrees):.1f}" if degrees else ""
        print(f"one round's gain: median {statistics.median(gains):.3f}, largest {max(gains):.3f}; the product over a "
              f"sequence's {writes} x {memory.rounds} rounds: median {statistics.median(products):.3g}{degree}")


if __name__ == "__main__":
    main()
