"""The graph tasks' shared part: random labelled graphs, walks, shortest paths, and the channel layout of :class:`GraphTask`.

The tasks themselves live in :mod:`mannkit.tasks.graph_paths` (traversal, shortest path) and
:mod:`mannkit.tasks.family_tree`; :mod:`mannkit.tasks.graph` gathers them all.

Shape letters: B batch, T time, I input width, O output width, S node ids (``id_space``), L label
channels.

A graph is a list of triples ``(source id, edge label, destination id)``. Node ids are distinct integers
drawn at random from ``0..S-1`` for each graph, so an id says nothing about where a node was described;
labels are ``0..L-1``. The three tasks share one channel layout. The input at every step is

    ``[source one-hot (S) | label one-hot (L) | destination one-hot (S) | graph | query | answer]``

(I = 2S + L + 3; the last three channels are phase flags), and the target is the triple part alone
(O = 2S + L). An empty field is all zeros. A sequence has four phases, aligned across the batch:

1. graph: one triple per step, in random order, with the graph flag set; a sequence with fewer triples
   than the longest of its batch starts with blank steps, so that every query starts at the same step;
2. query: one or more steps with the query flag set (each task's docstring says what they hold);
3. planning: ``planning_steps`` blank steps, not scored;
4. answer: steps with only the answer flag set; their targets are the answer triples and they are the
   only scored steps (mask 1). A target is all-or-nothing: the sequence is right when every scored bit is.

>>> from mannkit.tasks import GraphTraversalTask
>>> task = GraphTraversalTask(id_space=6, num_labels=2, min_nodes=4, max_nodes=6, test_nodes=[6], test_path_lengths=[4])
>>> task.input_size, task.output_size   # 2 * 6 + 2 + 3 flags; 2 * 6 + 2
(17, 14)
"""


from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from mannkit.core.errors import DataError
from mannkit.tasks.base import Batch, SequenceTask
from mannkit.tasks.difficulty import check_at_least, check_order

__all__ = [
    "Triple",
    "Slots",
    "GraphTask",
    "random_graph",
    "random_walk",
    "follow_labels",
    "unique_shortest_paths",
    "decode_triples",
    "GraphSequence",
    "check_graph",
]

Triple = tuple[int, int, int]
"""``(source id, label, destination id)``."""
Slots = tuple[Optional[int], Optional[int], Optional[int]]
"""A triple whose empty fields are ``None`` (a query step)."""


def _uniform_int(generator: torch.Generator, low: int, high: int) -> int:
    """One integer uniform in ``[low, high]`` (both included)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


def _shuffled(generator: torch.Generator, items: list) -> list:
    """``items`` in a uniformly random order."""
    return [items[i] for i in torch.randperm(len(items), generator=generator).tolist()]

# -- graphs ------------------------------------------------------------------------------------


def random_graph(
    generator: torch.Generator, num_nodes: int, id_space: int, max_out_degree: int, num_labels: int
) -> list[Triple]:
    """A random directed graph as triples, in random order.

    The nodes get distinct ids drawn uniformly from ``0..id_space-1``. Each node has out-degree
    uniform in ``1..min(max_out_degree, num_nodes-1)``; its out-edges go to distinct other nodes
    (no self-loops) and carry distinct labels from ``0..num_labels-1``, so a node and a label name
    at most one edge. Every node has an out-edge, so a walk of any length exists from any node.
    Needs ``2 <= num_nodes <= id_space`` and ``1 <= max_out_degree <= num_labels``.

    >>> edges = random_graph(torch.Generator().manual_seed(0), num_nodes=3, id_space=9, max_out_degree=1, num_labels=2)
    >>> len(edges), len({s for s, _, _ in edges})   # one out-edge per node
    (3, 3)
    """
    n = num_nodes
    ids = torch.randperm(id_space, generator=generator)[:n].tolist()
    cap = min(max_out_degree, n - 1)
    degree = torch.randint(1, cap + 1, (n,), generator=generator).tolist()
    scores = torch.rand(n, n, generator=generator)
    scores.fill_diagonal_(2.0)  # above every uniform: a node's own position sorts last
    destinations = scores.argsort(dim=1).tolist()  # row u: the other nodes in random order, then u
    labels = torch.rand(n, num_labels, generator=generator).argsort(dim=1).tolist()  # row u: labels shuffled
    edges = [(ids[u], labels[u][j], ids[destinations[u][j]]) for u in range(n) for j in range(degree[u])]
    return _shuffled(generator, edges)


def _out_edges(edges: list[Triple]) -> dict[int, list[Triple]]:
    """Each source id's out-edges, sorted by label (a fixed order for random choices)."""
    out: dict[int, list[Triple]] = {}
    for edge in sorted(edges, key=lambda e: (e[0], e[1], e[2])):
        out.setdefault(edge[0], []).append(edge)
    return out


