"""How the conformance kit runs this plugin's addressings: over a ``MatrixMemory`` with random rows.

Over the kit's default memory (``init: constant``, every row equal) attention cannot tell the
rows apart: every weighting is uniform, every write adds the same vector to every row, so the
rows stay equal and the gradients of any learned query/key/gate parameters are zero up to
rounding. Random rows make the kit's gradient check mean something.
"""

from __future__ import annotations

from mannkit.nn import MatrixMemory
from mannkit.testing import SIZES, register_example
from mannkit_attention.dot_product import ScaledDotProductAddressing
from mannkit_attention.linformer import LinformerAddressing
from mannkit_attention.multi_head import MultiHeadAddressing
from mannkit_attention.performer import PerformerAddressing


def random_memory() -> MatrixMemory:
    """``MatrixMemory(N, W, init="random")`` at the kit's sizes."""
    return MatrixMemory(slots=SIZES.N, word_size=SIZES.W, init="random")


for _cls in (ScaledDotProductAddressing, MultiHeadAddressing, LinformerAddressing, PerformerAddressing):
    register_example(_cls, memory=random_memory)
