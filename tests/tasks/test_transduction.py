"""The transduction tasks of Grefenstette et al. 2015: layout, each target, the grammars, seeding, test lengths."""

import random

import pytest
import torch

from mannkit.core.errors import ConfigError
from mannkit.tasks import BigramFlipTask, CopyTransduction, GenderConjugationTask, ReversalTask, SVOtoSOVTask
from mannkit.tasks.transduction import GENDERED, THAT, THE, _classes, itg_sentence

V = 13


def _pairs(batch, symbols=V):  # noqa: ANN001,ANN202
    """(source ids, target ids) per sequence, read back from a batch."""
    out = []
    for x, target, mask in zip(batch["input"], batch["target"], batch["mask"]):
        L = int(x[:, symbols].argmax())  # the delimiter's step
        source = x[:L, :symbols].argmax(-1).tolist()
        assert x[:L, :symbols].sum(-1).eq(1).all() and x[L + 1 :].sum() == 0
        out.append((source, target[mask > 0].tolist()))
    return out


def test_the_paper_settings_are_the_defaults():
    task = ReversalTask()
    assert (task.symbols, task.min_length, task.max_length, task.batch_size) == (128, 8, 64, 10)
    assert task.input_size == 129 and task.output_size == 128 and task.loss == "ce"
    assert task.test_set_names == ["len65", "len96", "len128"]


@pytest.mark.parametrize(
    "cls, expected",
    [
        (CopyTransduction, lambda s: s),
        (ReversalTask, lambda s: s[::-1]),
        (BigramFlipTask, lambda s: [s[j ^ 1] if (j ^ 1) < len(s) else s[j] for j in range(len(s))]),
    ],
)
def test_each_target_follows_its_source(cls, expected):
    batch = cls(symbols=V, min_length=3, max_length=9, batch_size=7).example_batch(7)
    pairs = _pairs(batch)
    assert len({len(s) for s, _ in pairs}) > 1, "lengths are drawn per sequence"
    for source, target in pairs:
        assert 3 <= len(source) <= 9 and target == expected(source)


def test_bigram_flip_by_hand():
    task = BigramFlipTask(symbols=V)
    index = task.permutation(torch.tensor([5, 4]), 5)
    assert index.tolist() == [[1, 0, 3, 2, 4], [1, 0, 3, 2, 4]]  # length 5: the odd last stays; length 4: step 4 is padding


@pytest.mark.parametrize("length", [5, 6, 9, 40, 128])
def test_a_grammar_sentence_has_the_asked_length_and_its_verbs_move_after_their_objects(length):
    rng = random.Random(length)
    verbs, adjectives, nouns = _classes(128)
    source, target = itg_sentence(rng, length, 128, sov=True)
    assert len(source) == len(target) == length and sorted(source) == sorted(target)
    assert target[-1] in verbs and source[-1] in nouns  # S -> NP V NP becomes NP NP V
    same, _ = itg_sentence(random.Random(length), length, 128, sov=False)
    assert same == source


def test_svo_to_sov_batches_keep_the_words_and_end_on_a_verb():
    task = SVOtoSOVTask(symbols=V, min_length=8, max_length=8)
    verbs, _, nouns = _classes(V)
    for source, target in _pairs(task.example_batch(4)):
        assert source.count(THE) == target.count(THE) and sorted(source) == sorted(target)
        assert target[-1] in verbs


def test_gendered_determiners_by_hand():
    """``the a1 n1 that v the n2`` -> ``g(n1) a1 n1 that v g(n2) n2``, g the determiner of the noun's gender (id mod 3)."""
    from mannkit.tasks.transduction import _gendered

    verbs, adjectives, nouns = _classes(128)
    n1, n2, a1, v = nouns[0], nouns[1], adjectives[0], verbs[0]
    assert _gendered([THE, a1, n1, THAT, v, THE, n2], nouns) == [GENDERED[n1 % 3], a1, n1, THAT, v, GENDERED[n2 % 3], n2]
    assert GENDERED[n1 % 3] != GENDERED[n2 % 3]


def test_gender_conjugation_gives_each_determiner_its_nouns_gender():
    verbs, adjectives, nouns = _classes(V)
    task = GenderConjugationTask(symbols=V, min_length=6, max_length=20, batch_size=5)
    for source, target in _pairs(task.example_batch(5)):
        assert THE not in target and len(source) == len(target)
        for i, (s, t) in enumerate(zip(source, target)):
            if s != THE:
                assert s == t
            else:  # the determiner's noun is the first noun after it with no other determiner pending
                noun = next(w for w in source[i + 1 :] if w in nouns)
                if THAT not in source[i + 1 : source.index(noun, i + 1)]:
                    assert t == GENDERED[noun % 3]


def test_generation_is_seeded_and_the_test_sets_are_longer():
    a, b = (ReversalTask(symbols=V, batch_size=2, test_batches=1, seed=3) for _ in range(2))
    assert torch.equal(a.example_batch(2)["input"], b.example_batch(2)["input"])
    for (name, _), batches in zip(a.test_difficulties(), a.test_sets):
        length = int(name.removeprefix("len"))
        assert {len(s) for s, _ in _pairs(batches[0])} == {length}


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ReversalTask(symbols=1), r"^ReversalTask: symbols .*1"),
        (lambda: SVOtoSOVTask(min_length=4), r"^SVOtoSOVTask: min_length \(4\) must be at least 5"),
        (lambda: CopyTransduction(min_length=9, max_length=8), r"^CopyTransduction: .*min_length"),
    ],
)
def test_bad_settings_are_refused_in_one_sentence(build, message):
    with pytest.raises(ConfigError, match=message):
        build()
