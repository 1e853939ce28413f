"""Graph tasks of the Differentiable Neural Computer paper (Graves et al., 2016): traversal, shortest path
and family-tree inference, as generated sequence tasks.

This module gathers them; they live by family in :mod:`mannkit.tasks.graph_base` (graphs, walks,
shortest paths, the shared layout), :mod:`mannkit.tasks.graph_paths` (traversal, shortest path) and
:mod:`mannkit.tasks.family_tree`.

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

from mannkit.tasks.family_tree import (
    FAMILY_BASE_RELATIONS,
    FAMILY_DERIVED_RELATIONS,
    FAMILY_RELATIONS,
    Family,
    FamilyTreeTask,
    family_facts,
    random_family,
    relatives,
)
from mannkit.tasks.graph_base import (
    GraphSequence,
    GraphTask,
    Slots,
    Triple,
    decode_triples,
    follow_labels,
    random_graph,
    random_walk,
    unique_shortest_paths,
)
from mannkit.tasks.graph_paths import GraphTraversalTask, ShortestPathTask

__all__ = [
    "Triple",
    "GraphTask",
    "GraphSequence",
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
