"""A head that writes the edges of a graph memory: from the nodes it addresses to the nodes it addresses.

Shape letters: B batch, h heads of the bank, N nodes, P one addressing's parameters.

Each head addresses a source weighting s and a target weighting t with its addressing (one call
over 2h rows, so the two share the addressing and are vectorised), and an erase and an add strength
(sigmoids), then calls ``memory.write_edges`` (:func:`~mannkit_relational.graph_memory.write_edges`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Addressing, Head, HeadOutput, Memory, State
from mannkit.core.registry import register

__all__ = ["EdgeWriteHead"]


@register
class EdgeWriteHead(Head):
    """``count`` heads that each write an edge bundle ``s t^T`` (erase then add) into a graph memory with written edges.

    P = 2 * (the addressing's P) + 2: the source's and the target's addressing parameters, the
    erase and the add strengths.

    Args:
        addressing: how source and target nodes are found (e.g. ContentAddressing).
        count: the heads in this bank.
    """

    stage = 0
    needs = ("write_edges",)

    def __init__(self, addressing: Addressing, count: int = 1) -> None:
        super().__init__()
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"EdgeWriteHead: count must be a positive integer, got {count!r}; set count to 1 or more.")
        if not isinstance(addressing, Addressing):
            raise ConfigError(
                f"EdgeWriteHead: addressing must be an Addressing component, got {type(addressing).__name__}; "
                "give a class_path such as ContentAddressing."
            )
        self.addressing, self._count = addressing, count

    @property
    def count(self) -> int:
        return self._count

    def bind(self, memory: Memory) -> None:
        if not callable(getattr(memory, "write_edges", None)):
            raise ConfigError(
                f"EdgeWriteHead needs a memory with write_edges (a GraphMemory), but the memory is {type(memory).__name__}; "
                "use a GraphMemory with edges: written."
            )
        if getattr(memory, "edges", "written") != "written":
            raise ConfigError(
                f"EdgeWriteHead: the GraphMemory's edges are {memory.edges}, so they cannot be written; "
                "set the memory's edges to written."
            )
        self.addressing.bind(memory)

    def param_size(self, memory: Memory) -> int:
        return 2 * self.addressing.param_size(memory) + 2

    def initial_state(self, batch_size: int, memory: Memory, device: torch.device, dtype: torch.dtype) -> State:
        return self.addressing.initial_state(batch_size, 2 * self._count, memory, device, dtype)  # sources then targets

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, h, 2P + 2]`` -> the memory state with the edges written."""
        h = params.shape[1]
        P = (params.shape[-1] - 2) // 2
        source, target, strengths = params.split([P, P, 2], dim=-1)  # [B, h, P], [B, h, P], [B, h, 2]
        weights, state = self.addressing(torch.cat([source, target], dim=1), memory_state, state)  # [B, 2h, N]
        s, t = weights.split(h, dim=1)  # [B, h, N] each
        erase, add = torch.sigmoid(strengths).unbind(-1)  # [B, h] each
        memory_state = memory.write_edges(s, t, erase, add, memory_state)
        return HeadOutput(None, memory_state, state, {"source_weights": s, "target_weights": t} if record else {})
