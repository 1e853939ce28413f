"""MemN2N (plugins/mannkit_memn2n/model.py): planted-weight attention, tying, TE, RN, linear start, any addressing,
a QA conformance check, errors, and a small synthetic QA problem learned.

Sizes are distinct (B=3, N=5 slots, L=4 words, Q=2, V=17 words, A=8 answers, D=7) so that a transposed axis breaks a test.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.registry import registry
from mannkit.nn import ContentAddressing
from mannkit.testing import check_qa_model, default_factory, registered_components
from mannkit_memn2n import DotProductAddressing, MemN2N, answer_matrix, most_recent, tied_answer_ids

B, N, L, Q, V, A, D = 3, 5, 4, 2, 17, 8, 7
SIZES = dict(vocab_size=V, answer_size=A, max_sentences=N, sentence_length=L, question_length=Q)


def _model(**kwargs) -> MemN2N:
    torch.manual_seed(kwargs.pop("seed", 0))
    answer_words = kwargs.pop("answer_words", None)
    model = MemN2N(**{"embedding_dim": D, **kwargs})
    model.bind(**SIZES, answer_words=answer_words)
    return model


def _batch(seed: int = 0, counts: tuple[int, ...] = (5, 3, 1)) -> tuple[torch.Tensor, torch.Tensor]:
    """``story [B, N, L]`` with counts[b] sentences (then empty slots) and ``question [B, Q]`` of words 1..V-1."""
    g = torch.Generator().manual_seed(seed)
    story = torch.randint(1, V, (B, N, L), generator=g)
    story[:, :, L - 1] = 0  # sentences of L - 1 words
    for b, count in enumerate(counts):
        story[b, count:] = 0
    return story, torch.randint(1, V, (B, Q), generator=g)


# -- attention by hand, with planted embeddings ---------------------------------------------------
def test_one_hop_attends_to_the_sentence_that_mentions_the_queried_person():
    model = _model(hops=1, position_encoding=False, temporal_encoding=False)
    A1 = model.memories[0].keys.words  # A^1 = B (adjacent tying)
    with torch.no_grad():
        A1.zero_()
        for person in (1, 2, 3):
            A1[person, person - 1] = 2.0  # persons get orthogonal keys; every other word embeds to 0
    story = torch.zeros(B, N, L, dtype=torch.long)
    story[:, :3, :3] = torch.tensor([[1, 8, 4], [2, 8, 5], [3, 8, 6]])  # three sentences, then two empty slots
    question = torch.tensor([[9, 2], [9, 3], [9, 1]])  # who is asked about
    attention = model(story, question, record=True).trace["attention"]  # [B, 1, N]
    match = math.exp(4) / (math.exp(4) + 2)  # u . m_i = 2 * 2 for the match, 0 for the others
    expected = torch.tensor([[(1 - match) / 2, match, (1 - match) / 2, 0.0, 0.0]])
    for b, slot in enumerate((1, 2, 0)):
        assert torch.allclose(attention[b, 0], expected[0, [(i - slot + 1) % 3 for i in range(3)] + [3, 4]], atol=1e-6)
        assert attention[b, 0].argmax() == slot


def test_temporal_encoding_tells_identical_sentences_apart_by_recency():
    model = _model(hops=1, position_encoding=False, temporal_encoding=True, random_noise=0.0)
    keys = model.memories[0].keys
    with torch.no_grad():
        keys.words.zero_()
        keys.words[7, 0] = 1.0  # the question word: u = e_0
        keys.time.zero_()
        keys.time[0, 0] = 3.0  # T_A(0): the most recent sentence scores 3, the others 0
    story = torch.zeros(B, N, L, dtype=torch.long)
    story[:, :2, :2] = 5  # two identical sentences ...
    story[2, 2, :2] = 5  # ... and three in the last story
    question = torch.tensor([[7, 0]] * B)  # u = A[7] = e_0
    attention = model(story, question, record=True).trace["attention"][:, 0]  # [B, N]
    newest = math.exp(3) / (math.exp(3) + 1)
    assert torch.allclose(attention[0], torch.tensor([1 - newest, newest, 0, 0, 0]), atol=1e-6)
    assert attention[2].argmax() == 2, "the most recent of three identical sentences wins"


def test_padded_slots_get_exactly_zero_weight_and_real_ones_sum_to_one():
    model = _model(hops=3).eval()
    story, question = _batch()
    attention = model(story, question, record=True).trace["attention"]  # [B, K, N]
    assert attention.shape == (B, 3, N)
    assert (attention[1, :, 3:] == 0).all() and (attention[2, :, 1:] == 0).all()
    assert torch.allclose(attention.sum(-1), torch.ones(B, 3))


# -- weight tying ---------------------------------------------------------------------------------
def test_adjacent_tying_shares_the_tensors():
    answer_words = torch.tensor([[10, 0], [11, 12], [13, 0], [13, 0], [14, 0], [15, 0], [16, 0], [1, 0]])
    model = _model(hops=3, tying="adjacent", answer_words=answer_words)
    m = model.memories
    for k in (1, 2):
        assert m[k].keys is m[k - 1].values  # A^{k+1} = C^k (and T_A^{k+1} = T_C^k)
        assert m[k].keys.words is m[k - 1].values.words and m[k].keys.time is m[k - 1].values.time
    assert model.question is m[0].keys  # B = A^1
    assert model.controller.mix is None, "no H with adjacent tying"
    # W^T = C^K for the one-word answers that no other class shares; classes 1 (two words), 2 and 3 (one word twice) keep their own rows
    assert model.answer_ids.tolist() == [10, 0, 0, 0, 14, 15, 16, 1]
    W = answer_matrix(m[2].values.words, model.answer_ids, model.answer.weight)
    assert torch.equal(W[0], m[2].values.words[10]) and torch.equal(W[1], model.answer.weight[1])
    story, question = _batch()
    model(story, question).logits[:, 0].sum().backward()
    assert m[2].values.words.grad[10].abs().sum() > 0 and model.answer.weight.grad[0].abs().sum() == 0
    unique = {id(p) for p in model.parameters()}
    assert len(unique) == 2 * 4 + 1, "K + 1 word tables, K + 1 time tables, and the untied answer rows"


def test_layerwise_tying_shares_across_hops_and_learns_H():
    model = _model(hops=3, tying="layerwise", answer_words=torch.arange(10, 10 + A).unsqueeze(1))
    m = model.memories
    assert all(memory.keys is m[0].keys and memory.values is m[0].values for memory in m)  # A^k = A^1, C^k = C^1
    assert model.question is not m[0].keys and model.answer_ids is None, "B and W are separate"
    assert model.controller.mix is not None and model.controller.mix.weight.shape == (D, D)  # H
    assert len(model.query_maps) == 1


def test_layerwise_hops_add_H_u_between_hops_and_sum_at_the_top():
    model = _model(hops=2, tying="layerwise", temporal_encoding=False).double()
    story, question = _batch()
    out = model(story, question, record=True)
    # by hand from the parts: u1 = B q, o1 = p1 C, u2 = H u1 + o1, o2 = p2 C, logits = W (u2 + o2)
    u = model.question(question)
    memory = model.memories[0]
    state = memory.load(story)
    reads = []
    for k in range(2):
        p = torch.softmax(torch.einsum("bd,bnd->bn", u, state.memory).masked_fill(~state.mask, -math.inf), -1)
        assert torch.allclose(p, out.trace["attention"][:, k])
        o = torch.einsum("bn,bnd->bd", p, state.values)
        reads.append(o)
        if k == 0:
            u = u @ model.controller.mix.weight.T + o
    assert torch.allclose(out.logits, (u + reads[1]) @ model.answer.weight.T)


# -- random noise ---------------------------------------------------------------------------------
def test_random_noise_only_in_training_and_seeded():
    noisy, clean = _model(hops=2, random_noise=0.5), _model(hops=2, random_noise=0.0)
    story, question = _batch(counts=(3, 2, 1))  # room in the N = 5 rows of T_A for shifted indices
    noisy.eval()
    assert torch.equal(noisy(story, question).logits, clean.eval()(story, question).logits)
    noisy.train()
    runs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        runs.append(noisy(story, question).logits)
    assert torch.equal(runs[0], runs[1]) and not torch.allclose(runs[0], runs[2])
    assert not torch.allclose(runs[0], clean.train()(story, question).logits)


# -- linear start ---------------------------------------------------------------------------------
def test_linear_start_uses_raw_scores_until_switched_off():
    model = _model(hops=2, linear_start=True, temporal_encoding=False).double().eval()
    story, question = _batch()
    assert model.linear_start
    raw = model(story, question, record=True).trace["attention"]
    u = model.question(question)
    state = model.memories[0].load(story)
    scores = torch.einsum("bd,bnd->bn", u, state.memory) * state.mask  # u^T m_i at real slots, 0 at padded ones
    assert torch.allclose(raw[:, 0], scores)
    assert not torch.allclose(raw.sum(-1), torch.ones(B, 2, dtype=torch.float64)), "not a softmax"
    model.set_linear_start(False)
    soft = model(story, question, record=True).trace["attention"]
    assert not model.linear_start and torch.allclose(soft.sum(-1), torch.ones(B, 2, dtype=torch.float64))
    assert torch.allclose(soft[:, 0], torch.softmax(scores.masked_fill(~state.mask, -math.inf), -1))
    fresh = _model(hops=2, linear_start=True, temporal_encoding=False).double().eval()
    fresh.load_state_dict(model.state_dict())
    assert not fresh.linear_start, "the switch travels with the state_dict (a resumed run keeps the softmax)"


def test_linear_start_needs_an_addressing_with_scores():
    message = r"linear_start needs an addressing with raw scores, but ContentAddressing has no scores\(\) method; use"
    with pytest.raises(ConfigError, match=message):
        MemN2N(linear_start=True, addressing=ContentAddressing())
    with pytest.raises(ConfigError, match=message):
        _model(addressing=ContentAddressing()).set_linear_start(True)


# -- any addressing -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", registered_components("addressing"))
def test_works_with_every_registered_addressing(name):
    model = _model(hops=2, addressing=default_factory(name)())
    story, question = _batch()
    out = model(story, question, record=True)
    attention = out.trace["attention"]
    assert torch.isfinite(out.logits).all() and out.logits.shape == (B, A)
    assert (attention[1, :, 3:] == 0).all() and (attention[2, :, 1:] == 0).all(), "padded slots get no weight"
    assert torch.allclose(attention.sum(-1), torch.ones(B, 2), atol=1e-5)
    F.cross_entropy(out.logits, torch.arange(B)).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_addressings_with_other_parameter_sizes_get_a_map_from_u():
    model = _model(hops=3, addressing=ContentAddressing())  # P = D + 1
    assert [layer.weight.shape for layer in model.query_maps] == [(D + 1, D)] * 3
    assert all(isinstance(layer, torch.nn.Identity) for layer in _model(hops=3).query_maps)


# -- memory size ----------------------------------------------------------------------------------
def test_long_stories_keep_their_most_recent_sentences_and_short_ones_are_padded():
    model = _model(hops=2, memory_size=3).eval()
    assert model.memories[0].slots == 3
    story, question = _batch(counts=(5, 3, 1))
    out = model(story, question, record=True)
    assert torch.equal(out.logits, model(most_recent(story, 3), question).logits)
    attention = out.trace["attention"]  # mapped back onto the story's 5 slots
    assert attention.shape == (B, 2, N)
    assert (attention[0, :, :2] == 0).all() and torch.allclose(attention[0].sum(-1), torch.ones(2))  # the oldest two dropped
    assert torch.equal(attention[0, :, 2:], model(most_recent(story, 3), question, record=True).trace["attention"][0])
    short = story[1:, :3]  # stories of 3 and 1 sentences given with 3 slots: padded to 5 inside
    full = _model(hops=2).eval()
    assert torch.allclose(full(short, question[1:]).logits, full(story[1:], question[1:]).logits, atol=1e-6)
    assert full(short, question[1:], record=True).trace["attention"].shape == (2, 2, 3)
    assert _model(hops=2, memory_size=9).memories[0].slots == N, "never more slots than the data's N"


# -- conformance (the kit's QA-model checks) ---------------------------------------------------------
@pytest.mark.parametrize(
    "factory",
    [
        MemN2N,
        lambda: MemN2N(embedding_dim=D, hops=2, tying="layerwise", random_noise=0.3),
        lambda: MemN2N(embedding_dim=D, linear_start=True, position_encoding=False, temporal_encoding=False),
        lambda: MemN2N(embedding_dim=D, hops=2, addressing=ContentAddressing(), memory_size=3),
    ],
    ids=["default", "layerwise-noise", "linear-start-bag", "content-memory-3"],
)
def test_memn2n_conforms(factory):
    check_qa_model(factory)  # shapes and dtypes, an empty story, gradients, determinism, state_dict, pickle, config


def test_registered_as_a_model():
    assert registry.get("MemN2N", "model") is MemN2N
    assert {"StoryMemory", "DotProductAddressing", "HopReadHead", "HopController"} <= set(registry.names())


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"embedding_dim": 0}, r"MemN2N: embedding_dim must be an integer of at least 1, got 0; set embedding_dim to 1 or more\."),
        ({"hops": True}, r"MemN2N: hops must be an integer of at least 1, got True"),
        ({"tying": "rnn"}, r"MemN2N: tying must be adjacent or layerwise, got 'rnn'; pick one of those\."),
        ({"random_noise": -0.1}, r"MemN2N: random_noise must be a probability in \[0, 1\), got -0\.1"),
        ({"memory_size": 0}, r"MemN2N: memory_size must be an integer of at least 1, got 0"),
        ({"position_encoding": "matlab"}, r"MemN2N: position_encoding must be true, false, code or paper, got 'matlab'; use true"),
        ({"position_encoding": 1}, r"MemN2N: position_encoding must be true, false, code or paper, got 1; use true"),
        ({"addressing": "DotProductAddressing"}, r"HopReadHead: addressing must be an Addressing component, got str"),
    ],
)
def test_bad_options_are_refused_in_one_sentence(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MemN2N(**kwargs)


def test_bad_use_is_refused_in_one_sentence():
    story, question = _batch()
    with pytest.raises(ConfigError, match=r"MemN2N is not bound; call bind\(vocab_size, answer_size, \.\.\.\) first"):
        MemN2N()(story, question)
    model = _model()
    with pytest.raises(ShapeError, match=r"story has shape \[3, 20\] and question \[3, 2\] but \[B, N, L\] and \[B, Q\]"):
        model(story.reshape(B, -1), question)
    with pytest.raises(ShapeError, match=r"answer_words has shape \[2, 1\] but \[8, La\] was expected"):
        _model(answer_words=torch.ones(2, 1, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"MemN2N: vocab_size must be an integer of at least 1, got 0"):
        MemN2N().bind(**{**SIZES, "vocab_size": 0})


def test_tied_answer_ids_by_hand():
    words = torch.tensor([[4, 0, 0], [4, 5, 0], [6, 0, 0], [6, 0, 0], [7, 0, 0]])
    assert tied_answer_ids(words).tolist() == [4, 0, 0, 0, 7]


# -- learning: a small synthetic QA problem -------------------------------------------------------
def _synthetic(count: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stories of 2..5 sentences "<person> has <object>" (distinct persons 1..6, "has" = 7, objects 8..15);
    the question "what <person>" (what = 16) is answered by that person's object (class object - 8)."""
    n = torch.randint(2, N + 1, (count, 1), generator=g)  # sentences per story
    people = torch.rand(count, 6, generator=g).argsort(-1)[:, :N] + 1  # [count, N] distinct persons
    things = torch.randint(8, 16, (count, N), generator=g)
    sentences = torch.stack([people, torch.full_like(people, 7), things, torch.zeros_like(people)], -1)  # [count, N, L]
    story = sentences * (torch.arange(N) < n).unsqueeze(-1)  # empty slots after the n sentences
    asked = (torch.rand(count, 1, generator=g) * n).long()  # which sentence is asked about
    question = torch.cat([torch.full((count, 1), 16), people.gather(1, asked)], 1)  # [count, Q]
    return story, question, things.gather(1, asked)[:, 0] - 8


