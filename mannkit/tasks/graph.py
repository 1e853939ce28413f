"""Graph tasks of the Differentiable Neural Computer paper (Graves et al., 2016): traversal, shortest path
and family-tree inference, as generated sequence tasks.

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

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError, DataError, suggest
from mannkit.core.registry import register
from mannkit.tasks.base import Batch, SequenceTask, check_at_least, check_list, check_order, make_generator

__all__ = [
    "Triple",
    "GraphTask",
    "GraphTraversalTask",
    "ShortestPathTask",
    "FamilyTreeTask",
    "Family",
    "FAMILY_BASE_RELATIONS",
    "FAMILY_DERIVED_RELATIONS",
    "FAMILY_RELATIONS",
    "random_graph",
    "random_walk",
    "follow_labels",
    "unique_shortest_paths",
    "random_family",
    "family_facts",
    "relatives",
    "decode_triples",
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


class _Sequence(NamedTuple):
    """One sequence before encoding: its graph triples, query steps and answer triples (None: an all-zero target)."""

    graph: list[Triple]
    query: list[Slots]
    answer: list[Optional[Triple]]


class GraphTask(SequenceTask):
    """Base of the graph tasks (abstract): the channel layout (see the module docstring) and the encoding.

    A subclass passes its label count L and implements ``generate`` by building one ``_Sequence`` per
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

    def encode(self, sequences: list[_Sequence]) -> Batch:
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


def _check_graph(owner: str, id_space: int, num_labels: int, max_out_degree: int) -> None:
    check_at_least(owner, "num_labels", num_labels, 1)
    check_at_least(owner, "max_out_degree", max_out_degree, 1)
    check_order(owner, "max_out_degree", max_out_degree, "num_labels", num_labels)


def _check_nodes(owner: str, min_nodes: int, max_nodes: int, id_space: int) -> None:
    check_at_least(owner, "min_nodes", min_nodes, 2)
    check_order(owner, "min_nodes", min_nodes, "max_nodes", max_nodes)
    check_order(owner, "max_nodes", max_nodes, "id_space", id_space)


