"""The story memory (plugins/mannkit_memn2n/memory.py): recency indices, random noise, encoders, errors, conformance.

Sizes are distinct (B=3, N=5 slots, L=4 words, V=11 words, D=7) so that a transposed axis breaks a test.
"""

import pytest
import torch
import torch.nn.functional as F

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.nn.text import position_weights
from mannkit.testing import check_memory
from mannkit.nn.text import encode_sentences
from mannkit_memn2n import encoding as encoding_module
from mannkit_memn2n.memory import (
    SentenceEncoder,
    StoryMemory,
    StoryState,
    embed_sentences,
    most_recent,
    recency_index,
    story_mask,
    word_bags,
)

B, N, L, V, D = 3, 5, 4, 11, 7


def _story(seed: int = 0, counts: tuple[int, ...] = (5, 3, 1)) -> torch.Tensor:
    """``[B, N, L]`` word ids: story b has counts[b] sentences of 2..L words, then empty slots."""
    g = torch.Generator().manual_seed(seed)
    story = torch.zeros(B, N, L, dtype=torch.long)
    for b, count in enumerate(counts):
        for i in range(count):
            length = int(torch.randint(2, L + 1, (1,), generator=g))
            story[b, i, :length] = torch.randint(1, V, (length,), generator=g)
    return story


# -- pure functions -------------------------------------------------------------------------------
def test_recency_counts_back_from_the_most_recent_sentence():
    mask = torch.tensor([[True, True, True, True, True], [True, True, True, False, False], [True] + [False] * 4])
    assert recency_index(mask).tolist() == [[4, 3, 2, 1, 0], [2, 1, 0, 0, 0], [0, 0, 0, 0, 0]]


def test_random_noise_shifts_older_sentences_by_the_empty_memories_after_them():
    mask = torch.ones(2, 6, dtype=torch.bool)
    torch.manual_seed(3)
    gaps = (torch.rand(2, 6) < 0.5).long()  # the draw recency_index makes under this seed
    torch.manual_seed(3)
    noisy = recency_index(mask, noise=0.5)
    expected = recency_index(mask) + gaps.flip(-1).cumsum(-1).flip(-1)  # + empty memories at or after i
    assert torch.equal(noisy, expected) and not torch.equal(noisy, recency_index(mask))
    assert (noisy[:, :-1] > noisy[:, 1:]).all(), "an older sentence is always further back"


def test_random_noise_inserts_about_the_asked_fraction_of_empty_memories():
    torch.manual_seed(0)
    mask = torch.ones(2000, 20, dtype=torch.bool)
    inserted = recency_index(mask, noise=0.1)[:, 0] - 19  # the oldest sentence is shifted by every insertion
    assert abs(inserted.float().mean().item() / 20 - 0.1) < 0.01


def test_random_noise_is_seeded_and_leaves_padding_at_zero():
    mask = torch.tensor([[True, True, True, False, False]] * 4)
    torch.manual_seed(5)
    a = recency_index(mask, noise=0.3)
    torch.manual_seed(5)
    b = recency_index(mask, noise=0.3)
    assert torch.equal(a, b)
    assert (a[:, 3:] == 0).all()


def test_most_recent_keeps_the_last_sentences_of_each_story_in_order():
    story = _story(counts=(5, 3, 1))
    kept = most_recent(story, 2)  # [B, 2, L]
    assert torch.equal(kept[0], story[0, 3:5]) and torch.equal(kept[1], story[1, 1:3])
    assert torch.equal(kept[2, 0], story[2, 0]) and (kept[2, 1] == 0).all()


