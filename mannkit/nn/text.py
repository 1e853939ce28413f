"""Building blocks for models that read text: sentence position encoding and bag-of-words sentence vectors.

Shape letters: B batch, N sentences (memory slots), L words per sentence, D embedding width.
Word id 0 is padding everywhere.

Position encoding (Sukhbaatar et al. 2015, sec. 4.1; also DMN+'s input module, Xiong et al. 2016):
a sentence of J words is ``m = sum_j l_j * A x_j``, with word j = 1..J and embedding dimension k = 1..D,
so word order changes the sentence vector (a plain bag of words cannot tell "A gave B" from
"B gave A"). Two forms of ``l_kj`` exist:

- ``paper``: ``l_kj = (1 - j/J) - (k/D) (1 - 2j/J)``, as both papers print it;
- ``code``: ``l_kj = 1 + 4 (k - (D+1)/2) (j - (J+1)/2) / (D J)``, as the MemN2N code that came with the
  paper computes it (``build_model.m``): weights centred on 1 and spread over [0, 2], where the printed
  form has mean 1/2 and is 0 for the last word in dimension k -> 0. MemN2N learns bAbI task 16 with it
  and not with the printed form (benchmarks/RESULTS.md, "MemN2N on bAbI").

Both are ``a_j - (k/D) b_j`` (:func:`position_coefficients`). J is each sentence's own number of words, so
padding changes nothing (the original code used the longest sentence's length plus one for every sentence).

>>> import torch
>>> words = torch.tensor([[[3, 1, 0]]])                       # B=1, N=1, L=3: two words then padding
>>> vectors = torch.ones(1, 1, 3, 4)                           # their embeddings, D=4
>>> encode_sentences(vectors, words).shape
torch.Size([1, 1, 4])
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["POSITION_FORMS", "position_coefficients", "position_form", "position_weights", "encode_sentences"]

#: The forms of the position encoding: ``code`` (the original MemN2N code's) and ``paper`` (as printed).
POSITION_FORMS = ("code", "paper")


def position_form(position: bool | str | None, default: str = "paper") -> str | None:
    """``position`` as a form: ``None`` for a bag of words (False or None), ``default`` for True, else the form named.

    >>> position_form(True), position_form(False), position_form("code")
    ('paper', None, 'code')
    """
    if position is None or position is False:
        return None
    if position is True:
        return default
    if position not in POSITION_FORMS:
        raise ValueError(f"position encoding must be true, false, code or paper, got {position!r}; use code or paper.")
    return position


def position_coefficients(words: Tensor, dim: int, form: str = "paper", dtype: torch.dtype = torch.float32,
                          length: int | None = None) -> tuple[Tensor, Tensor]:
    """``a, b [..., L]`` with ``l_kj = a_j - (k/D) b_j`` (0 at padding), for the ``form`` of the position encoding.

    ``paper``: ``a_j = 1 - j/J``, ``b_j = 1 - 2j/J``. ``code``: with ``c_j = (j - (J+1)/2) / J``,
    ``a_j = 1 - 2 c_j (D+1)/D`` and ``b_j = -4 c_j``, so ``a_j - (k/D) b_j = 1 + 4 (k - (D+1)/2) c_j / D``.
    J is each sentence's own number of words, or ``length`` for every sentence when given (the original
    code's one J for all sentences and questions).

    >>> a, b = position_coefficients(torch.tensor([[5, 6]]), dim=2, form="code")   # J = 2: c = -1/4, 1/4
    >>> a.tolist(), b.tolist()
    ([[1.75, 0.25]], [[1.0, -1.0]])
    """
    present = (words != 0).to(dtype)  # [..., L]
    if length is None:
        length = present.sum(-1, keepdim=True).clamp_min(1)  # J per sentence, [..., 1]
    j = torch.arange(1, words.shape[-1] + 1, device=words.device, dtype=dtype)  # [L]
    if form == "paper":
        ratio = j / length  # j / J, [..., L]
        a, b = 1 - ratio, 1 - 2 * ratio
    elif form == "code":
        c = (j - (length + 1) / 2) / length  # [..., L]
        a, b = 1 - 2 * c * (dim + 1) / dim, -4 * c
    else:
        raise ValueError(f"position encoding form must be code or paper, got {form!r}; use code or paper.")
    return a * present, b * present


def position_weights(words: Tensor, dim: int, dtype: torch.dtype = torch.float32,
                     form: Literal["code", "paper"] = "paper") -> Tensor:
    """The position-encoding weights ``l_kj`` for each word of each sentence, 0 at padding.

    Args:
        words: word ids ``[..., L]`` (0 = padding; the words of a sentence come first).
        dim: D, the embedding width.
        form: ``paper`` (``(1 - j/J) - (k/D)(1 - 2j/J)``) or ``code``
            (``1 + 4 (k - (D+1)/2)(j - (J+1)/2) / (D J)``), see the module docstring.

    Returns:
        ``[..., L, D]``; for a sentence of J words, word j (1-based) in dimension k (1-based).

    >>> w = position_weights(torch.tensor([[5, 6]]), dim=2)   # J = 2
    >>> w[0].tolist()                                         # j=1: 0.5 - k/2 * 0; j=2: 0 - k/2 * (-1)
    [[0.5, 0.5], [0.5, 1.0]]
    >>> position_weights(torch.tensor([[5, 6]]), dim=2, form="code")[0].tolist()   # 1 + (k - 3/2)(j - 3/2)
    [[1.25, 0.75], [0.75, 1.25]]
    """
    a, b = position_coefficients(words, dim, form, dtype)  # [..., L] each
    k = torch.arange(1, dim + 1, device=words.device, dtype=dtype) / dim  # k / D, [D]
    return a.unsqueeze(-1) - k * b.unsqueeze(-1)  # [..., L, D]; padding contributes nothing


def encode_sentences(embedded: Tensor, words: Tensor, position: bool | str = True) -> Tensor:
    """Sentence vectors: the (position-weighted) sum of the word embeddings.

    Args:
        embedded: word embeddings ``[..., L, D]``.
        words: the word ids they came from, ``[..., L]`` (0 = padding, which is ignored).
        position: weight words by :func:`position_weights`: True (the ``paper`` form), ``code`` or
            ``paper``; False for a plain bag of words.

    Returns:
        ``[..., D]``.
    """
    form = position_form(position)
    if form is not None:
        weights = position_weights(words, embedded.shape[-1], embedded.dtype, form)  # [..., L, D]
    else:
        weights = (words != 0).unsqueeze(-1).to(embedded.dtype)  # [..., L, 1]
    return (embedded * weights).sum(-2)  # [..., L, D] -> [..., D]