def _check_test_sizes(owner: str, name: str, values: list[int], low: int, id_space: int) -> None:
    check_list(owner, name, values, low)
    if max(values) > id_space:
        raise ConfigError(
            f"{owner}: {name} ({list(values)}) holds values above id_space ({id_space}); "
            f"raise id_space to {max(values)} or lower {name}."
        )


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

    difficulty_attributes = ("min_nodes", "max_nodes", "min_path_length", "max_path_length")

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
        owner = "GraphTraversalTask"
        _check_graph(owner, id_space, num_labels, max_out_degree)
        self.num_labels, self.max_out_degree = num_labels, max_out_degree
        self._check(min_nodes, max_nodes, min_path_length, max_path_length)
        _check_test_sizes(owner, "test_nodes", test_nodes, 2, id_space)
        check_list(owner, "test_path_lengths", test_path_lengths, 1)
        if len(test_nodes) != len(test_path_lengths):
            raise ConfigError(
                f"{owner}: test_nodes ({list(test_nodes)}) and test_path_lengths ({list(test_path_lengths)}) "
                "must have the same number of entries; give one path length per test graph size."
            )
        self.min_nodes, self.max_nodes = min_nodes, max_nodes
        self.min_path_length, self.max_path_length = min_path_length, max_path_length
        self.test_nodes, self.test_path_lengths = list(test_nodes), list(test_path_lengths)

    def _check(self, min_nodes: int, max_nodes: int, min_path_length: int, max_path_length: int) -> None:
        _check_nodes("GraphTraversalTask", min_nodes, max_nodes, self.id_space)
        check_at_least("GraphTraversalTask", "min_path_length", min_path_length, 1)
        check_order("GraphTraversalTask", "min_path_length", min_path_length, "max_path_length", max_path_length)

    def train_difficulty(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.difficulty_attributes}

    def test_difficulties(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (f"nodes{n}_path{k}", {"min_nodes": n, "max_nodes": n, "min_path_length": k, "max_path_length": k})
            for n, k in zip(self.test_nodes, self.test_path_lengths)
        ]

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
        self._check(min_nodes, max_nodes, min_path_length, max_path_length)
        k = _uniform_int(generator, min_path_length, max_path_length)
        sequences = []
        for _ in range(batch_size):
            n = _uniform_int(generator, min_nodes, max_nodes)
            edges = random_graph(generator, n, self.id_space, self.max_out_degree, self.num_labels)
            nodes = sorted({s for s, _, _ in edges})  # every node has an out-edge
            start = nodes[_uniform_int(generator, 0, n - 1)]
            path = random_walk(generator, edges, start, k)
            query: list[Slots] = [(start, path[0][1], None)] + [(None, label, None) for _, label, _ in path[1:]]
            sequences.append(_Sequence(edges, query, list(path)))
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

    difficulty_attributes = ("min_nodes", "max_nodes")

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
        _check_graph("ShortestPathTask", id_space, num_labels, max_out_degree)
        self._check(min_nodes, max_nodes)
        _check_test_sizes("ShortestPathTask", "test_nodes", test_nodes, 2, id_space)
        self.num_labels, self.max_out_degree = num_labels, max_out_degree
        self.min_nodes, self.max_nodes = min_nodes, max_nodes
        self.test_nodes = list(test_nodes)

    def _check(self, min_nodes: int, max_nodes: int) -> None:
        _check_nodes("ShortestPathTask", min_nodes, max_nodes, self.id_space)

    def train_difficulty(self) -> dict[str, Any]:
        return {"min_nodes": self.min_nodes, "max_nodes": self.max_nodes}

    def test_difficulties(self) -> list[tuple[str, dict[str, Any]]]:
        return [(f"nodes{n}", {"min_nodes": n, "max_nodes": n}) for n in self.test_nodes]

    def generate(self, generator: torch.Generator, batch_size: int, min_nodes: int = 5, max_nodes: int = 8) -> Batch:
        """One batch; the answer phase is as long as the longest shortest path drawn."""
        self._check(min_nodes, max_nodes)
        sequences = []
        for _ in range(batch_size):
            n = _uniform_int(generator, min_nodes, max_nodes)
            edges = random_graph(generator, n, self.id_space, self.max_out_degree, self.num_labels)
            paths = unique_shortest_paths(edges)
            pairs = sorted(paths)  # a fixed order, so the draw depends only on the generator
            start, goal = pairs[_uniform_int(generator, 0, len(pairs) - 1)]
            sequences.append(_Sequence(edges, [(start, None, goal)], list(paths[(start, goal)])))
        width = max(len(s.answer) for s in sequences)
        padded = [s._replace(answer=s.answer + [None] * (width - len(s.answer))) for s in sequences]
        return self.encode(padded)


# -- 3. family trees -------------------------------------------------------------------------

#: Relations given as facts: ``(a, r, b)`` reads "the r of a is b" (a's father is b, a's son is b ...).
FAMILY_BASE_RELATIONS = ("father", "mother", "son", "daughter", "husband", "wife")
#: Relations asked about, derived from the facts (blood relatives; siblings share both parents).
FAMILY_DERIVED_RELATIONS = (
    "paternal_grandfather",
    "paternal_grandmother",
    "maternal_grandfather",
    "maternal_grandmother",
    "brother",
    "sister",
    "uncle",
    "aunt",
    "cousin",
    "maternal_great_uncle",
    "father_in_law",
    "mother_in_law",
    "nephew",
)
#: Every label of the family tasks, in channel order.
FAMILY_RELATIONS = FAMILY_BASE_RELATIONS + FAMILY_DERIVED_RELATIONS


