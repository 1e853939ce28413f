"""Shared building blocks used by many plugins: controllers, matrix memory, content addressing, heads,
and the pieces that compose cells (a head on a named memory, a cell as a controller, stacked cells)."""

from mannkit.nn.text import encode_sentences, position_weights
from mannkit.nn.addressing import ContentAddressing, DotProductAddressing, content_weights, cosine_similarity, masked_softmax
from mannkit.nn.controllers import GRUController, LSTMController, LSTMState, MLPController, RNNController
from mannkit.nn.heads import AllocatingWriteHead, ReadHead, WriteHead
from mannkit.nn.memory import MatrixMemory, MatrixState, erase_add, read
from mannkit.nn.cells import CellController, ControllerCell, OnMemory, StackedCells

__all__ = [
    "CellController",
    "ControllerCell",
    "OnMemory",
    "StackedCells",
    "ContentAddressing",
    "DotProductAddressing",
    "GRUController",
    "LSTMController",
    "LSTMState",
    "MLPController",
    "RNNController",
    "MatrixMemory",
    "MatrixState",
    "AllocatingWriteHead",
    "ReadHead",
    "WriteHead",
    "content_weights",
    "masked_softmax",
    "encode_sentences",
    "position_weights",
    "cosine_similarity",
    "erase_add",
    "read",
]
