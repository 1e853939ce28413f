"""How MemN2N embeds a sentence (Sukhbaatar et al. 2015, sec. 4.1): ``m_i = sum_j l_j * A x_ij``.

Shape letters: S sentences, L words per sentence, V words in the vocabulary (id 0 is padding),
D embedding width, G bags per sentence (2 with the position encoding, 1 without).

A sentence is embedded as weighted word counts times the table (:func:`word_bags` ``@ A``): one
dense product forward and backward, several times faster on CPU than gathering ``[S, L, D]`` word
vectors; :func:`embed_sentences` switches to ``embedding_bag`` for a vocabulary too large for
dense bags. :class:`SentenceEncoder` holds one table (``A``, ``B`` or ``C``) and its temporal table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mannkit.nn.text import encode_sentences, position_coefficients, position_form

__all__ = ["INIT_STD", "DENSE_BAG_LIMIT", "SentenceEncoder", "embed_sentences", "word_bags", "word_weights"]

#: The standard deviation of every weight at initialisation: N(0, 0.1) (sec. 4.2 of the paper).
INIT_STD = 0.1


def _word_ids(story: Tensor) -> Tensor:
    """Word ids ``[..., L]`` of a story given as ids, or, for word distributions ``[..., L, V]``, 1 where a word is."""
    if story.is_floating_point():
        return (story.abs().sum(-1) > 0).long()  # soft words: every position with any mass is a word
    return story


#: Above this many entries (sentences x vocabulary) :func:`embed_sentences` uses ``embedding_bag`` instead of a dense bag matrix.
DENSE_BAG_LIMIT = 1 << 22


def word_weights(words: Tensor, position: bool | str = True, dtype: torch.dtype = torch.float32, dim: int | None = None,
                 length: int | None = None) -> Tensor:
    """The weight of each word in the bags of :func:`word_bags`: ``[2, S, L]`` (``a_j``, ``b_j`` of
    :func:`mannkit.nn.text.position_coefficients`, so that ``l_kj = a_j - (k/D) b_j``) with the position
    encoding, else ``[1, S, L]`` (1 per word); 0 at padding.

    Args:
        words: word ids ``[S, L]``.
        position: True or ``code`` (the original code's form), ``paper`` (the printed form), False (none).
        dim: D, the embedding width (the ``code`` form's ``a_j`` depends on it; needed for that form).
        length: one J for every sentence (None: each sentence's own number of words).
    """
    form = position_form(position, default="code")
    if form is None:
        return words.ne(0).to(dtype).unsqueeze(0)  # [1, S, L]
    if form == "code" and dim is None:
        raise ValueError("word_weights: the code form of the position encoding needs dim (D, the embedding width).")
    return torch.stack(position_coefficients(words, dim, form, dtype, length))  # [2, S, L]


def word_bags(words: Tensor, vocab_size: int, position: bool | str = True, dtype: torch.dtype = torch.float32,
              dim: int | None = None, length: int | None = None) -> Tensor:
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
    weights = word_weights(flat, position, dtype, dim, length)  # [G, S, L]
    index = flat.unsqueeze(0).expand(weights.shape[0], -1, -1)  # [G, S, L]
    return torch.zeros(weights.shape[0], flat.shape[0], vocab_size, device=words.device, dtype=dtype).scatter_add_(-1, index, weights)


def embed_sentences(words: Tensor, table: Tensor, position: bool | str = True, bags: Tensor | None = None,
                    length: int | None = None) -> Tensor:
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
        weights = word_weights(flat, position, table.dtype, D, length)  # [2, S, L]
        first, second = (F.embedding_bag(flat, table, per_sample_weights=w, mode="sum", padding_idx=0) for w in weights)
        return (first - k * second).reshape(*words.shape[:-1], D)  # [S, D] -> [..., D]
    bags = word_bags(words, V, position, table.dtype, D, length) if bags is None else bags
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
        position_length: one J for every sentence (the original code: the longest sentence of the data plus
            one); None: each sentence's own number of words.
        time_scale: multiply the time vectors by the position weights of position J (the original code holds
            its time word in the last position of a sentence); needs ``position_length``.
        nil_gradient: give the padding word (row 0, kept at zero) the gradient the original code's "nil" word gets:
            every padding position j < J of a sentence or question adds ``l_j * A[0]`` (zero forward), so row 0's
            gradient counts in a clip of the table's gradient, as the code's clip of its whole lookup table does;
            a trainer zeroes it before the step. Needs ``position_length``.
    """

    def __init__(self, vocab_size: int, dim: int, slots: int = 0, position: bool | str = True,
                 position_length: int | None = None, time_scale: bool = False, nil_gradient: bool = False) -> None:
        super().__init__()
        self.position = position_form(position, default="code")  # "code", "paper" or None
        self.position_length = position_length
        self.nil_gradient = nil_gradient
        scale = tails = None
        if time_scale or nil_gradient:
            if position_length is None or self.position is None:
                raise ValueError("SentenceEncoder: time_scale and nil_gradient need a position encoding and position_length.")
            J = position_length
            a, b = position_coefficients(torch.ones(1, J, dtype=torch.long), dim, self.position, torch.float32, J)  # [1, J] each
            k = torch.arange(1, dim + 1, dtype=torch.float32) / dim
            weights = a[0].unsqueeze(-1) - k * b[0].unsqueeze(-1)  # l_jk of a sentence filling all J positions, [J, D]
            if time_scale:
                scale = weights[-1]  # l_kJ, [D]
            if nil_gradient:
                inner = torch.cat([weights[:-1], weights.new_zeros(1, dim)])  # positions 1..J-1 (J holds the time word)
                tails = inner.flip(0).cumsum(0).flip(0)  # tails[n] = sum_{j > n, j < J} l_j, [J, D]
                tails = torch.cat([tails, weights.sum(0, keepdim=True)])  # last row: an empty slot, all J positions
        self.register_buffer("time_weight", scale, persistent=False)  # [D]
        self.register_buffer("nil_tails", tails, persistent=False)  # [J + 1, D]
        self.words = nn.Parameter(torch.randn(vocab_size, dim) * INIT_STD)  # A (or B, C): [V, D]
        self.time = nn.Parameter(torch.randn(slots, dim) * INIT_STD) if slots else None  # T_A (or T_C): [slots, D]
        if nil_gradient:
            with torch.no_grad():
                self.words[0] = 0  # the padding (nil) word stays zero

    def nil(self) -> Tensor:
        """The padding word's vector: exactly zero forward whatever row 0 holds, with row 0's gradient: ``[D]``.

        Row 0 starts at zero and a trainer that drops its gradient keeps it there, but one that does not
        (``mannkit fit``) cannot change the model's outputs through it.
        """
        return self.words[0] - self.words[0].detach()

    def empty_slot(self) -> Tensor | None:
        """With ``nil_gradient``: an empty slot's vector (zero, all J positions the padding word), else None."""
        return None if self.nil_tails is None else self.nil_tails[-1] * self.nil()  # [D]

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
            if self.position_length is not None or self.nil_tails is not None:
                raise ValueError("SentenceEncoder: position_length and nil_gradient apply to word ids; a word distribution "
                                 "[..., L, V] is encoded with each sentence's own J, so leave both out for one.")
            embedded = words @ self.words  # [..., L, V] @ [V, D] -> [..., L, D]
            sentences = encode_sentences(embedded, _word_ids(words), self.position or False)  # [..., D]
        else:
            sentences = embed_sentences(words, self.words, self.position or False, bags, self.position_length)  # [..., D]
            if self.nil_tails is not None:  # zero forward; the padding positions' gradient reaches row 0
                count = words.ne(0).sum(-1).clamp_max(self.nil_tails.shape[0] - 2)  # words per sentence, [...]
                sentences = sentences + self.nil_tails[count] * self.nil()
        if self.time is not None and times is not None:
            time = self.time[times] if self.time_weight is None else self.time[times] * self.time_weight
            sentences = sentences + time  # + T_A(i): [...] indices -> [..., D]
        return sentences