def random_walk(generator: torch.Generator, edges: list[Triple], start: int, length: int) -> list[Triple]:
    """``length`` edges followed from ``start``, each chosen uniformly among the current node's out-edges.

    Nodes and edges may be visited again. Raises :class:`DataError` at a node without out-edges.
    """
    out = _out_edges(edges)
    path, node = [], start
    for _ in range(length):
        choices = out.get(node, [])
        if not choices:
            raise DataError(f"random_walk: node {node} has no out-edge; give every node an out-edge.")
        edge = choices[_uniform_int(generator, 0, len(choices) - 1)]
        path.append(edge)
        node = edge[2]
    return path


def follow_labels(edges: list[Triple], start: int, labels: list[int]) -> list[Triple]:
    """The edges visited from ``start`` taking, at each step, the out-edge with the next label.

    >>> follow_labels([(4, 0, 7), (7, 1, 4), (7, 0, 2)], start=4, labels=[0, 1, 0])
    [(4, 0, 7), (7, 1, 4), (4, 0, 7)]
    """
    by_label = {(s, label): (s, label, d) for s, label, d in edges}
    path, node = [], start
    for label in labels:
        edge = by_label.get((node, label))
        if edge is None:
            raise DataError(f"follow_labels: node {node} has no out-edge labelled {label}; query only existing edges.")
        path.append(edge)
        node = edge[2]
    return path


def unique_shortest_paths(edges: list[Triple]) -> dict[tuple[int, int], list[Triple]]:
    """Every ordered pair ``(start, goal)``, start != goal, joined by exactly one shortest directed path, with that path.

    One breadth-first search per start counts the shortest paths to each node (a node at distance
    d+1 sums the counts of its predecessors at distance d); a goal whose count is 1 has a unique
    shortest path, rebuilt from each node's one predecessor edge. Pairs joined by two or more
    shortest paths, or not at all, are left out.

    >>> unique_shortest_paths([(1, 0, 2), (2, 0, 3), (1, 1, 5), (5, 0, 3)])[(1, 2)]
    [(1, 0, 2)]
    >>> (1, 3) in unique_shortest_paths([(1, 0, 2), (2, 0, 3), (1, 1, 5), (5, 0, 3)])   # two paths of length 2
    False
    """
    out = _out_edges(edges)
    paths: dict[tuple[int, int], list[Triple]] = {}
    for start in sorted(out):
        distance, count, parent = {start: 0}, {start: 1}, {}
        frontier = [start]
        while frontier:  # one layer (one distance) per pass: counts of a layer are final before it expands
            layer = []
            for u in frontier:
                for edge in out.get(u, []):
                    v = edge[2]
                    if v not in distance:
                        distance[v], count[v], parent[v] = distance[u] + 1, count[u], edge
                        layer.append(v)
                    elif distance[v] == distance[u] + 1:
                        count[v] += count[u]
            frontier = layer
        for goal in distance:
            if goal != start and count[goal] == 1:
                path, node = [], goal
                while node != start:
                    path.append(parent[node])
                    node = parent[node][0]
                paths[(start, goal)] = path[::-1]
    return paths


def decode_triples(steps: Tensor, id_space: int, label_count: int) -> list[Slots]:
    """Read one triple per step from one-hot fields (the first ``2S + L`` channels); an all-zero field is None.

    Args:
        steps: ``[T, C]`` with ``C >= 2S + L`` (an input, a target or thresholded predictions).
        id_space: S.
        label_count: L.

    >>> decode_triples(torch.tensor([[0., 1, 0, 1, 0, 0, 0], [0., 0, 0, 0, 0, 0, 1]]), id_space=3, label_count=1)
    [(1, 0, None), (None, None, 2)]
    """
    S, L = id_space, label_count
    triples = []
    for row in steps:
        fields = (row[:S], row[S : S + L], row[S + L : 2 * S + L])
        triples.append(tuple(int(f.argmax()) if bool((f > 0.5).any()) else None for f in fields))
    return triples

