"""Position encoding: hand-computed weights, padding ignored, word order matters."""

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
