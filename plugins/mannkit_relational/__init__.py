"""The relational plugin: the Relational Memory Core, Relation Networks and a graph-structured memory.

Loaded through the entry point ``relational = "mannkit_relational"``; importing it registers:

- :class:`RelationalMemoryCore` (Santoro et al. 2018), a controller for any ``MemoryCell``, and
  :class:`RelationalMemoryModel`, the core alone as a recurrent sequence model;
- :class:`RelationNetwork` (Santoro et al. 2017), a module, and :class:`RelationNetworkQA`, a QA
  model for bAbI trained by ``QASystem``;
- :class:`GraphMemory`, node slots with soft edges and message passing, read and written by the
  core heads (it offers ``read``/``write``), and :class:`EdgeWriteHead`, which writes its edges.

The multi-head attention maths is shared with the attention plugin through :mod:`mannkit.nn.attention`.
"""

from mannkit_relational.graph_heads import EdgeWriteHead
from mannkit_relational.graph_memory import GraphMemory, GraphState
from mannkit_relational.model import RelationalMemoryModel
from mannkit_relational.relation_network import RelationNetwork
from mannkit_relational.rmc import AttentionBlock, RelationalMemoryCore, gated_update, initial_memory
from mannkit_relational.rn_qa import RelationNetworkQA

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

__all__ = [
    "MANNKIT_API",
    "AttentionBlock",
    "EdgeWriteHead",
    "GraphMemory",
    "GraphState",
    "RelationNetwork",
    "RelationNetworkQA",
    "RelationalMemoryCore",
    "RelationalMemoryModel",
    "gated_update",
    "initial_memory",
]

from mannkit_relational import _examples  # noqa: E402,F401  (registers the conformance kit's examples)
