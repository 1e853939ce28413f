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
import torch.nn.functional as F
from torch import Tensor, nn

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.interfaces import Memory
from mannkit.core.registry import register
from mannkit.nn.text import encode_sentences, position_coefficients, position_form

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

#: The standard deviation of every weight at initialisation: N(0, 0.1) (sec. 4.2 of the paper).
INIT_STD = 0.1


class StoryState(NamedTuple):
    """One hop's view of a story."""

    memory: Tensor
    """The keys, input memories ``m_i`` ``[B, N, D]``."""
    values: Tensor
    """The output memories ``c_i`` ``[B, N, D]`` that a read returns."""
    mask: Tensor
    """bool ``[B, N]``, True where a slot holds a sentence."""


def _word_ids(story: Tensor) -> Tensor:
    """Word ids ``[..., L]`` of a story given as ids, or, for word distributions ``[..., L, V]``, 1 where a word is."""
    if story.is_floating_point():
        return (story.abs().sum(-1) > 0).long()  # soft words: every position with any mass is a word
    return story


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


#: Above this many entries (sentences x vocabulary) :func:`embed_sentences` uses ``embedding_bag`` instead of a dense bag matrix.
DENSE_BAG_LIMIT = 1 << 22


def word_weights(words: Tensor, position: bool | str = True, dtype: torch.dtype = torch.float32, dim: int | None = None) -> Tensor:
    """The weight of each word in the bags of :func:`word_bags`: ``[2, S, L]`` (``a_j``, ``b_j`` of
    :func:`mannkit.nn.text.position_coefficients`, so that ``l_kj = a_j - (k/D) b_j``) with the position
    encoding, else ``[1, S, L]`` (1 per word); 0 at padding.

    Args:
        words: word ids ``[S, L]``.
        position: True or ``code`` (the original code's form), ``paper`` (the printed form), False (none).
        dim: D, the embedding width (the ``code`` form's ``a_j`` depends on it; needed for that form).
    """
    form = position_form(position, default="code")
    if form is None:
        return words.ne(0).to(dtype).unsqueeze(0)  # [1, S, L]
    if form == "code" and dim is None:
        raise ValueError("word_weights: the code form of the position encoding needs dim (D, the embedding width).")
    return torch.stack(position_coefficients(words, dim, form, dtype))  # [2, S, L]


def word_bags(words: Tensor, vocab_size: int, position: bool | str = True, dtype: torch.dtype = torch.float32,
              dim: int | None = None) -> Tensor:
    """Each sentence as weighted word counts over the vocabulary, so that ``bags @ A`` embeds every sentence.

    With the position encoding ``l_kj = a_j - (k/D) b_j`` a sentence is
    ``sum_j a_j A x_j - (k/D) sum_j b_j A x_j``: two bags, weighted by ``a_j`` and ``b_j``
    (:func:`word_weights`); without it, one bag of counts. Padding (id 0) weighs 0.

    Args:
        words: word ids ``[..., L]`` (0 = padding, the words of a sentence first); S sentences in all.
        vocab_size: V.
        position: True or ``code``, ``paper``: two position-weighted bags; False: one bag of counts.
        dim: D, the width of the table the bags will multiply (needed for the ``code`` form).

    Returns:
        ``[G, S, V]`` with G = 2 (position) or 1.

    >>> word_bags(torch.tensor([[2, 1, 0]]), 3, position="paper").tolist()   # J = 2: weights 1/2, 0 and 0, -1
    [[[0.0, 0.0, 0.5]], [[0.0, -1.0, 0.0]]]
    """
    flat = words.reshape(-1, words.shape[-1])  # [..., L] -> [S, L], one row per sentence
    weights = word_weights(flat, position, dtype, dim)  # [G, S, L]
    index = flat.unsqueeze(0).expand(weights.shape[0], -1, -1)  # [G, S, L]
    return torch.zeros(weights.shape[0], flat.shape[0], vocab_size, device=words.device, dtype=dtype).scatter_add_(-1, index, weights)