@dataclass(frozen=True)
class Family:
    """A family tree: people ``0..P-1`` with their ids, sexes, parents and spouses (None where absent).

    Everyone born into the tree has both parents in it; people who married in have none.
    """

    ids: tuple[int, ...]
    male: tuple[bool, ...]
    father: tuple[Optional[int], ...]
    mother: tuple[Optional[int], ...]
    spouse: tuple[Optional[int], ...]

    def parents(self, a: int) -> list[int]:
        return [p for p in (self.father[a], self.mother[a]) if p is not None]

    def children(self, a: int) -> list[int]:
        return [c for c in range(len(self.ids)) if a in (self.father[c], self.mother[c])]

    def siblings(self, a: int) -> list[int]:
        if self.father[a] is None:
            return []
        return [s for s in range(len(self.ids)) if s != a and (self.father[s], self.mother[s]) == (self.father[a], self.mother[a])]


def random_family(generator: torch.Generator, num_people: int, id_space: int, max_children: int) -> Family:
    """A random family tree of ``num_people`` people with distinct ids from ``0..id_space-1``.

    It starts with a married couple (person 0, a man, and person 1, a woman). Until the tree has
    ``num_people`` people, one step either marries an unmarried person born into the tree to a new
    person of the other sex (chance 1/2, or always when no couple can have more children), or gives
    a uniformly chosen couple with fewer than ``max_children`` children a new child (a son or a
    daughter with chance 1/2 each). Nobody marries a relative. Needs ``2 <= num_people <= id_space``.
    """
    ids = torch.randperm(id_space, generator=generator)[:num_people].tolist()
    male, father, mother, spouse = [True, False], [None, None], [None, None], [1, 0]
    couples, children = [(0, 1)], [0]  # (husband, wife) and their number of children
    while len(male) < num_people:
        new = len(male)
        singles = [p for p in range(new) if spouse[p] is None and father[p] is not None]
        fertile = [c for c in range(len(couples)) if children[c] < max_children]
        coin = float(torch.rand(1, generator=generator))
        if singles and (not fertile or coin < 0.5):
            p = singles[_uniform_int(generator, 0, len(singles) - 1)]
            male.append(not male[p])
            father.append(None)
            mother.append(None)
            spouse.append(p)
            spouse[p] = new
            couples.append((p, new) if male[p] else (new, p))
            children.append(0)
        else:
            c = fertile[_uniform_int(generator, 0, len(fertile) - 1)]
            male.append(bool(torch.rand(1, generator=generator) < 0.5))
            father.append(couples[c][0])
            mother.append(couples[c][1])
            spouse.append(None)
            children[c] += 1
    return Family(tuple(ids), tuple(male), tuple(father), tuple(mother), tuple(spouse))


def family_facts(family: Family) -> list[Triple]:
    """The base facts as id triples with labels indexing :data:`FAMILY_RELATIONS`, in a fixed order.

    Per child: ``(child, father, f)``, ``(child, mother, m)``, ``(f, son|daughter, child)``,
    ``(m, son|daughter, child)``; per couple: ``(wife, husband, him)`` and ``(husband, wife, her)``.
    """
    label = {name: i for i, name in enumerate(FAMILY_RELATIONS)}
    ids, facts = family.ids, []
    for a in range(len(ids)):
        f, m = family.father[a], family.mother[a]
        if f is not None and m is not None:
            child = label["son" if family.male[a] else "daughter"]
            facts += [(ids[a], label["father"], ids[f]), (ids[a], label["mother"], ids[m])]
            facts += [(ids[f], child, ids[a]), (ids[m], child, ids[a])]
        if family.spouse[a] is not None:
            facts.append((ids[a], label["wife" if family.male[a] else "husband"], ids[family.spouse[a]]))
    return facts


def _only(people: list[Optional[int]]) -> set[int]:
    return {p for p in people if p is not None}


