"""The five transduction tasks of Grefenstette et al. 2015 ("Learning to Transduce with Unbounded Memory").

Shape letters: B batch, T time, V vocabulary (``symbols``), L source length, L' target length.

Each sequence reads a source of L symbols (one-hot over V), then a delimiter (channel V), then
writes the target, one class id per step (cross-entropy, ``loss = "ce"``): I = V + 1, O = V,
``T = max over the batch of L + 1 + L'``; only the target steps are scored (``mask``). Source
lengths are drawn per sequence, uniformly in ``[min_length, max_length]`` (the paper trains on
8-64 and tests on 65-128); shorter sequences of a batch are padded with unscored steps.

==========================  ===========================================================================
task                        target
==========================  ===========================================================================
:class:`CopyTransduction`   the source
:class:`ReversalTask`       the source, last symbol first
:class:`BigramFlipTask`     each pair swapped: ``a1 a2 a3 a4 -> a2 a1 a4 a3`` (an odd last symbol stays)
:class:`SVOtoSOVTask`       a sentence of a small inversion-transduction grammar with every verb moved
                            after its object (``the big dog saw the cat that ate the fish`` ->
                            ``the big dog the cat that the fish ate saw``)
:class:`GenderConjugationTask`  the same sentences, each determiner replaced by the gendered determiner
                            of the noun it belongs to, which comes later (``the big dog`` -> ``der big dog``)
==========================  ===========================================================================

The grammar (our own, after the paper's description): ``S -> NP V NP``; ``NP -> DET ADJ^k N``
(k <= 3) or ``NP -> DET ADJ^k N that V NP`` (a relative clause); the SOV side inverts every
``V NP`` into ``NP V``. Word ids: 0 ``the``, 1 ``that``, 2-4 the three gendered determiners, then
verbs, adjectives and nouns, a third of the rest each; a noun's gender is its id mod 3. Sentences
are drawn at exactly the asked length.

>>> task = ReversalTask(symbols=5, min_length=3, max_length=3, batch_size=2)
>>> batch = task.example_batch(1)
>>> ids = batch["input"][0, :3, :5].argmax(-1)
>>> batch["target"][0, 4:].tolist() == ids.flip(0).tolist(), batch["mask"][0].tolist()
(True, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
"""

from __future__ import annotations

import random

import torch
from torch import Tensor

from mannkit.core.registry import register
from mannkit.tasks.base import Batch, SequenceTask
from mannkit.tasks.difficulty import Difficulty, check_at_least

__all__ = [
    "TransductionTask",
    "CopyTransduction",
    "ReversalTask",
    "BigramFlipTask",
    "SVOtoSOVTask",
    "GenderConjugationTask",
    "layout",
    "itg_sentence",
]


def layout(source: Tensor, source_length: Tensor, target: Tensor, target_length: Tensor, symbols: int) -> Batch:
    """Lay out pairs as one batch: source one-hot, delimiter, then the scored target steps.

    Args:
        source: ``[B, L]`` ids (any value after ``source_length``).
        source_length: ``[B]`` int64.
        target: ``[B, L']`` ids (any value after ``target_length``).
        target_length: ``[B]`` int64.
        symbols: V; the delimiter is input channel V.
    """
    B = source.shape[0]
    T = int((source_length + 1 + target_length).max())
    steps = torch.arange(T).unsqueeze(0)  # [1, T]
    in_source = steps < source_length.unsqueeze(1)  # [B, T]
    at = steps.expand(B, T).clamp(max=source.shape[1] - 1)
    x = torch.zeros(B, T, symbols + 1)
    x.scatter_(2, source.gather(1, at).clamp(0, symbols - 1).unsqueeze(-1), in_source.unsqueeze(-1).float())
    x[:, :, symbols] = (steps == source_length.unsqueeze(1)).float()  # the delimiter
    position = steps - source_length.unsqueeze(1) - 1  # [B, T]: index into the target
    scored = (position >= 0) & (position < target_length.unsqueeze(1))
    ids = target.gather(1, position.clamp(0, target.shape[1] - 1))
    return {"input": x, "target": torch.where(scored, ids, torch.zeros_like(ids)).long(), "mask": scored.float()}


