"""Graph-structured memory: N node slots with soft edges, updated by message passing after every write.

Shape letters: B batch, N nodes (memory slots), W node width (word size), h heads of one bank,
F message width.

The state is :class:`GraphState`: node states ``memory [B, N, W]`` (named so, like a matrix memory's,
so every addressing reads it) and edge weights ``adjacency [B, N, N]`` (``e_ij`` from node i to j).
Heads use the matrix memory's operations, so the core ``ReadHead``/``WriteHead`` (and any head
that needs ``read``/``write``) fit:

- ``read(w, state)``: ``r = w H``;
- ``write(w, e, a, state)``: the NTM erase/add on the nodes, then ``rounds`` rounds of message
  passing (Gilmer et al. 2017; Battaglia et al. 2018) with
  ``m_ij = M(h_i, h_j, e_ij) = tanh(P h_i + Q h_j + u e_ij + b)`` (F numbers),
  ``h_i' = U(h_i, sum_j e_ij m_ij)`` (a GRU cell, ``h_i + tanh(Linear([h_i; sum_j e_ij m_ij]))``, or that
  residual gated per node and feature, ``h_i + sigmoid(G [h_i; m_i] + g) * tanh(Linear([h_i; m_i]))`` with g
  starting at ``gate_bias``);
  with ``aggregate: mean`` the sum is divided by the node's degree, ``max(1, sum_j e_ij)``;
- ``write_edges(s, t, e, a, state)`` (for :class:`~mannkit_relational.graph_heads.EdgeWriteHead`): edges
  from the nodes a head addresses with ``s`` to those it addresses with ``t`` are erased by e and
  added to by a, ``E' = E * prod_h(1 - e_h s_h t_h^T) + sum_h a_h s_h t_h^T``.

Edges are either ``learned`` (a soft adjacency from the node states, recomputed each round:
``e_ij = sigmoid((K_1 h_i) . (K_2 h_j) / sqrt(W) + c)``) or ``written`` (the state's adjacency,
empty at the start, written by edge heads). ``describe`` gives both tensors for ``MemoryPictures``.

>>> import torch
>>> from mannkit.cell import MemoryCell
>>> from mannkit.nn import ContentAddressing, LSTMController, ReadHead, WriteHead
>>> cell = MemoryCell(LSTMController(8), GraphMemory(slots=5, word_size=4, rounds=2),
...                   [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])
>>> cell.bind(input_size=3, output_size=2)
>>> out = cell(torch.zeros(2, 6, 3), record=True)
>>> out.logits.shape, out.trace["adjacency"].shape
(torch.Size([2, 6, 2]), torch.Size([2, 6, 5, 5]))
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Memory
from mannkit.core.registry import register
from mannkit.nn.memory import erase_add, read

__all__ = ["GraphMemory", "GraphState", "gated_update", "messages", "write_edges"]


class GraphState(NamedTuple):
    memory: Tensor  # node states H, [B, N, W]
    adjacency: Tensor  # edge weights E, [B, N, N] (written, or the last learned soft adjacency)


def messages(sender: Tensor, receiver: Tensor, edge_weight: Tensor, adjacency: Tensor, mean: bool = False) -> Tensor:
    """``sum_j e_ij m_ij`` with ``m_ij = tanh(P h_i + Q h_j + u e_ij + b)``, from the three terms already projected.

    With ``mean`` the sum is divided by node i's degree floored at 1, ``max(1, sum_j e_ij)``: every
    feature of the aggregate then stays in [-1, 1] however many nodes link to i, so one round's gain does
    not grow with the number of soft edges (a learned adjacency starts near 0.5 between all N nodes). The
    floor of 1 keeps a node with few or no edges at the plain sum (no division by a vanishing degree).

    Args:
        sender: ``P h_i + b``, ``[B, N, F]`` (row i of the edge).
        receiver: ``Q h_j``, ``[B, N, F]``.
        edge_weight: u, ``[F]``.
        adjacency: E, ``[B, N, N]``.

    Returns:
        ``[B, N, F]``, the message each node i aggregates.

    >>> E = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    >>> messages(torch.zeros(1, 2, 1), torch.ones(1, 2, 1), torch.zeros(1), E)  # only 0 -> 1 carries tanh(1)
    tensor([[[0.7616],
             [0.0000]]])
    """
    m = torch.tanh(sender.unsqueeze(2) + receiver.unsqueeze(1) + adjacency.unsqueeze(-1) * edge_weight)  # m_ij: [B, N, N, F]
    total = torch.einsum("bij,bijf->bif", adjacency, m)  # sum_j e_ij m_ij: [B, N, F]
    if mean:
        total = total / adjacency.sum(-1, keepdim=True).clamp(min=1.0)  # / max(1, sum_j e_ij): [B, N, 1]
    return total


def write_edges(adjacency: Tensor, source: Tensor, target: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """``E' = E * prod_h(1 - e_h s_h t_h^T) + sum_h a_h s_h t_h^T``.

    Args:
        adjacency: E, ``[B, N, N]``.
        source: s, ``[B, h, N]``.
        target: t, ``[B, h, N]``.
        erase: e in [0, 1], ``[B, h]``.
        add: a in [0, 1], ``[B, h]``.

    >>> s, t = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 1.0]]])
    >>> write_edges(torch.zeros(1, 2, 2), s, t, torch.zeros(1, 1), torch.ones(1, 1))
    tensor([[[0., 1.],
             [0., 0.]]])
    """
    outer = source.unsqueeze(-1) * target.unsqueeze(-2)  # s_h t_h^T: [B, h, N, N]
    keep = (1 - erase[..., None, None] * outer).prod(dim=1)  # [B, N, N]
    return adjacency * keep + (add[..., None, None] * outer).sum(dim=1)


def gated_update(nodes: Tensor, projected: Tensor) -> Tensor:
    """``h' = h + sigmoid(z_g) * tanh(z_c)`` with ``[z_c | z_g] = Linear([h; m])``: a residual update gated per node and feature.

    Args:
        nodes: h, ``[B, N, W]``.
        projected: ``[z_c | z_g]``, ``[B, N, 2W]``.

    Returns:
        h', ``[B, N, W]``.

    >>> gated_update(torch.zeros(1, 1, 2), torch.tensor([[[10.0, 10.0, 0.0, -100.0]]]))  # gate 0.5, then shut
    tensor([[[0.5000, 0.0000]]])
    """
    candidate, gate = projected.chunk(2, dim=-1)  # z_c, z_g: [B, N, W] each
    return torch.addcmul(nodes, torch.sigmoid(gate), torch.tanh(candidate))


@register
class GraphMemory(Memory):
    """N nodes of W numbers with soft edges, updated by ``rounds`` rounds of message passing after each write.

    Args:
        slots: N, the nodes.
        word_size: W, the width of a node state.
        rounds: message-passing rounds after each write (at least 1).
        edges: ``learned`` (a soft adjacency from the node states) or ``written`` (by EdgeWriteHead).
        message_size: F, the width of a message.
        update: the node update U: ``gru`` (a GRU cell, input the aggregated message), ``residual``
            (``h + tanh(Linear([h; sum_j e_ij m_ij]))``) or ``gated`` (``h + sigmoid(G [h; m] + g) * tanh(Linear([h; m]))``,
            :func:`gated_update`: with the gate starting nearly closed the memory starts nearly as a matrix memory,
            and each node opens its own gate only where passing messages pays).
        gate_bias: g's initial value for ``update: gated`` (default -5: sigmoid(-5) = 0.007).
        init_std: the scale of the learned initial node states (a shared ``[N, W]`` matrix).
        update_init: ``random`` (PyTorch's default initialisation of U) or ``identity`` (with
            ``update: residual`` only: U's linear layer starts at zero, so ``h' = h + tanh(0) = h`` and the
            memory starts as a plain matrix memory that keeps what is written; how much to pass along
            the edges is learned. With random U every round rewrites every node from the first step on).
        aggregate: ``sum`` (``sum_j e_ij m_ij``) or ``mean`` (that sum divided by ``max(1, sum_j e_ij)``, so a
            round's gain does not grow with the number of linked nodes; see :func:`messages`).
    """

    def __init__(self, slots: int = 16, word_size: int = 16, rounds: int = 1,
                 edges: Literal["learned", "written"] = "learned", message_size: int = 16,
                 update: Literal["gru", "residual", "gated"] = "gru", init_std: float = 0.5,
                 update_init: Literal["random", "identity"] = "random",
                 aggregate: Literal["sum", "mean"] = "sum", gate_bias: float = -5.0) -> None:
        super().__init__()
        for name, value in (("slots", slots), ("word_size", word_size), ("message_size", message_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"GraphMemory: {name} must be a positive integer, got {value!r}; set {name} to 1 or more.")
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ConfigError(
                f"GraphMemory: rounds must be a positive integer, got {rounds!r}; set rounds to 1 or more "
                "(a graph memory without message passing is a MatrixMemory)."
            )
        if edges not in ("learned", "written"):
            raise ConfigError(f"GraphMemory: edges must be learned or written, got {edges!r}; pick one of those.")
        if update not in ("gru", "residual", "gated"):
            raise ConfigError(f"GraphMemory: update must be gru, residual or gated, got {update!r}; pick one of those.")
        if isinstance(gate_bias, bool) or not isinstance(gate_bias, (int, float)) or not math.isfinite(gate_bias):
            raise ConfigError(f"GraphMemory: gate_bias must be a finite number, got {gate_bias!r}; set it to e.g. -5.")
        if update_init not in ("random", "identity"):
            raise ConfigError(f"GraphMemory: update_init must be random or identity, got {update_init!r}; pick one of those.")
        if aggregate not in ("sum", "mean"):
            raise ConfigError(f"GraphMemory: aggregate must be sum or mean, got {aggregate!r}; pick one of those.")
        if update_init == "identity" and update != "residual":
            raise ConfigError(
                f"GraphMemory: update_init identity needs update: residual, got update {update!r}; a GRU cannot start as "
                "the identity, so set update to residual or update_init to random."
            )
        self.slots, self._word_size, self.rounds, self.edges, self.update = slots, word_size, rounds, edges, update
        W, F = word_size, message_size
        self.initial = nn.Parameter(torch.randn(slots, W) * init_std / math.sqrt(W))  # H_0, [N, W]
        self.sender = nn.Linear(W, F)  # P h_i + b
        self.receiver = nn.Linear(W, F, bias=False)  # Q h_j
        self.edge_weight = nn.Parameter(torch.randn(F) * 0.1)  # u
        if update == "gru":
            self.node_update: nn.Module = nn.GRUCell(F, W)
        elif update == "gated":  # [candidate | gate] from [h; m]
            self.node_update = nn.Linear(W + F, 2 * W)
            with torch.no_grad():
                self.node_update.bias[W:].fill_(float(gate_bias))
        else:
            self.node_update = nn.Linear(W + F, W)
            if update_init == "identity":  # h' = h + tanh(0 [h; m] + 0) = h until training moves U
                nn.init.zeros_(self.node_update.weight)
                nn.init.zeros_(self.node_update.bias)
        self.update_init, self.aggregate = update_init, aggregate
        if edges == "learned":
            self.edge_keys = nn.Linear(W, 2 * W, bias=False)  # K_1, K_2 stacked
            self.edge_bias = nn.Parameter(torch.zeros(()))  # c
        else:
            self.edge_keys, self.edge_bias = None, None

    @property
    def word_size(self) -> int:
        return self._word_size

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> GraphState:
        nodes = self.initial.to(device=device, dtype=dtype).expand(batch_size, -1, -1)  # [N, W] -> [B, N, W]
        return GraphState(nodes, torch.zeros(batch_size, self.slots, self.slots, device=device, dtype=dtype))

    def learned_adjacency(self, nodes: Tensor) -> Tensor:
        """``e_ij = sigmoid((K_1 h_i) . (K_2 h_j) / sqrt(W) + c)``: ``[B, N, W] -> [B, N, N]``."""
        k1, k2 = self.edge_keys(nodes).split(self._word_size, dim=-1)  # [B, N, W] each
        return torch.sigmoid(torch.bmm(k1, k2.mT) / math.sqrt(self._word_size) + self.edge_bias)

    def propagate(self, state: GraphState) -> GraphState:
        """``rounds`` rounds of ``h_i' = U(h_i, sum_j e_ij M(h_i, h_j, e_ij))``."""
        nodes, adjacency = state
        B, N, W = nodes.shape
        for _ in range(self.rounds):  # rounds, not batch or nodes
            if self.edges == "learned":
                adjacency = self.learned_adjacency(nodes)
            incoming = messages(self.sender(nodes), self.receiver(nodes), self.edge_weight, adjacency,
                                mean=self.aggregate == "mean")  # [B, N, F]
            if self.update == "gru":
                nodes = self.node_update(incoming.reshape(B * N, -1), nodes.reshape(B * N, W)).view(B, N, W)  # rows as a batch
            elif self.update == "gated":
                nodes = gated_update(nodes, self.node_update(torch.cat([nodes, incoming], dim=-1)))
            else:
                nodes = nodes + torch.tanh(self.node_update(torch.cat([nodes, incoming], dim=-1)))
        return GraphState(nodes, adjacency)

    def read(self, weights: Tensor, state: GraphState) -> Tensor:
        """``weights [B, h, N]`` -> read vectors ``[B, h, W]`` of the node states."""
        return read(weights, state.memory)

    def write(self, weights: Tensor, erase: Tensor, add: Tensor, state: GraphState) -> GraphState:
        """Erase/add on the nodes (``weights [B, h, N]``, ``erase``/``add`` ``[B, h, W]``), then message passing."""
        return self.propagate(GraphState(erase_add(state.memory, weights, erase, add), state.adjacency))

    def write_edges(self, source: Tensor, target: Tensor, erase: Tensor, add: Tensor, state: GraphState) -> GraphState:
        """Write edges (:func:`write_edges`); the nodes change at the next ``write``."""
        if self.edges != "written":
            raise ConfigError("GraphMemory: edges is learned, so no head can write them; set edges to written to use EdgeWriteHead.")
        return GraphState(state.memory, write_edges(state.adjacency, source, target, erase, add))

    def describe(self, state: GraphState) -> dict[str, Tensor]:
        """Node states ``[B, N, W]`` and the adjacency ``[B, N, N]`` (both drawn as matrices)."""
        return {"nodes": state.memory, "adjacency": state.adjacency}