def relatives(family: Family, relation: str) -> list[set[int]]:
    """For each person a (an index, not an id), the set of people b with "the ``relation`` of a is b".

    Blood relations only: an uncle is a brother of a parent (not an aunt's husband); a cousin is a
    child of a parent's sibling; a maternal great-uncle is a brother of the mother's father or
    mother; a nephew is a son of a sibling; in-laws are the spouse's parents.

    >>> tree = Family(ids=(10, 11, 12, 13), male=(True, False, True, False), father=(None, None, 0, 0),
    ...               mother=(None, None, 1, 1), spouse=(1, 0, None, None))
    >>> relatives(tree, "sister")   # 13 is 12's sister; 12 is a brother, not a sister, of 13
    [set(), set(), {3}, set()]
    """
    f, m, sp = family.father, family.mother, family.spouse
    men = {p for p in range(len(family.ids)) if family.male[p]}

    def grand(parent: tuple[Optional[int], ...], grandparent: tuple[Optional[int], ...], a: int) -> set[int]:
        return _only([grandparent[parent[a]]]) if parent[a] is not None else set()

    def parents_siblings(a: int) -> set[int]:
        return {s for p in family.parents(a) for s in family.siblings(p)}

    rules = {
        "paternal_grandfather": lambda a: grand(f, f, a),
        "paternal_grandmother": lambda a: grand(f, m, a),
        "maternal_grandfather": lambda a: grand(m, f, a),
        "maternal_grandmother": lambda a: grand(m, m, a),
        "brother": lambda a: set(family.siblings(a)) & men,
        "sister": lambda a: set(family.siblings(a)) - men,
        "uncle": lambda a: parents_siblings(a) & men,
        "aunt": lambda a: parents_siblings(a) - men,
        "cousin": lambda a: {c for s in parents_siblings(a) for c in family.children(s)},
        "maternal_great_uncle": lambda a: (
            {s for g in family.parents(m[a]) for s in family.siblings(g)} & men if m[a] is not None else set()
        ),
        "father_in_law": lambda a: grand(sp, f, a),
        "mother_in_law": lambda a: grand(sp, m, a),
        "nephew": lambda a: {c for s in family.siblings(a) for c in family.children(s)} & men,
    }
    if relation not in rules:
        raise ConfigError(
            f"relatives: relation '{relation}' is unknown{suggest(relation, rules)}; "
            f"choose from {list(FAMILY_DERIVED_RELATIONS)}."
        )
    return [rules[relation](a) for a in range(len(family.ids))]


#: Families drawn per sequence, at most, before a query is found (else a ConfigError).
_FAMILY_TRIES = 200


