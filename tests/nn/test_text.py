"""Position encoding: hand-computed weights, padding ignored, word order matters."""

import pytest
import torch

from mannkit.nn.text import encode_sentences, position_weights


def test_position_weights_by_hand():
    # J = 3 words, D = 2: l_kj = (1 - j/3) - (k/2)(1 - 2j/3)
    w = position_weights(torch.tensor([7, 8, 9, 0, 0]), dim=2)
    expected = [[(1 - j / 3) - (k / 2) * (1 - 2 * j / 3) for k in (1, 2)] for j in (1, 2, 3)]
    assert torch.allclose(w[:3], torch.tensor(expected))
    assert torch.equal(w[3:], torch.zeros(2, 2))  # padding words weigh nothing


def test_padding_does_not_change_a_sentence_vector():
    torch.manual_seed(0)
    emb = torch.randn(5, 3)
    short = torch.tensor([[1, 2, 3]])
    padded = torch.tensor([[1, 2, 3, 0, 0]])
    a = encode_sentences(emb[short], short)
    b = encode_sentences(emb[padded], padded)
    assert torch.allclose(a, b)


def test_word_order_matters_only_with_position_encoding():
    torch.manual_seed(0)
    emb = torch.randn(5, 7)
    ab, ba = torch.tensor([1, 2]), torch.tensor([2, 1])
    assert not torch.allclose(encode_sentences(emb[ab], ab), encode_sentences(emb[ba], ba))
    assert torch.allclose(encode_sentences(emb[ab], ab, position=False), encode_sentences(emb[ba], ba, position=False))


def test_code_form_by_hand_and_against_the_formula():
    # l_kj = 1 + 4 (k - (D+1)/2)(j - (J+1)/2) / (D J), J each sentence's own length
    D, words = 4, torch.tensor([7, 8, 9, 0, 0])  # J = 3
    w = position_weights(words, dim=D, dtype=torch.float64, form="code")
    expected = torch.tensor([[1 + 4 * (k - 2.5) * (j - 2) / 12 for k in range(1, D + 1)] for j in range(1, 4)], dtype=torch.float64)
    assert torch.allclose(w[:3], expected) and w[3:].abs().sum() == 0
    assert w[1].tolist() == [1.0, 1.0, 1.0, 1.0], "the middle word weighs 1 in every dimension"
    assert torch.allclose(w[:3].mean(), torch.tensor(1.0, dtype=torch.float64)), "centred on 1, where the printed form has mean 1/2"


def test_position_form_names_and_refusals():
    from mannkit.nn.text import position_form

    assert [position_form(p) for p in (True, False, None, "code", "paper")] == ["paper", None, None, "code", "paper"]
    assert position_form(True, default="code") == "code"
    with pytest.raises(ValueError, match="must be true, false, code or paper, got 'matlab'"):
        position_form("matlab")
