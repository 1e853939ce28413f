"""Dynamic Memory Networks plugin, DMN+ (Xiong, Merity & Socher 2016).

Loaded through the entry point ``dmn = "mannkit_dmn"``; importing it registers its classes:

- :class:`DMNPlus` (a QAModel): input fusion, question GRU, episodic passes, answer classifier;
- :class:`FactMemory` (a Memory): DMN+'s input fusion layer, facts loaded from a story;
- :class:`InteractionAddressing` (an Addressing): the interaction-feature attention gates over facts;
- :class:`AttentionGRUHead` (a Head): the attention GRU, a soft-gated sequential read with any addressing.

Each equation of the paper is a pure function here (:func:`interaction_features`, :func:`gate_scores`,
:func:`attention_gates`, :func:`attention_gru`, :func:`attention_gru_update`, :func:`fuse_directions`,
:func:`memory_update`).
"""

from mannkit_dmn.addressing import InteractionAddressing, attention_gates, gate_scores, interaction_features
from mannkit_dmn.episode import AttentionGRUHead, attention_gru, attention_gru_update, steps_in_use
from mannkit_dmn.harness import FactTagger
from mannkit_dmn.memory import FactMemory, FactState, fuse_directions, reverse_within, story_lengths
from mannkit_dmn.model import DMNPlus, last_state, memory_update

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

__all__ = [
    "MANNKIT_API",
    "AttentionGRUHead",
    "DMNPlus",
    "FactMemory",
    "FactState",
    "FactTagger",
    "InteractionAddressing",
    "attention_gates",
    "attention_gru",
    "attention_gru_update",
    "fuse_directions",
    "gate_scores",
    "interaction_features",
    "last_state",
    "memory_update",
    "reverse_within",
    "steps_in_use",
    "story_lengths",
]
