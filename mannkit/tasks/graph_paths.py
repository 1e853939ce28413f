"""Traversal and shortest path on random labelled graphs (Graves et al., 2016), as generated sequence tasks.

Shape letters: B batch, T time, I input width, O output width, S node ids (``id_space``), L labels.
The channel layout and the four phases of a sequence are :class:`~mannkit.tasks.graph_base.GraphTask`'s.

>>> from mannkit.tasks import GraphTraversalTask
>>> task = GraphTraversalTask(id_space=6, num_labels=2, min_nodes=4, max_nodes=6, test_nodes=[6], test_path_lengths=[4])
>>> task.input_size, task.output_size   # 2 * 6 + 2 + 3 flags; 2 * 6 + 2
(17, 14)
"""

from __future__ import annotations

import torch

from mannkit.core.registry import register
from mannkit.tasks.base import Batch
from mannkit.tasks.difficulty import Difficulty
from mannkit.tasks.graph_base import (
    GraphSequence,
    GraphTask,
    Slots,
    _uniform_int,
    check_graph,
    random_graph,
    random_walk,
    unique_shortest_paths,
)

__all__ = ["GraphTraversalTask", "ShortestPathTask"]

#: The graph-size axis of both tasks: 2 nodes or more, at most ``id_space``.
NODES = Difficulty("nodes", tag="nodes", tests="test_nodes", low=2, at_most="id_space")


# -- 1. traversal ----------------------------------------------------------------------------


