"""The story memory of an End-to-End Memory Network (Sukhbaatar et al. 2015, sec. 2.1 and 4.1).

Shape letters: B batch, N sentences (memory slots), L words per sentence, V words in the
vocabulary (id 0 is padding), D embedding width (the memory's word size).

Each sentence ``x_i`` is held twice (eq. 1-2 of the paper):

- as a key, the input memory ``m_i = sum_j l_j * A x_ij + T_A(i)``, which the question attends over;
- as a value, the output memory ``c_i = sum_j l_j * C x_ij + T_C(i)``, which is read.

``l_j`` is the position encoding (:func:`mannkit.nn.text.position_weights`; all ones without it), by
default in the original code's form ``l_kj = 1 + 4 (k - (D+1)/2)(j - (J+1)/2) / (D J)``: with the form the
paper prints, ``(1 - j/J) - (k/D)(1 - 2j/J)`` (``position_encoding: paper``), MemN2N did not learn bAbI
task 16 (50.2% and 53.2% test error on the 1k set alone, seeds 0 and 1, against 0.5% and 0.6% with the code's form).
One difference is kept on purpose: J here is each sentence's own length, where the original code (``build_model.m``)
uses one J for every sentence and question, the longest sentence of the data plus one, and puts its time word in
that last position, so its ``T_A(i)`` are scaled by ``l_kJ`` too. A patched run with the code's fixed J and scaled
time vectors learned task 16 alone as well (0.3%, seed 0) and changed nothing jointly with task 1 (52.1% on task
16, against 53.1-54.0% here); see benchmarks/RESULTS.md.
``T_A``/``T_C`` are the temporal encoding, indexed here by *recency*: 0 for the most recent sentence,
1 for the one before, ... (so the newest sentence has the same time vector in every story).
Random noise (RN, sec. 4.1) inserts empty memories at random while training: each real sentence
is followed by an empty one with probability ``random_noise``, which adds one to the recency of it
and of every older sentence. The empty memories hold nothing, so they are not materialised; only
the shift of the time indices, which is what regularises ``T_A``/``T_C``, is.

Speed: only the real sentences of a batch are embedded (most slots of a padded bAbI batch are
empty), as weighted word counts times the table (:func:`word_bags`, one dense product forward and
backward); the hops of one forward pass share the counts, and tied hops share the embeddings.
Empty slots hold zero vectors, which the mask keeps out of every addressing.

>>> import torch
>>> memory = StoryMemory(slots=4, word_size=6)
>>> memory.bind(vocab_size=9)
>>> state = memory.load(torch.tensor([[[3, 1, 0], [2, 5, 4], [0, 0, 0], [0, 0, 0]]]))  # two sentences
>>> state.memory.shape, state.values.shape, state.mask.tolist()
(torch.Size([1, 4, 6]), torch.Size([1, 4, 6]), [[True, True, False, False]])
>>> recency_index(state.mask).tolist()
[[1, 0, 0, 0]]
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.interfaces import Memory
from mannkit.core.registry import register
from mannkit_memn2n.encoding import (
    DENSE_BAG_LIMIT,
    INIT_STD,
    SentenceEncoder,
    _word_ids,
    embed_sentences,
    word_bags,
    word_weights,
)

__all__ = [
    "INIT_STD",
    "StoryState",
    "StoryMemory",
    "SentenceEncoder",
    "recency_index",
    "most_recent",
    "recent_slots",
    "story_mask",
    "embed_sentences",
    "word_bags",
    "word_weights",
    "DENSE_BAG_LIMIT",
]

class StoryState(NamedTuple):
    """One hop's view of a story."""

    memory: Tensor
    """The keys, input memories ``m_i`` ``[B, N, D]``."""
    values: Tensor
    """The output memories ``c_i`` ``[B, N, D]`` that a read returns."""
    mask: Tensor
    """bool ``[B, N]``, True where a slot holds a sentence."""


def story_mask(story: Tensor) -> Tensor:
    """``[B, N]`` bool, True where a slot holds a sentence (any non-padding word).

    Args:
        story: word ids ``[B, N, L]``, or word distributions ``[B, N, L, V]``.
    """
    return _word_ids(story).ne(0).any(-1)


def recency_index(mask: Tensor, noise: float = 0.0) -> Tensor:
    """Time indices of the temporal encoding: 0 for the most recent sentence, counting back (sec. 4.1).

    With ``noise`` > 0 (random noise, RN), an empty memory follows each real sentence with that
    probability (drawn from torch's global generator), adding one to its index and to every older
    sentence's.

    Args:
        mask: bool ``[B, N]``, True at real sentences (oldest first).
        noise: the probability of an empty memory after each sentence, in [0, 1).

    Returns:
        int64 ``[B, N]``: for sentence i, the number of real sentences after it plus the empty
        memories inserted at or after it; 0 at padded slots.

    >>> recency_index(torch.tensor([[True, True, True, False]])).tolist()
    [[2, 1, 0, 0]]
    """
    real = mask.long()  # [B, N]
    later = real.flip(-1).cumsum(-1).flip(-1) - real  # real sentences after slot i: sum_{j > i} real_j
    if noise > 0:
        gaps = (torch.rand(mask.shape, device=mask.device) < noise).long() * real  # an empty memory after sentence j
        later = later + gaps.flip(-1).cumsum(-1).flip(-1)  # sum_{j >= i} gaps_j
    return later * real