# -- the shared base -------------------------------------------------------------------------


class GraphSequence(NamedTuple):
    """One sequence before encoding: its graph triples, query steps and answer triples (None: an all-zero target)."""

    graph: list[Triple]
    query: list[Slots]
    answer: list[Optional[Triple]]


class GraphTask(SequenceTask):
    """Base of the graph tasks (abstract): the channel layout (see the module docstring) and the encoding.

    A subclass passes its label count L and implements ``generate`` by building one ``GraphSequence`` per
    sequence and calling :meth:`encode`.

    Args:
        id_space: S, the number of possible node ids (the width of an id field).
        label_count: L, the number of label channels.
        planning_steps: blank steps between the query and the answer.
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.
    """

    #: The phase-flag channels, in order, after the triple fields.
    FLAGS = ("graph", "query", "answer")

    def __init__(
        self,
        id_space: int,
        label_count: int,
        planning_steps: int,
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        owner = type(self).__name__
        check_at_least(owner, "id_space", id_space, 2)
        check_at_least(owner, "planning_steps", planning_steps, 0)
        self.id_space, self.label_count, self.planning_steps = id_space, label_count, planning_steps
        self.output_size = 2 * id_space + label_count
        self.input_size = self.output_size + len(self.FLAGS)

    def encode(self, sequences: list[GraphSequence]) -> Batch:
        """Lay out the sequences of one batch: input ``[B, T, 2S+L+3]``, target ``[B, T, 2S+L]``, mask ``[B, T]``.

        Every sequence must have the same number of query steps; graphs and answers may differ in
        length (shorter graphs are preceded by blank steps; shorter answers end with all-zero,
        scored targets).
        """
        S, L, P = self.id_space, self.label_count, self.planning_steps
        B = len(sequences)
        G = max(len(s.graph) for s in sequences)  # graph steps
        Q = len(sequences[0].query)  # query steps
        A = max(len(s.answer) for s in sequences)  # answer steps
        first_answer = G + Q + P
        T = first_answer + A
        flag = 2 * S + L  # first flag channel
        ones_x: list[tuple[int, int, int]] = []  # (b, t, channel) set to 1 in the input
        ones_y: list[tuple[int, int, int]] = []  # ... and in the target

        def put(ones: list[tuple[int, int, int]], b: int, t: int, slots: Slots) -> None:
            for offset, value in zip((0, S, S + L), slots):
                if value is not None:
                    ones.append((b, t, offset + value))

        for b, seq in enumerate(sequences):
            if len(seq.query) != Q:
                raise ValueError("GraphTask.encode: every sequence of a batch needs the same number of query steps.")
            pad = G - len(seq.graph)  # blank steps before this graph
            for i, triple in enumerate(seq.graph):
                put(ones_x, b, pad + i, triple)
                ones_x.append((b, pad + i, flag))
            for i, slots in enumerate(seq.query):
                put(ones_x, b, G + i, slots)
                ones_x.append((b, G + i, flag + 1))
            for i, triple in enumerate(seq.answer):
                if triple is not None:
                    put(ones_y, b, first_answer + i, triple)
        x = torch.zeros(B, T, self.input_size)
        y = torch.zeros(B, T, self.output_size)
        x[tuple(torch.tensor(ones_x).T)] = 1.0  # [3, n] index rows (b, t, channel)
        if ones_y:
            y[tuple(torch.tensor(ones_y).T)] = 1.0
        x[:, first_answer:, flag + 2] = 1.0  # answer flag
        mask = torch.zeros(B, T)
        mask[:, first_answer:] = 1.0
        return {"input": x, "target": y, "mask": mask}


def check_graph(owner: str, num_labels: int, max_out_degree: int) -> None:
    """Raise :class:`ConfigError` unless ``1 <= max_out_degree <= num_labels`` (a node's out-edges carry distinct labels)."""
    check_at_least(owner, "num_labels", num_labels, 1)
    check_at_least(owner, "max_out_degree", max_out_degree, 1)
    check_order(owner, "max_out_degree", max_out_degree, "num_labels", num_labels)
