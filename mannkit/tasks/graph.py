"""Graph tasks of the Differentiable Neural Computer paper (Graves et al., 2016): traversal, shortest path
and family-tree inference, as generated sequence tasks.

This module gathers them; they live by family in :mod:`mannkit.tasks.graph_base` (graphs, walks,
shortest paths, the shared layout), :mod:`mannkit.tasks.graph_paths` (traversal, shortest path) and
:mod:`mannkit.tasks.family_tree`.

The channel layout and the four phases of a sequence are described in :mod:`mannkit.tasks.graph_base`.

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