def recent_slots(mask: Tensor, size: int) -> Tensor:
    """The slots of each story's ``size`` most recent sentences, oldest first.

    Args:
        mask: bool ``[B, N]``, True at real sentences (first in each row).
        size: M, the number of slots kept (``M <= N``).

    Returns:
        int64 ``[B, M]`` slot indices (distinct in each row; they run into the empty slots of a story
        with fewer than M sentences).
    """
    start = (mask.sum(-1) - size).clamp_min(0)  # first kept slot, [B]
    return start.unsqueeze(1) + torch.arange(size, device=mask.device)  # [B, M]


def most_recent(story: Tensor, size: int) -> Tensor:
    """Keep each story's ``size`` most recent sentences (the memory size of sec. 4.2), still oldest first.

    Args:
        story: word ids ``[B, N, L]`` (real sentences first, then all-zero slots).
        size: M, the number of sentences kept (``M <= N``).

    Returns:
        ``[B, M, L]``.

    >>> most_recent(torch.tensor([[[1], [2], [3], [0]], [[4], [0], [0], [0]]]), 2)[..., 0].tolist()
    [[2, 3], [4, 0]]
    """
    index = recent_slots(story_mask(story), size)  # [B, M]
    return story.gather(1, index.unsqueeze(-1).expand(-1, -1, story.shape[-1]))  # [B, M] -> [B, M, L] row picks