@register(kind="task")
class GraphTraversalTask(GraphTask):
    """Traversal: read a random labelled graph, then follow a start node and a sequence of edge labels.

    Graphs are drawn by :func:`random_graph` (``n`` uniform in ``[min_nodes, max_nodes]`` per
    sequence). The path length k is drawn per batch, uniform in ``[min_path_length,
    max_path_length]``; each query is a random walk of k edges from a uniform start node (nodes and
    edges may repeat, so k has no upper limit). Query (k steps): the first step holds the start id
    in the source field and the first label; the next ``k-1`` steps hold only the next labels.
    Answer (k scored steps): the k triples visited, in order. Since a node's out-edges carry
    distinct labels, the answer is determined by the query. T = G + 2k + planning_steps, G the most
    triples of any graph in the batch. Layout: see the module docstring (I = 2S + L + 3, O = 2S + L
    with L = ``num_labels``).

    Test sets pair ``test_nodes`` with ``test_path_lengths`` (named ``"nodes{n}_path{k}"``).

    Args:
        id_space: S, possible node ids; at least ``max_nodes`` and every test size.
        num_labels: L, edge labels.
        max_out_degree: most out-edges per node; at most ``num_labels``.
        min_nodes: fewest nodes of a training graph (n is uniform per sequence); at least 2.
        max_nodes: most nodes of a training graph; a curriculum may raise it.
        min_path_length: shortest training path (k is uniform per batch).
        max_path_length: longest training path; a curriculum may raise it.
        planning_steps: blank, unscored steps between the query and the answer.
        test_nodes: nodes per graph of each test set.
        test_path_lengths: path length of each test set, one per entry of ``test_nodes``.
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.

    >>> task = GraphTraversalTask(id_space=8, min_nodes=5, max_nodes=5, min_path_length=2, max_path_length=2,
    ...                           test_nodes=[8], test_path_lengths=[4])
    >>> batch = task.example_batch(batch_size=2)
    >>> batch["input"].shape[2], batch["target"].shape[2], batch["mask"].sum(dim=1).tolist()
    (22, 19, [2.0, 2.0])
    """

    difficulty = (NODES, Difficulty("path_length", tag="path", tests="test_path_lengths"))

    def __init__(
        self,
        id_space: int = 12,
        num_labels: int = 3,
        max_out_degree: int = 2,
        min_nodes: int = 5,
        max_nodes: int = 8,
        min_path_length: int = 1,
        max_path_length: int = 3,
        planning_steps: int = 1,
        test_nodes: list[int] = [8, 12],  # noqa: B006  (copied, never mutated)
        test_path_lengths: list[int] = [3, 5],  # noqa: B006
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(id_space, num_labels, planning_steps, batch_size, train_batches, val_batches, test_batches, seed)
        check_graph("GraphTraversalTask", num_labels, max_out_degree)
        self.num_labels, self.max_out_degree = num_labels, max_out_degree
        self.set_difficulty(
            min_nodes=min_nodes, max_nodes=max_nodes, min_path_length=min_path_length, max_path_length=max_path_length,
            test_nodes=test_nodes, test_path_lengths=test_path_lengths,
        )

    def generate(
        self,
        generator: torch.Generator,
        batch_size: int,
        min_nodes: int = 5,
        max_nodes: int = 8,
        min_path_length: int = 1,
        max_path_length: int = 3,
    ) -> Batch:
        """One batch with the path length k drawn per batch and the node count per sequence."""
        k = _uniform_int(generator, min_path_length, max_path_length)
        sequences = []
        for _ in range(batch_size):
            n = _uniform_int(generator, min_nodes, max_nodes)
            edges = random_graph(generator, n, self.id_space, self.max_out_degree, self.num_labels)
            nodes = sorted({s for s, _, _ in edges})  # every node has an out-edge
            start = nodes[_uniform_int(generator, 0, n - 1)]
            path = random_walk(generator, edges, start, k)
            query: list[Slots] = [(start, path[0][1], None)] + [(None, label, None) for _, label, _ in path[1:]]
            sequences.append(GraphSequence(edges, query, list(path)))
        return self.encode(sequences)


# -- 2. shortest path ------------------------------------------------------------------------


@register(kind="task")
class ShortestPathTask(GraphTask):
    """Shortest path: read a random labelled graph, then give the edges of the shortest path from a start to a goal.

    Graphs are drawn by :func:`random_graph` (``n`` uniform in ``[min_nodes, max_nodes]`` per
    sequence); paths follow edge directions. The pair is drawn uniformly among the ordered pairs
    joined by exactly one shortest path (:func:`unique_shortest_paths`; there is always one, since
    a single edge is a unique path), so the answer needs no tie-break. Query (1 step): the start id
    in the source field and the goal id in the destination field. Answer: the triples of the path,
    in order; the answer phase is as long as the longest path of the batch, and the steps after a
    shorter path are scored with all-zero targets (the model must also say where the path ends).
    Layout: see the module docstring (I = 2S + L + 3, O = 2S + L with L = ``num_labels``).

    Args:
        id_space: S, possible node ids; at least ``max_nodes`` and every test size.
        num_labels: L, edge labels.
        max_out_degree: most out-edges per node; at most ``num_labels``.
        min_nodes: fewest nodes of a training graph (n is uniform per sequence); at least 2.
        max_nodes: most nodes of a training graph; a curriculum may raise it.
        planning_steps: blank, unscored steps between the query and the answer.
        test_nodes: one test set per graph size (named ``"nodes{n}"``).
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.

    >>> task = ShortestPathTask(id_space=7, num_labels=2, min_nodes=4, max_nodes=6, test_nodes=[6, 7])
    >>> batch = task.example_batch(batch_size=3)
    >>> batch["input"].shape[2], batch["target"].shape[2], task.test_set_names
    (19, 16, ['nodes6', 'nodes7'])
    """

    difficulty = (NODES,)

    def __init__(
        self,
        id_space: int = 12,
        num_labels: int = 3,
        max_out_degree: int = 2,
        min_nodes: int = 5,
        max_nodes: int = 8,
        planning_steps: int = 3,
        test_nodes: list[int] = [8, 12],  # noqa: B006  (copied, never mutated)
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(id_space, num_labels, planning_steps, batch_size, train_batches, val_batches, test_batches, seed)
        check_graph("ShortestPathTask", num_labels, max_out_degree)
        self.num_labels, self.max_out_degree = num_labels, max_out_degree
        self.set_difficulty(min_nodes=min_nodes, max_nodes=max_nodes, test_nodes=test_nodes)

    def generate(self, generator: torch.Generator, batch_size: int, min_nodes: int = 5, max_nodes: int = 8) -> Batch:
        """One batch; the answer phase is as long as the longest shortest path drawn."""
        sequences = []
        for _ in range(batch_size):
            n = _uniform_int(generator, min_nodes, max_nodes)
            edges = random_graph(generator, n, self.id_space, self.max_out_degree, self.num_labels)
            paths = unique_shortest_paths(edges)
            pairs = sorted(paths)  # a fixed order, so the draw depends only on the generator
            start, goal = pairs[_uniform_int(generator, 0, len(pairs) - 1)]
            sequences.append(GraphSequence(edges, [(start, None, goal)], list(paths[(start, goal)])))
        width = max(len(s.answer) for s in sequences)
        padded = [s._replace(answer=s.answer + [None] * (width - len(s.answer))) for s in sequences]
        return self.encode(padded)
