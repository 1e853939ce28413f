"""The Relation Network module by hand, the bAbI RN: recency, sentence encoding, the kit, the refusals."""

import pytest
import torch
import torch.nn.functional as F

from mannkit.core.errors import ConfigError
from mannkit.testing.qa import check_qa_model
from mannkit_relational import RelationNetwork, RelationNetworkQA
from mannkit_relational.rn_qa import encode_words, recent_sentences


def test_the_relation_network_is_f_of_the_sum_of_g_over_all_pairs():
    torch.manual_seed(0)
    rn = RelationNetwork(object_size=3, query_size=2, output_size=4, g_layers=[5, 6], f_layers=[7])
    x, q = torch.randn(2, 4, 3), torch.randn(2, 2)

    def g(a, b, q):  # g_theta on one pair, from the concatenation, as the paper writes it
        weight = torch.cat([rn.first_i.weight, rn.first_j.weight, rn.first_q.weight], dim=1)  # [5, 3 + 3 + 2]
        first = torch.relu(torch.cat([a, b, q]) @ weight.T + rn.first_i.bias)
        return rn.g_rest(first)

    for n in range(2):
        total = sum(g(x[n, i], x[n, j], q[n]) for i in range(4) for j in range(4))
        torch.testing.assert_close(rn(x, q)[n], rn.f_out(rn.f_hidden(total)))


def test_masked_objects_do_not_take_part():
    torch.manual_seed(0)
    rn = RelationNetwork(3, 2, 4, [5], [6])
    x, q = torch.randn(2, 5, 3), torch.randn(2, 2)
    mask = torch.tensor([[True, True, False, True, False]] * 2)
    torch.testing.assert_close(rn(x, q, mask), rn(x[:, [0, 1, 3]], q))


def test_recent_sentences_latest_first_with_the_mask():
    story = torch.tensor([[[4, 5], [6, 0], [7, 8], [0, 0]], [[9, 0], [0, 0], [0, 0], [0, 0]]])  # [B=2, N=4, L=2]
    kept, mask = recent_sentences(story, 3)
    assert kept[0].tolist() == [[7, 8], [6, 0], [4, 5]] and mask[0].tolist() == [True, True, True]
    assert kept[1].tolist() == [[9, 0], [0, 0], [0, 0]] and mask[1].tolist() == [True, False, False]
    kept, mask = recent_sentences(story, 2)
    assert kept[0].tolist() == [[7, 8], [6, 0]], "a longer story keeps its most recent sentences"


def test_encoding_a_sentence_ignores_its_padding():
    torch.manual_seed(0)
    lstm, words = torch.nn.LSTM(4, 3, batch_first=True), torch.nn.Embedding(10, 4, padding_idx=0)
    padded = encode_words(lstm, words, torch.tensor([[2, 5, 0, 0]]))
    alone = encode_words(lstm, words, torch.tensor([[2, 5]]))
    torch.testing.assert_close(padded, alone)


def test_the_qa_model_conforms():
    check_qa_model(RelationNetworkQA)


def test_short_stories_give_what_all_memory_slots_give():
    """The model computes only the slots some story of the batch fills; that must equal the sum over all M."""
    torch.manual_seed(0)
    M = 6
    model = RelationNetworkQA(embedding_dim=4, lstm_size=5, g_layers=[6, 6], f_layers=[7], memory_size=M)
    model.bind(vocab_size=9, answer_size=4, max_sentences=8, sentence_length=3, question_length=2)
    model.eval()
    story = torch.randint(1, 9, (3, 8, 3))
    story[0, 3:], story[1, 2:], story[2, 1:] = 0, 0, 0  # 3, 2 and 1 sentences: K = 3 of M = 6 slots
    question = torch.randint(1, 9, (3, 2))
    kept, mask = recent_sentences(story, M)  # every slot, as before the trim
    sentences = encode_words(model.sentence_lstm, model.words, kept)
    objects = torch.cat([sentences, F.one_hot(torch.arange(M), M).float().expand(3, M, M)], dim=-1)  # [B, M, S + M]
    full = model.rn(objects, encode_words(model.question_lstm, model.words, question), mask)
    out = model(story, question, record=True)
    torch.testing.assert_close(out.logits, full)
    assert out.trace["objects_in_use"].shape == (3, M), "the record still covers all M slots"
    assert out.trace["objects_in_use"].sum().item() == 6


def test_dropout_is_off_in_eval():
    model = RelationNetworkQA(embedding_dim=4, lstm_size=5, g_layers=[6], f_layers=[7], memory_size=3, dropout=0.5)
    model.bind(vocab_size=9, answer_size=4, max_sentences=5, sentence_length=3, question_length=2)
    story, question = torch.randint(1, 9, (2, 5, 3)), torch.randint(1, 9, (2, 2))
    model.eval()
    torch.testing.assert_close(model(story, question).logits, model(story, question).logits)


@pytest.mark.parametrize("kwargs, match", [
    ({"g_layers": []}, r"^RelationNetworkQA: g_layers must be a non-empty list of positive integers, got \[\]; e\.g\. \[256, 256\]\.$"),
    ({"memory_size": 0}, r"^RelationNetworkQA: memory_size must be a positive integer, got 0; set memory_size to 1 or more\.$"),
    ({"dropout": 1.0}, r"^RelationNetworkQA: dropout must be in \[0, 1\), got 1\.0;"),
    ({"f_layers": [0]}, r"^RelationNetworkQA: f_layers must be a list of positive integers, got \[0\]; e\.g\. \[256, 256\]\.$"),
])
def test_bad_arguments_are_refused_in_one_sentence(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RelationNetworkQA(**kwargs)
