"""End-to-End Memory Networks plugin (Sukhbaatar et al. 2015).

Loaded through the entry point ``memn2n = "mannkit_memn2n"``; importing it registers its classes:

- :class:`MemN2N` — the QA model (K hops, adjacent or layer-wise tying, PE, TE, RN, linear start);
- :class:`StoryMemory` — a memory holding a story as keys ``m_i`` and values ``c_i``;
- :class:`DotProductAddressing` — ``softmax(u^T m_i)`` with padded slots at 0, raw scores for linear start;
- :class:`HopReadHead` — ``o = sum_i p_i c_i`` through any addressing, over any memory with ``read``;
- :class:`HopController` — ``u^{k+1} = H u^k + o^k`` between hops;
- :class:`LinearStartSchedule` — a callback: linear start as a phase of its own, then the full learning-rate schedule.

It also tells the conformance kit how to check :class:`StoryMemory` (inside a :class:`StoryProbe`).
"""

from mannkit.testing.defaults import register_example
from mannkit_memn2n.hop import DotProductAddressing, HopController, HopReadHead, dot_scores, has_scores, linear_weights
from mannkit_memn2n.memory import (
    SentenceEncoder,
    StoryMemory,
    StoryState,
    most_recent,
    recency_index,
    recent_slots,
    story_mask,
)
from mannkit_memn2n.model import MemN2N, answer_matrix, tied_answer_ids
from mannkit_memn2n.probe import StoryProbe
from mannkit_memn2n.schedule import LinearStartSchedule, restart_schedules

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

register_example(StoryMemory, harness=StoryProbe)

__all__ = [
    "MANNKIT_API",
    "DotProductAddressing",
    "HopController",
    "HopReadHead",
    "LinearStartSchedule",
    "MemN2N",
    "SentenceEncoder",
    "StoryMemory",
    "StoryProbe",
    "StoryState",
    "answer_matrix",
    "tied_answer_ids",
    "dot_scores",
    "has_scores",
    "linear_weights",
    "most_recent",
    "recency_index",
    "recent_slots",
    "restart_schedules",
    "story_mask",
]
