"""Relation Networks (Santoro et al. 2017): ``o = f_phi(sum_{i,j} g_theta(x_i, x_j, q))``, and an RN for bAbI.

Shape letters: B batch, N objects (story sentences), E object width, C question width, G width of
g's layers, O output width; for bAbI: L words per sentence, Q question words, V vocabulary, A answers,
M the most recent sentences kept.

``g_theta`` sees every ordered pair of objects and the question. Its first layer is linear in the
concatenation ``[x_i; x_j; q]``, so it is computed as ``U x_i + V x_j + Z q`` (three small products
broadcast to ``[B, N, N, G]`` instead of building ``[B, N, N, 2E + C]``); the pairs are summed over
the objects in use only.

>>> import torch
>>> rn = RelationNetwork(object_size=3, query_size=2, output_size=4, g_layers=[5, 5], f_layers=[6])
>>> rn(torch.zeros(2, 7, 3), torch.zeros(2, 2)).shape
torch.Size([2, 4])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError

__all__ = ["RelationNetwork", "mlp", "check_widths", "check_dropout"]


def check_widths(owner: str, name: str, widths: list[int], allow_empty: bool = False) -> None:
    """Raise a one-sentence :class:`ConfigError` unless ``widths`` is a list of positive integers (non-empty unless allowed)."""
    if not isinstance(widths, (list, tuple)) or (not widths and not allow_empty) or any(
        isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths
    ):
        kind = "a list" if allow_empty else "a non-empty list"
        raise ConfigError(f"{owner}: {name} must be {kind} of positive integers, got {widths!r}; e.g. [256, 256].")


def check_dropout(owner: str, dropout: float) -> None:
    """Raise a one-sentence :class:`ConfigError` unless ``0 <= dropout < 1``."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"{owner}: dropout must be in [0, 1), got {dropout!r}; use e.g. 0.5, or 0 for none.")


def mlp(sizes: list[int], final_activation: bool) -> nn.Sequential:
    """Linear layers ``sizes[0] -> sizes[1] -> ...`` with ReLU between them (and after the last if asked).

    >>> mlp([3, 4, 2], final_activation=False)
    Sequential(
      (0): Linear(in_features=3, out_features=4, bias=True)
      (1): ReLU()
      (2): Linear(in_features=4, out_features=2, bias=True)
    )
    """
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if final_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RelationNetwork(nn.Module):
    """``o = f_phi(sum_{i,j} g_theta(x_i, x_j, q))`` over the objects in use.

    Args:
        object_size: E.
        query_size: C (0 for an RN without a question).
        output_size: O, the width of ``f_phi``'s last (linear) layer.
        g_layers: widths of ``g_theta``'s layers (ReLU after each), e.g. the paper's ``[256] * 4``.
        f_layers: hidden widths of ``f_phi`` before its last layer (ReLU after each).
        dropout: dropout before ``f_phi``'s last layer, in training only (the paper: 0.5 on bAbI).
    """

    def __init__(self, object_size: int, query_size: int, output_size: int, g_layers: list[int], f_layers: list[int],
                 dropout: float = 0.0) -> None:
        super().__init__()
        check_widths("RelationNetwork", "g_layers", g_layers)
        check_widths("RelationNetwork", "f_layers", f_layers, allow_empty=True)
        check_dropout("RelationNetwork", dropout)
        G = g_layers[0]
        self.first_i = nn.Linear(object_size, G)  # U x_i (+ the first layer's bias)
        self.first_j = nn.Linear(object_size, G, bias=False)  # V x_j
        self.first_q = nn.Linear(query_size, G, bias=False) if query_size else None  # Z q
        self.g_rest = mlp(list(g_layers), final_activation=True)  # g_theta's layers after the first
        widths = [g_layers[-1], *f_layers]
        self.f_hidden = mlp(widths, final_activation=True) if f_layers else nn.Sequential()
        self.dropout = nn.Dropout(dropout)
        self.f_out = nn.Linear(widths[-1], output_size)

    def forward(self, objects: Tensor, query: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """``objects [B, N, E]``, ``query [B, C]``, ``mask`` bool ``[B, N]`` (True = in use) -> ``[B, O]``."""
        first = self.first_i(objects).unsqueeze(2) + self.first_j(objects).unsqueeze(1)  # U x_i + V x_j: [B, N, N, G]
        if self.first_q is not None:
            first = first + self.first_q(query)[:, None, None, :]  # + Z q: [B, 1, 1, G]
        pairs = self.g_rest(torch.relu(first))  # g_theta(x_i, x_j, q): [B, N, N, G']
        if mask is not None:
            both = (mask.unsqueeze(2) & mask.unsqueeze(1)).unsqueeze(-1)  # pair (i, j) in use: [B, N, N, 1]
            pairs = pairs * both.to(pairs.dtype)
        relations = pairs.sum(dim=(1, 2))  # sum_{i,j}: [B, G']
        return self.f_out(self.dropout(self.f_hidden(relations)))  # f_phi: [B, O]