def _check_int(owner: str, name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{owner}: {name} must be an integer of at least {low}, got {value!r}; set {name} to {low} or more.")


def _check_position(owner: str, value: object) -> None:
    if not (value is True or value is False or value in ("code", "paper")):  # 1 and 0 are not true and false
        raise ConfigError(
            f"{owner}: position_encoding must be true, false, code or paper, got {value!r}; use true (the original "
            "code's form, code) or paper (the form the paper prints)."
        )


def _check_noise(owner: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(
            f"{owner}: random_noise must be a probability in [0, 1), got {value!r}; use 0.1 as the paper, or 0 for none."
        )


@register
class StoryMemory(Memory):
    """A story as keys ``m_i`` and values ``c_i`` (MemN2N's input and output memories), one hop's worth.

    Unlike a matrix memory it is not written step by step: :meth:`load` embeds a whole story,
    and heads only :meth:`read` it (``o = sum_i p_i c_i``, eq. 2). The state's ``mask`` gives padded
    slots zero weight under every addressing. :meth:`bind` creates the embeddings; a model that ties
    weights across hops hands one hop's encoders to another with :meth:`share`.

    Args:
        slots: N, the sentences the memory holds (the rows of the temporal tables).
        word_size: D, the embedding width.
        position_encoding: weight the words of a sentence by their position (sec. 4.1): True or ``code``
            (the original code's form), ``paper`` (the printed form); False for a bag of words.
        temporal_encoding: add a learned vector per recency index to every memory (``T_A``, ``T_C``).
        random_noise: while training, the probability of an empty memory after each sentence (RN); 0 for none.
    """

    def __init__(
        self,
        slots: int = 50,
        word_size: int = 20,
        position_encoding: bool | str = True,
        temporal_encoding: bool = True,
        random_noise: float = 0.0,
        position_length: int | None = None,
        time_scale: bool = False,
        nil_gradient: bool = False,
    ) -> None:
        super().__init__()
        _check_int("StoryMemory", "slots", slots, 1)
        _check_int("StoryMemory", "word_size", word_size, 1)
        _check_noise("StoryMemory", random_noise)
        _check_position("StoryMemory", position_encoding)
        self.slots, self._word_size = slots, word_size
        self.position_encoding, self.temporal_encoding = position_encoding, temporal_encoding
        self.random_noise = float(random_noise)
        self.position_length, self.time_scale, self.nil_gradient = position_length, time_scale, nil_gradient
        self.keys: SentenceEncoder | None = None  # A, T_A
        self.values: SentenceEncoder | None = None  # C, T_C

    @property
    def word_size(self) -> int:
        return self._word_size

    def bind(self, vocab_size: int) -> None:
        """Create the key and value encoders for a vocabulary of V words."""
        _check_int("StoryMemory", "vocab_size", vocab_size, 1)
        if self._bind_once(vocab_size=vocab_size):
            time_rows = self.slots if self.temporal_encoding else 0
            extra = {"position_length": self.position_length, "time_scale": self.time_scale, "nil_gradient": self.nil_gradient}
            self.keys = SentenceEncoder(vocab_size, self._word_size, time_rows, self.position_encoding, **extra)
            self.values = SentenceEncoder(vocab_size, self._word_size, time_rows, self.position_encoding, **extra)

    def share(self, keys: SentenceEncoder | None = None, values: SentenceEncoder | None = None) -> None:
        """Use another hop's encoders (weight tying): ``keys`` replaces A, T_A and ``values`` C, T_C."""
        if keys is not None:
            self.keys = keys
        if values is not None:
            self.values = values

    def times(self, mask: Tensor) -> Tensor:
        """Recency indices ``[B, N]`` for ``mask [B, N]``, with random noise while training (see :func:`recency_index`)."""
        return recency_index(mask, self.random_noise if self.training else 0.0).clamp_max(self.slots - 1)

    def load(self, story: Tensor, times: Tensor | None = None, mask: Tensor | None = None,
             cache: dict | None = None) -> StoryState:
        """Embed a story.

        Args:
            story: word ids ``[B, N, L]`` (N at most ``slots``), or word distributions ``[B, N, L, V]``.
            times: recency indices ``[B, N]`` (default :meth:`times`; hops of one model share one draw).
            mask: bool ``[B, N]`` (default :func:`story_mask`).
            cache: what hops of one forward pass share: the real sentences (``"rows"``, ``"words"``,
                ``"times"``, ``"bags"``, made once) and each encoder's output by encoder id (a tied encoder
                runs once). Start each forward pass with an empty dict.

        Only real sentences are embedded; empty slots hold zero vectors (with no time vector), which
        an addressing never weighs since the mask is False there.

        Returns:
            :class:`StoryState` with ``memory`` and ``values`` ``[B, N, D]`` and ``mask`` ``[B, N]``.
        """
        if self.keys is None or self.values is None:
            raise ConfigError("StoryMemory is not bound; call bind(vocab_size) before load (the model does this).")
        if story.dim() != 3 + story.is_floating_point() or story.shape[1] > self.slots:
            layout = "[B, N, L, V]" if story.is_floating_point() else "[B, N, L]"
            raise ShapeError(
                f"story has shape [{', '.join(map(str, story.shape))}] but {layout} with N <= {self.slots} was expected; "
                "cut stories to the memory size or raise slots."
            )
        mask = story_mask(story) if mask is None else mask
        if times is None and self.temporal_encoding:
            times = self.times(mask)
        cache = {} if cache is None else cache
        if "rows" not in cache:  # only the real sentences are embedded (most slots of a padded batch are empty)
            rows = mask.reshape(-1).nonzero().squeeze(-1)  # [S] indices into the B*N slots
            words = story.reshape(-1, *story.shape[2:])[rows]  # [B, N, L(, V)] -> [S, L(, V)]
            cache.update(rows=rows, words=words)
            if times is not None:
                cache["times"] = times.reshape(-1)[rows]  # [B, N] -> [S]
            vocab = self.keys.words.shape[0]
            if not story.is_floating_point() and words.shape[0] * vocab <= DENSE_BAG_LIMIT:
                cache["bags"] = word_bags(words, vocab, self.position_encoding, self.keys.words.dtype,
                                          self._word_size, self.position_length)  # [G, S, V]
        rows, words = cache["rows"], cache["words"]
        B, N = mask.shape
        encoded = []
        for encoder in (self.keys, self.values):
            if id(encoder) not in cache:
                packed = encoder(words, cache.get("times"), cache.get("bags"))  # [S, D]
                empty = packed.new_zeros(B * N, packed.shape[-1])  # empty slots hold zeros
                nil = encoder.empty_slot() if hasattr(encoder, "empty_slot") else None
                if nil is not None:  # still zeros, with the padding word's gradient (nil_gradient)
                    empty = empty + nil
                cache[id(encoder)] = empty.index_copy(0, rows, packed).view(B, N, -1)  # [S, D] -> [B*N, D] -> [B, N, D]
            encoded.append(cache[id(encoder)])
        return StoryState(encoded[0], encoded[1], mask)

    def read(self, weights: Tensor, state: StoryState) -> Tensor:
        """``o = sum_i p_i c_i`` (eq. 2): ``weights [B, h, N]`` -> ``[B, h, D]``."""
        return torch.bmm(weights, state.values)  # [B, h, N] @ [B, N, D] -> [B, h, D]

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> StoryState:
        """An empty story: zero memories, no slot in use."""
        zeros = torch.zeros(batch_size, self.slots, self._word_size, device=device, dtype=dtype)
        return StoryState(zeros, zeros.clone(), torch.zeros(batch_size, self.slots, dtype=torch.bool, device=device))

    def describe(self, state: StoryState) -> dict[str, Tensor]:
        return {"memory": state.memory, "values": state.values}
