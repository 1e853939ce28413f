"""How the conformance kit builds this plugin's components (at the kit's distinct sizes where they fit)."""

from __future__ import annotations

from mannkit.cell import MemoryCell
from mannkit.nn import ContentAddressing, MLPController, ReadHead, WriteHead
from mannkit.testing import SIZES, register_example
from mannkit_relational.graph_heads import EdgeWriteHead
from mannkit_relational.graph_memory import GraphMemory
from mannkit_relational.model import RelationalMemoryModel
from mannkit_relational.rmc import RelationalMemoryCore
from mannkit_relational.rn_qa import RelationNetworkQA


def _core() -> RelationalMemoryCore:
    """N = 7 slots of W = 12 (the kit's W = 11 is not divisible by 3 heads), K = 5."""
    return RelationalMemoryCore(slots=SIZES.N, word_size=12, num_heads=3, key_size=5)


def _written_graph() -> GraphMemory:
    return GraphMemory(slots=SIZES.N, word_size=SIZES.W, edges="written")


def _edge_harness(head: EdgeWriteHead) -> MemoryCell:
    """The edge head, a content write head (which runs the message passing) and a bank of read heads."""
    return MemoryCell(MLPController(SIZES.H, activation="tanh"), _written_graph(),
                      [head, WriteHead(ContentAddressing()), ReadHead(ContentAddressing(), count=SIZES.h)])


register_example(RelationalMemoryCore, _core)
register_example(RelationalMemoryModel, lambda: RelationalMemoryModel(_core(), output_layers=[6]))
register_example(EdgeWriteHead, lambda: EdgeWriteHead(ContentAddressing(), count=SIZES.h), harness=_edge_harness,
                 memory=_written_graph)
register_example(RelationNetworkQA, lambda: RelationNetworkQA(embedding_dim=6, lstm_size=8, g_layers=[9, 10], f_layers=[12],
                                                              memory_size=5))
