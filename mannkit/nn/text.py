"""Building blocks for models that read text: sentence position encoding and bag-of-words sentence vectors.

Shape letters: B batch, N sentences (memory slots), L words per sentence, D embedding width.
Word id 0 is padding everywhere.

Position encoding (Sukhbaatar et al. 2015, sec. 4.1; also DMN+'s input module, Xiong et al. 2016):
a sentence of J words is ``m = sum_j l_j * A x_j`` with
``l_kj = (1 - j/J) - (k/D) (1 - 2j/J)`` for word j = 1..J and embedding dimension k = 1..D,
so word order changes the sentence vector (a plain bag of words cannot tell "A gave B" from
"B gave A"). J is each sentence's own number of words, so padding changes nothing.

>>> import torch
>>> words = torch.tensor([[[3, 1, 0]]])                       # B=1, N=1, L=3: two words then padding
>>> vectors = torch.ones(1, 1, 3, 4)                           # their embeddings, D=4
>>> encode_sentences(vectors, words).shape
torch.Size([1, 1, 4])
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["position_weights", "encode_sentences"]


def position_weights(words: Tensor, dim: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The position-encoding weights ``l_kj`` for each word of each sentence, 0 at padding.

    Args:
        words: word ids ``[..., L]`` (0 = padding; the words of a sentence come first).
        dim: D, the embedding width.

    Returns:
        ``[..., L, D]``; for a sentence of J words, word j (1-based) gets
        ``(1 - j/J) - (k/D)(1 - 2j/J)`` in dimension k (1-based).

    >>> w = position_weights(torch.tensor([[5, 6]]), dim=2)   # J = 2
    >>> w[0].tolist()                                         # j=1: 0.5 - k/2 * 0; j=2: 0 - k/2 * (-1)
    [[0.5, 0.5], [0.5, 1.0]]
    """
    present = words != 0  # [..., L]
    length = present.sum(-1, keepdim=True).clamp_min(1).to(dtype)  # J per sentence, [..., 1]
    j = torch.arange(1, words.shape[-1] + 1, device=words.device, dtype=dtype)  # [L]
    k = torch.arange(1, dim + 1, device=words.device, dtype=dtype) / dim  # k / D, [D]
    ratio = (j / length).unsqueeze(-1)  # j / J, [..., L, 1]
    weights = (1 - ratio) - k * (1 - 2 * ratio)  # [..., L, D]
    return weights * present.unsqueeze(-1).to(dtype)  # padding contributes nothing


def encode_sentences(embedded: Tensor, words: Tensor, position: bool = True) -> Tensor:
    """Sentence vectors: the (position-weighted) sum of the word embeddings.

    Args:
        embedded: word embeddings ``[..., L, D]``.
        words: the word ids they came from, ``[..., L]`` (0 = padding, which is ignored).
        position: weight words by :func:`position_weights` (else a plain bag of words).

    Returns:
        ``[..., D]``.
    """
    if position:
        weights = position_weights(words, embedded.shape[-1], embedded.dtype)  # [..., L, D]
    else:
        weights = (words != 0).unsqueeze(-1).to(embedded.dtype)  # [..., L, 1]
    return (embedded * weights).sum(-2)  # [..., L, D] -> [..., D]