def embed_sentences(words: Tensor, table: Tensor, position: bool | str = True, bags: Tensor | None = None) -> Tensor:
    """``sum_j l_j * A x_j`` for word ids, without an ``[..., L, D]`` intermediate.

    The same numbers as :func:`mannkit.nn.text.encode_sentences` of the looked-up embeddings,
    computed as ``word_bags(words) @ A`` (one dense product forward and backward, several times
    faster than the gather on CPU), or with ``embedding_bag`` for a vocabulary too large for the
    dense bags.

    Args:
        words: word ids ``[..., L]``.
        table: A, ``[V, D]``.
        position: the position encoding: True or ``code``, ``paper``; False for a plain bag of words.
        bags: :func:`word_bags` of ``words`` if already made (hops share them).

    Returns:
        ``[..., D]``.
    """
    L, (V, D) = words.shape[-1], table.shape
    k = torch.arange(1, D + 1, device=words.device, dtype=table.dtype) / D  # k / D, [D]
    if bags is None and words.numel() // L * V > DENSE_BAG_LIMIT:
        flat = words.reshape(-1, L)  # [S, L]
        if position_form(position) is None:
            return F.embedding_bag(flat, table, mode="sum", padding_idx=0).reshape(*words.shape[:-1], D)  # [S, D] -> [..., D]
        weights = word_weights(flat, position, table.dtype, D)  # [2, S, L]
        first, second = (F.embedding_bag(flat, table, per_sample_weights=w, mode="sum", padding_idx=0) for w in weights)
        return (first - k * second).reshape(*words.shape[:-1], D)  # [S, D] -> [..., D]
    bags = word_bags(words, V, position, table.dtype, D) if bags is None else bags
    sums = bags @ table  # [G, S, V] @ [V, D] -> [G, S, D]
    out = sums[0] - k * sums[1] if bags.shape[0] == 2 else sums[0]  # [S, D]
    return out.reshape(*words.shape[:-1], D)  # [S, D] -> [..., D]


class SentenceEncoder(nn.Module):
    """One embedding of sentences: a word table (``A``, ``B`` or ``C`` of the paper, ``[V, D]``) and,
    with ``slots``, a temporal table (``T_A`` or ``T_C``, ``[slots, D]``), both drawn from N(0, 0.1).

    Hops share encoders by holding the same instance (weight tying).

    Args:
        vocab_size: V, words in the vocabulary (row 0, padding, is never used).
        dim: D, the embedding width.
        slots: rows of the temporal table (0 for no temporal encoding).
        position: the position encoding: True or ``code`` (the original code's form), ``paper`` (the
            printed form); False for a bag of words.
    """

    def __init__(self, vocab_size: int, dim: int, slots: int = 0, position: bool | str = True) -> None:
        super().__init__()
        self.position = position_form(position, default="code")  # "code", "paper" or None
        self.words = nn.Parameter(torch.randn(vocab_size, dim) * INIT_STD)  # A (or B, C): [V, D]
        self.time = nn.Parameter(torch.randn(slots, dim) * INIT_STD) if slots else None  # T_A (or T_C): [slots, D]

    def forward(self, words: Tensor, times: Tensor | None = None, bags: Tensor | None = None) -> Tensor:
        """``sum_j l_j * A x_j (+ T_A(t))``.

        Args:
            words: word ids ``[..., L]``, or word distributions ``[..., L, V]`` (soft one-hot words,
                each row with any mass counting as a word).
            times: int64 indices ``[...]`` into the temporal table (ignored without one).
            bags: :func:`word_bags` of ``words`` (ids only) if already made; encoders of one story share them.

        Returns:
            ``[..., D]``.
        """
        if words.is_floating_point():
            embedded = words @ self.words  # [..., L, V] @ [V, D] -> [..., L, D]
            sentences = encode_sentences(embedded, _word_ids(words), self.position or False)  # [..., D]
        else:
            sentences = embed_sentences(words, self.words, self.position or False, bags)  # [..., D]
        if self.time is not None and times is not None:
            sentences = sentences + self.time[times]  # + T_A(i): [...] indices -> [..., D]
        return sentences


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
    ) -> None:
        super().__init__()
        _check_int("StoryMemory", "slots", slots, 1)
        _check_int("StoryMemory", "word_size", word_size, 1)
        _check_noise("StoryMemory", random_noise)
        _check_position("StoryMemory", position_encoding)
        self.slots, self._word_size = slots, word_size
        self.position_encoding, self.temporal_encoding = position_encoding, temporal_encoding
        self.random_noise = float(random_noise)
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
            self.keys = SentenceEncoder(vocab_size, self._word_size, time_rows, self.position_encoding)
            self.values = SentenceEncoder(vocab_size, self._word_size, time_rows, self.position_encoding)

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
                                          self._word_size)  # [G, S, V]
        rows, words = cache["rows"], cache["words"]
        B, N = mask.shape
        encoded = []
        for encoder in (self.keys, self.values):
            if id(encoder) not in cache:
                packed = encoder(words, cache.get("times"), cache.get("bags"))  # [S, D]
                empty = packed.new_zeros(B * N, packed.shape[-1])  # empty slots hold zeros
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