def test_learns_a_small_synthetic_qa_problem():
    g = torch.Generator().manual_seed(0)
    model = _model(embedding_dim=20, hops=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    story, question, answer = _synthetic(32 * 150, g)
    for step in range(150):
        batch = slice(32 * step, 32 * (step + 1))
        loss = F.cross_entropy(model(story[batch], question[batch]).logits, answer[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    story, question, answer = _synthetic(500, torch.Generator().manual_seed(99))
    with torch.no_grad():
        accuracy = (model.eval()(story, question).logits.argmax(-1) == answer).float().mean().item()
    assert accuracy > 0.9, accuracy


@pytest.mark.parametrize("attend", [False, True], ids=["masked", "attend-empty-slots"])
def test_empty_slots_get_weight_only_when_asked(attend):
    model = MemN2N(embedding_dim=4, hops=2, attend_empty_slots=attend)
    model.bind(vocab_size=6, answer_size=3, max_sentences=4, sentence_length=2, question_length=2)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # every score is 0: the softmax is uniform over the slots it may weigh
    story = torch.tensor([[[1, 2], [3, 4], [0, 0], [0, 0]]])  # two sentences, two empty slots
    attention = model(story, torch.tensor([[1, 5]]), record=True).trace["attention"]  # [1, K, 4]
    expected = [0.25] * 4 if attend else [0.5, 0.5, 0.0, 0.0]
    assert torch.allclose(attention, torch.tensor(expected).expand(1, 2, 4))
