"""Attention addressing plugin: scaled dot-product, multi-head, Linformer and Performer attention as Addressing.

Loaded through the entry point ``attention = "mannkit_attention"``; importing it registers its classes.
Each is an :class:`~mannkit.core.interfaces.Addressing` whose head parameters are the query
(P = W), usable by the core ``ReadHead`` / ``WriteHead`` over a ``MatrixMemory`` and by MemN2N
hops (params ``[B, 1, W]``, keys the input-memory embeddings, a sentence mask). Masked slots
get exactly zero weight.
"""

from mannkit_attention.dot_product import ScaledDotProductAddressing, attention_weights, dot_product_scores
from mannkit_attention.linformer import LinformerAddressing, linformer_weights, mask_projection
from mannkit_attention.multi_head import MultiHeadAddressing, multi_head_weights
from mannkit_attention.performer import (
    PerformerAddressing,
    favor_log_features,
    orthogonal_gaussian,
    performer_weights,
    positive_random_features,
)

from mannkit_attention import _examples  # noqa: F401,E402  (tells the conformance kit to use a random memory)

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

__all__ = [
    "MANNKIT_API",
    "LinformerAddressing",
    "MultiHeadAddressing",
    "PerformerAddressing",
    "ScaledDotProductAddressing",
    "attention_weights",
    "dot_product_scores",
    "favor_log_features",
    "linformer_weights",
    "mask_projection",
    "multi_head_weights",
    "orthogonal_gaussian",
    "performer_weights",
    "positive_random_features",
]