class TransductionTask(SequenceTask):
    """Base of the transduction tasks (abstract): a source, a delimiter, the target (see the module).

    Args:
        symbols: V, the vocabulary (the paper's is 128).
        min_length: shortest training source.
        max_length: longest training source.
        test_lengths: one test set per source length (named ``len{L}``), e.g. ``[65, 96, 128]``.
        batch_size: sequences per batch (B; the paper's is 10).
        train_batches: batches per training epoch.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.
    """

    loss = "ce"
    difficulty = (Difficulty("length", tag="len", tests="test_lengths"),)
    #: The fewest symbols the task's vocabulary needs.
    min_symbols = 2

    def __init__(self, symbols: int = 128, min_length: int = 8, max_length: int = 64, test_lengths: list[int] = [65, 96, 128],
                 batch_size: int = 10, train_batches: int = 1000, val_batches: int = 8, test_batches: int = 8, seed: int = 0) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        check_at_least(type(self).__name__, "symbols", symbols, self.min_symbols)
        self.symbols = symbols
        self.set_difficulty(min_length=min_length, max_length=max_length, test_lengths=test_lengths)
        self.input_size, self.output_size = symbols + 1, symbols

    def generate(self, generator: torch.Generator, batch_size: int, min_length: int = 8, max_length: int = 64) -> Batch:
        lengths = torch.randint(min_length, max_length + 1, (batch_size,), generator=generator)  # L per sequence, [B]
        source, target, target_length = self.pairs(generator, lengths)
        return layout(source, lengths, target, target_length, self.symbols)

    def pairs(self, generator: torch.Generator, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``lengths [B]`` -> ``(source [B, L], target [B, L'], target_length [B])``; by default a permutation of a random source."""
        source = torch.randint(0, self.symbols, (len(lengths), int(lengths.max())), generator=generator)  # [B, L]
        index = self.permutation(lengths, source.shape[1])  # [B, L]
        return source, source.gather(1, index), lengths

    def permutation(self, lengths: Tensor, width: int) -> Tensor:
        """``[B, L]`` int64: target step j reads source position ``index[b, j]`` (a subclass says which)."""
        raise NotImplementedError


@register(kind="task")
class CopyTransduction(TransductionTask):
    """Sequence copy: the target is the source (Grefenstette et al. 2015). Arguments: see :class:`TransductionTask`."""

    def permutation(self, lengths: Tensor, width: int) -> Tensor:
        return torch.arange(width).expand(len(lengths), width)


@register(kind="task")
class ReversalTask(TransductionTask):
    """Sequence reversal: the target is the source, last symbol first. Arguments: see :class:`TransductionTask`."""

    def permutation(self, lengths: Tensor, width: int) -> Tensor:
        return (lengths.unsqueeze(1) - 1 - torch.arange(width)).clamp(min=0)  # L-1-j (padding reads 0)


@register(kind="task")
class BigramFlipTask(TransductionTask):
    """Bigram flipping: ``a1 a2 a3 a4 -> a2 a1 a4 a3`` (an odd last symbol stays). Arguments: see :class:`TransductionTask`."""

    def permutation(self, lengths: Tensor, width: int) -> Tensor:
        j = torch.arange(width).expand(len(lengths), width)
        partner = j ^ 1  # 0<->1, 2<->3, ...
        return torch.where(partner < lengths.unsqueeze(1), partner, j)


# -- the grammar tasks ------------------------------------------------------------------------
THE, THAT, GENDERED = 0, 1, (2, 3, 4)


def _classes(symbols: int) -> tuple[range, range, range]:
    """Verb, adjective and noun ids of a vocabulary of V symbols (a third of ids 5.. each, nouns take the rest)."""
    third = (symbols - 5) // 3
    return range(5, 5 + third), range(5 + third, 5 + 2 * third), range(5 + 2 * third, symbols)


def _noun_phrase(rng: random.Random, n: int, words: tuple[range, range, range], sov: bool) -> tuple[list[int], list[int]]:
    """An NP of exactly n >= 2 words: ``(source, target)``; ``sov`` puts the relative clause's verb last."""
    verbs, adjectives, nouns = words
    if n <= 5:  # DET ADJ^(n-2) N
        body = [rng.choice(adjectives) for _ in range(n - 2)] + [rng.choice(nouns)]
        return [THE, *body], [THE, *body]
    k = rng.randint(0, min(3, n - 6))  # DET ADJ^k N that V NP, the inner NP of n - 4 - k >= 2 words
    head = [rng.choice(adjectives) for _ in range(k)] + [rng.choice(nouns)]
    verb = rng.choice(verbs)
    inner_source, inner_target = _noun_phrase(rng, n - 4 - k, words, sov)
    clause = [*inner_target, verb] if sov else [verb, *inner_target]
    return [THE, *head, THAT, verb, *inner_source], [THE, *head, THAT, *clause]


def itg_sentence(rng: random.Random, length: int, symbols: int, sov: bool) -> tuple[list[int], list[int]]:
    """A sentence ``NP V NP`` of exactly ``length >= 5`` words and its transduction: ``(source, target)``.

    ``sov``: the target moves every verb after its object (SVO -> SOV), else keeps the order.

    >>> source, target = itg_sentence(random.Random(0), 9, 128, sov=True)
    >>> len(source), sorted(source) == sorted(target), source[0] == target[0] == THE
    (9, True, True)
    """
    words = _classes(symbols)
    subject = rng.randint(2, length - 3)
    s_source, s_target = _noun_phrase(rng, subject, words, sov)
    o_source, o_target = _noun_phrase(rng, length - 1 - subject, words, sov)
    verb = rng.choice(words[0])
    target = [*s_target, *o_target, verb] if sov else [*s_target, verb, *o_target]
    return [*s_source, verb, *o_source], target


def _gendered(sentence: list[int], nouns: range) -> list[int]:
    """Each ``the`` becomes the determiner of the gender (id mod 3) of the next noun."""
    out, pending = list(sentence), []
    for i, word in enumerate(sentence):
        if word == THE:
            pending.append(i)
        elif word in nouns and pending:
            out[pending.pop()] = GENDERED[word % 3]
    return out


class _GrammarTask(TransductionTask):
    difficulty = (Difficulty("length", tag="len", tests="test_lengths", low=5),)
    min_symbols = 11  # five function words and at least two verbs, adjectives and nouns
    sov = False

    def pairs(self, generator: torch.Generator, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))  # seeded by the task's generator
        B, L = len(lengths), int(lengths.max())
        source, target = torch.zeros(B, L, dtype=torch.long), torch.zeros(B, L, dtype=torch.long)
        for b, n in enumerate(lengths.tolist()):  # sentences of a grammar: one at a time
            s, t = itg_sentence(rng, n, self.symbols, self.sov)
            source[b, :n], target[b, :n] = torch.tensor(s), torch.tensor(self.transform(t))
        return source, target, lengths

    def transform(self, target: list[int]) -> list[int]:
        return target


@register(kind="task")
class SVOtoSOVTask(_GrammarTask):
    """SVO to SOV: every verb moves after its object, in sentences of a small inversion-transduction grammar.

    Sources of at least 5 words (see the module). Arguments: see :class:`TransductionTask`.
    """

    sov = True


@register(kind="task")
class GenderConjugationTask(_GrammarTask):
    """Gender conjugation: each ``the`` becomes the gendered determiner of its noun, which comes later in the phrase.

    Sources of at least 5 words (see the module). Arguments: see :class:`TransductionTask`.
    """

    def transform(self, target: list[int]) -> list[int]:
        return _gendered(target, _classes(self.symbols)[2])