def test_story_mask_of_ids_and_of_word_distributions():
    story = _story()
    assert story_mask(story).tolist() == [[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4]
    soft = F.one_hot(story, V).double() * story.ne(0).unsqueeze(-1)  # [B, N, L, V], padding all zero
    assert torch.equal(story_mask(soft), story_mask(story))


@pytest.mark.parametrize("position", ["code", "paper", False], ids=["code-form", "paper-form", "bag"])
@pytest.mark.parametrize("dense", [True, False], ids=["dense-bags", "embedding-bag"])
def test_embed_sentences_matches_the_shared_position_encoding(position, dense, monkeypatch):
    if not dense:
        monkeypatch.setattr(encoding_module, "DENSE_BAG_LIMIT", 0)
    table = torch.randn(V, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64, requires_grad=True)
    story = _story()
    expected = encode_sentences(F.embedding(story, table), story, position)  # [B, N, D], the core's dense form
    assert torch.allclose(embed_sentences(story, table, position), expected)
    grad = torch.randn(B, N, D, dtype=torch.float64)
    (a,) = torch.autograd.grad((embed_sentences(story, table, position) * grad).sum(), table)
    (b,) = torch.autograd.grad((expected * grad).sum(), table)
    assert torch.allclose(a, b)


def test_word_bags_by_hand():
    bags = word_bags(torch.tensor([[[4, 2, 4, 0]]]), V, position="paper")  # one sentence of J = 3 words
    assert bags.shape == (2, 1, V)
    # word 4 at j = 1 and 3: (1 - 1/3) + (1 - 3/3) = 2/3 and (1 - 2/3) + (1 - 6/3) = -2/3; word 2 at j = 2: 1/3 and -1/3
    assert torch.allclose(bags[:, 0, 4], torch.tensor([2 / 3, -2 / 3])) and torch.allclose(bags[:, 0, 2], torch.tensor([1 / 3, -1 / 3]))
    assert bags[:, 0, [0, 1, 3]].abs().sum() == 0
    assert word_bags(torch.tensor([[4, 2, 4, 0]]), V, position=False)[0, 0, 4] == 2


def test_the_code_form_needs_the_width():
    with pytest.raises(ValueError, match="needs dim"):
        word_bags(torch.tensor([[4, 2, 0]]), V, position="code")


def test_word_bags_of_the_code_form_by_hand():
    # J = 3, D = 2: c_j = (j - 2) / 3 = -1/3, 0, 1/3; a_j = 1 - 2 c_j (D + 1) / D = 2, 1, 0; b_j = -4 c_j = 4/3, 0, -4/3
    bags = word_bags(torch.tensor([[4, 2, 4, 0]]), V, position="code", dim=2)
    assert torch.allclose(bags[:, 0, 4], torch.tensor([2.0 + 0.0, 4 / 3 - 4 / 3])) and torch.allclose(bags[:, 0, 2], torch.tensor([1.0, 0.0]))
    # so l_kj = a_j - (k/D) b_j = 1 + 4 (k - 3/2)(j - 2) / 6: word 1 weighs 1 + 1/3 in k = 1 and 1 - 1/3 in k = 2
    table = torch.zeros(V, 2)
    table[4, :] = 1.0
    one = embed_sentences(torch.tensor([[4, 0, 0, 0]]), table, "code")  # J = 1: c = 0, every weight 1
    assert torch.allclose(one, torch.tensor([[1.0, 1.0]]))
    first = embed_sentences(torch.tensor([[4, 2, 2, 0]]), table, "code")  # word 4 at j = 1 of 3 only
    assert torch.allclose(first, torch.tensor([[4 / 3, 2 / 3]]))


# -- encoders -------------------------------------------------------------------------------------
def test_encoder_is_the_position_weighted_sum_plus_the_time_row():
    torch.manual_seed(0)
    encoder = SentenceEncoder(V, D, slots=N, position=True).double()
    assert encoder.position == "code", "True is the original code's form"
    story, times = _story(), torch.tensor([[4, 3, 2, 1, 0], [2, 1, 0, 0, 0], [0] * 5])
    out = encoder(story, times)  # [B, N, D]
    b, i = 1, 0  # by hand: sum_j l_kj A[x_j] + T_A[t]
    words = story[b, i]
    expected = (position_weights(words, D, torch.float64, "code") * encoder.words[words]).sum(0) + encoder.time[2]
    assert out.shape == (B, N, D) and torch.allclose(out[b, i], expected)


def test_bag_of_words_ignores_order_and_position_encoding_does_not():
    torch.manual_seed(0)
    bag, pe = SentenceEncoder(V, D, position=False), SentenceEncoder(V, D, position=True)
    pe.words.data.copy_(bag.words.data)
    sentence, swapped = torch.tensor([[3, 5, 0, 0]]), torch.tensor([[5, 3, 0, 0]])
    assert torch.allclose(bag(sentence), bag(swapped))
    assert not torch.allclose(pe(sentence), pe(swapped))


def test_word_distributions_give_the_same_embedding_as_word_ids():
    torch.manual_seed(0)
    encoder = SentenceEncoder(V, D, slots=N).double()
    story = _story()
    soft = F.one_hot(story, V).double() * story.ne(0).unsqueeze(-1)  # [B, N, L, V]
    # soft words count every position as a word, so compare sentences of full length only
    full = story.ne(0).all(-1)  # [B, N]
    assert full.any()
    assert torch.allclose(encoder(soft)[full], encoder(story)[full])


def test_initial_weights_are_normal_with_std_one_tenth():
    torch.manual_seed(0)
    encoder = SentenceEncoder(400, 50, slots=50)
    assert abs(encoder.words.std().item() - 0.1) < 0.005 and abs(encoder.words.mean().item()) < 0.005


# -- the memory -----------------------------------------------------------------------------------
def test_load_gives_keys_values_and_mask():
    torch.manual_seed(0)
    memory = StoryMemory(slots=N, word_size=D)
    memory.bind(V)
    story = _story()
    state = memory.load(story)
    assert isinstance(state, StoryState)
    assert state.memory.shape == state.values.shape == (B, N, D)
    assert torch.equal(state.mask, story_mask(story))
    times, real = recency_index(state.mask), state.mask
    assert torch.allclose(state.memory[real], memory.keys(story, times)[real])
    assert torch.allclose(state.values[real], memory.values(story, times)[real])
    assert (state.memory[~real] == 0).all() and (state.values[~real] == 0).all(), "only real sentences are embedded"


def test_read_is_the_weighted_sum_of_the_values():
    torch.manual_seed(0)
    memory = StoryMemory(slots=N, word_size=D)
    memory.bind(V)
    state = memory.load(_story())
    weights = torch.softmax(torch.randn(B, 2, N), -1)  # [B, h=2, N]
    reads = memory.read(weights, state)
    assert reads.shape == (B, 2, D)
    assert torch.allclose(reads[1, 0], (weights[1, 0, :, None] * state.values[1]).sum(0), atol=1e-6)


def test_noise_only_in_training():
    memory = StoryMemory(slots=N, word_size=D, random_noise=0.5)
    memory.bind(V)
    mask = torch.ones(40, N, dtype=torch.bool)
    memory.eval()
    assert torch.equal(memory.times(mask), recency_index(mask))
    memory.train()
    torch.manual_seed(1)
    noisy = memory.times(mask)
    assert not torch.equal(noisy, recency_index(mask))
    assert noisy.max() == N - 1, "indices past the temporal table are clamped to its last row"


def test_without_temporal_encoding_recency_changes_nothing():
    torch.manual_seed(0)
    memory = StoryMemory(slots=N, word_size=D, temporal_encoding=False)
    memory.bind(V)
    assert memory.keys.time is None
    story = _story()
    a = memory.load(story, times=torch.zeros(B, N, dtype=torch.long))
    b = memory.load(story, times=recency_index(story_mask(story)))
    assert torch.equal(a.memory, b.memory)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"slots": 0}, r"StoryMemory: slots must be an integer of at least 1, got 0; set slots to 1 or more\."),
        ({"word_size": 2.5}, r"StoryMemory: word_size must be an integer of at least 1, got 2\.5"),
        ({"random_noise": 1.0}, r"StoryMemory: random_noise must be a probability in \[0, 1\), got 1\.0; use 0\.1"),
    ],
)
def test_bad_options_are_refused_in_one_sentence(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        StoryMemory(**kwargs)


def test_unbound_and_oversized_stories_are_refused():
    memory = StoryMemory(slots=N, word_size=D)
    with pytest.raises(ConfigError, match=r"StoryMemory is not bound; call bind\(vocab_size\)"):
        memory.load(_story())
    memory.bind(V)
    with pytest.raises(ShapeError, match=r"story has shape \[3, 6, 4\] but \[B, N, L\] with N <= 5 was expected"):
        memory.load(torch.ones(B, N + 1, L, dtype=torch.long))


def test_share_ties_encoders():
    lower, upper = StoryMemory(N, D), StoryMemory(N, D)
    lower.bind(V)
    upper.bind(V)
    upper.share(keys=lower.values)
    assert upper.keys is lower.values and upper.keys.words is lower.values.words


# -- conformance (inside the StoryProbe harness the plugin registers) -----------------------------
@pytest.mark.parametrize(
    "factory",
    [
        lambda: StoryMemory(slots=7, word_size=11),
        lambda: StoryMemory(slots=5, word_size=11, position_encoding=False, random_noise=0.3),  # noise: clamped indices
        lambda: StoryMemory(slots=7, word_size=11, temporal_encoding=False),
    ],
    ids=["default", "bag-of-words-noise", "no-temporal"],
)
def test_story_memory_conforms(factory):
    check_memory(factory)