@register(kind="task")
class FamilyTreeTask(GraphTask):
    """Family-tree inference: read the base facts of a family tree, then name the person in a derived relation.

    Trees come from :func:`random_family` (``P`` uniform in ``[min_people, max_people]`` per
    sequence); their facts (:func:`family_facts`: father, mother, son, daughter, husband, wife)
    are the graph triples, in random order. The query asks for a derived relation (one of
    ``relations``, see :func:`relatives`) of one person, and the answer is the person: the
    relation is drawn uniformly among those of ``relations`` that some person has exactly one of,
    then the person uniformly among those, so the answer is unique. Query (1 step): ``(a, relation,
    -)``. Answer (1 scored step): ``(a, relation, b)``. The label channels are
    :data:`FAMILY_RELATIONS` (L = 19: the 6 base relations, then the 13 derived ones), whichever
    ``relations`` are asked. Layout: see the module docstring (I = 2S + 22, O = 2S + 19).

    Args:
        id_space: S, possible person ids; at least ``max_people`` and every test size.
        min_people: fewest people of a training tree (P is uniform per sequence); at least 2.
        max_people: most people of a training tree; a curriculum may raise it.
        max_children: most children per couple.
        relations: the derived relations that may be asked (names from ``FAMILY_DERIVED_RELATIONS``).
        planning_steps: blank, unscored steps between the query and the answer.
        test_people: one test set per tree size (named ``"people{P}"``).
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.

    >>> task = FamilyTreeTask(id_space=10, min_people=6, max_people=8, relations=["brother", "sister"], test_people=[10])
    >>> batch = task.example_batch(batch_size=2)
    >>> batch["input"].shape[2], batch["target"].shape[2], batch["mask"][:, -1].tolist()
    (42, 39, [1.0, 1.0])
    """

    difficulty_attributes = ("min_people", "max_people")

    def __init__(
        self,
        id_space: int = 24,
        min_people: int = 8,
        max_people: int = 12,
        max_children: int = 3,
        relations: list[str] = list(FAMILY_DERIVED_RELATIONS),  # noqa: B006, B008  (copied, never mutated)
        planning_steps: int = 2,
        test_people: list[int] = [12, 18, 24],  # noqa: B006
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        labels = len(FAMILY_RELATIONS)
        super().__init__(id_space, labels, planning_steps, batch_size, train_batches, val_batches, test_batches, seed)
        owner = "FamilyTreeTask"
        check_at_least(owner, "max_children", max_children, 1)
        if len(relations) == 0:
            raise ConfigError(f"{owner}: relations is empty; give at least one of {list(FAMILY_DERIVED_RELATIONS)}.")
        for name in relations:
            if name not in FAMILY_DERIVED_RELATIONS:
                raise ConfigError(
                    f"{owner}: relations holds '{name}', which is not a derived relation"
                    f"{suggest(name, FAMILY_DERIVED_RELATIONS)}; choose from {list(FAMILY_DERIVED_RELATIONS)}."
                )
        self.max_children, self.relations = max_children, list(dict.fromkeys(relations))
        self._check(min_people, max_people)
        _check_test_sizes(owner, "test_people", test_people, 2, id_space)
        self.min_people, self.max_people = min_people, max_people
        self.test_people = list(test_people)
        # Fail now, not mid-training, when the smallest trees can never hold an asked relation.
        self.generate(make_generator(seed, "probe"), 1, min_people=min_people, max_people=min_people)

    def _check(self, min_people: int, max_people: int) -> None:
        check_at_least("FamilyTreeTask", "min_people", min_people, 2)
        check_order("FamilyTreeTask", "min_people", min_people, "max_people", max_people)
        check_order("FamilyTreeTask", "max_people", max_people, "id_space", self.id_space)

    def train_difficulty(self) -> dict[str, Any]:
        return {"min_people": self.min_people, "max_people": self.max_people}

    def test_difficulties(self) -> list[tuple[str, dict[str, Any]]]:
        return [(f"people{p}", {"min_people": p, "max_people": p}) for p in self.test_people]

    def _draw_query(self, generator: torch.Generator, min_people: int, max_people: int) -> _Sequence:
        for _ in range(_FAMILY_TRIES):
            people = _uniform_int(generator, min_people, max_people)
            family = random_family(generator, people, self.id_space, self.max_children)
            options = []  # (relation, [(a, b), ...] where b is a's only such relative)
            for relation in self.relations:
                pairs = [(a, next(iter(kin))) for a, kin in enumerate(relatives(family, relation)) if len(kin) == 1]
                if pairs:
                    options.append((relation, pairs))
            if options:
                break
        else:
            raise ConfigError(
                f"FamilyTreeTask: no family of {min_people} to {max_people} people in {_FAMILY_TRIES} draws had a "
                f"unique relative for relations {self.relations}; raise min_people or ask other relations."
            )
        relation, pairs = options[_uniform_int(generator, 0, len(options) - 1)]
        a, b = pairs[_uniform_int(generator, 0, len(pairs) - 1)]
        label, ids = FAMILY_RELATIONS.index(relation), family.ids
        facts = _shuffled(generator, family_facts(family))
        return _Sequence(facts, [(ids[a], label, None)], [(ids[a], label, ids[b])])

    def generate(self, generator: torch.Generator, batch_size: int, min_people: int = 8, max_people: int = 12) -> Batch:
        """One batch of ``batch_size`` trees, each with one query and one scored answer step."""
        self._check(min_people, max_people)
        return self.encode([self._draw_query(generator, min_people, max_people) for _ in range(batch_size)])
