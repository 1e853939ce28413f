"""MemN2N: End-to-End Memory Networks (Sukhbaatar et al. 2015) as a mannkit QA model.

Shape letters: B batch, N sentences (memory slots), L words per sentence, Q words in the
question, V words in the vocabulary (0 = padding), A answer classes, D embedding width, K hops.

The model is assembled from the plugin's interface pieces, one set per hop k = 1..K:

1. ``u^1 = sum_j l_j * B q_j``, the question's embedding;
2. the story as keys and values, ``StoryState(m^k, c^k, mask)`` (:class:`StoryMemory`);
3. ``p^k = addressing(u^k, m^k)`` and ``o^k = sum_i p^k_i c^k_i`` (:class:`HopReadHead`);
4. between hops, ``u^{k+1} = H u^k + o^k`` (:class:`HopController`, H = identity for adjacent tying);
5. ``logits = W (u^K + o^K)`` (eq. 3, before the softmax).

Weight tying (sec. 2.2): ``adjacent`` — ``A^{k+1} = C^k``, ``B = A^1``, ``W^T = C^K`` (the last needs
the words of each answer class, see :meth:`MemN2N.bind`: a class whose answer is one word of the
vocabulary takes that word's row of ``C^K``; list answers keep rows of their own, as answer-only
words do in the paper; without the words W is its own matrix);
``layerwise`` — ``A^1 = ... = A^K``, ``C^1 = ... = C^K``, a learned H, separate B and W. The
temporal tables follow their embedding (``T_A^{k+1} = T_C^k`` ...).

>>> import torch
>>> model = MemN2N(embedding_dim=8, hops=2)
>>> model.bind(vocab_size=12, answer_size=5, max_sentences=6, sentence_length=4, question_length=3)
>>> story, question = torch.randint(1, 12, (2, 6, 4)), torch.randint(1, 12, (2, 3))
>>> out = model(story, question, record=True)
>>> out.logits.shape, out.trace["attention"].shape
(torch.Size([2, 5]), torch.Size([2, 2, 6]))
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.interfaces import Addressing, QAModel, QAOutput
from mannkit.core.registry import register
from mannkit_memn2n.hop import HopController, HopReadHead, _linear_refused, has_scores
from mannkit_memn2n.memory import (
    INIT_STD,
    SentenceEncoder,
    StoryMemory,
    _check_int,
    _check_noise,
    _check_position,
    recent_slots,
    story_mask,
)

__all__ = ["MemN2N", "tied_answer_ids", "answer_matrix"]

ANSWER_SOFTMAXES = ("classes", "vocabulary")

TYINGS = ("adjacent", "layerwise")


def tied_answer_ids(answer_words: Tensor) -> Tensor:
    """The word each answer class is tied to (``W^T = C^K``), or 0 for a class with a row of its own.

    A class is tied when its answer is one word that no other class has (so two classes never share
    a row). A list answer ("apple,football" of bAbI task 8, "n,w" of task 19) gets a row of its own,
    as in the paper, where each such answer is a word of the vocabulary that only answers use; so
    does a word that several classes map to (answers missing from the stories' vocabulary, all
    mapped to one unknown-word id).

    Args:
        answer_words: word ids of each answer class ``[A, La]``, 0-padded.

    Returns:
        int64 ``[A]``.

    >>> tied_answer_ids(torch.tensor([[5, 0], [2, 3], [1, 0], [1, 0], [4, 0]])).tolist()
    [5, 0, 0, 0, 4]
    """
    words = answer_words.long()
    single = words.ne(0).sum(-1) == 1  # one-word answers, [A]
    first = words[:, 0]  # [A]
    same = (first.unsqueeze(0) == first.unsqueeze(1)) & single.unsqueeze(0) & single.unsqueeze(1)  # [A, A]
    return torch.where(single & (same.sum(-1) == 1) & first.ne(0), first, torch.zeros_like(first))


def answer_matrix(words: Tensor, answer_ids: Tensor, own: Tensor) -> Tensor:
    """``W [A, D]``: tied classes take their word's row of the embedding, the others their own row.

    Args:
        words: the word table ``C^K`` ``[V, D]``.
        answer_ids: from :func:`tied_answer_ids`, ``[A]`` (0 = own row).
        own: the classes' own rows ``[A, D]``.

    >>> answer_matrix(torch.eye(3), torch.tensor([2, 0]), torch.full((2, 3), 7.0)).tolist()
    [[0.0, 0.0, 1.0], [7.0, 7.0, 7.0]]
    """
    return torch.where(answer_ids.ne(0).unsqueeze(-1), words[answer_ids], own)  # [A] picks -> [A, D]


@register
class MemN2N(QAModel):
    """End-to-End Memory Network: K hops of attention over the story, then an answer class.

    Args:
        embedding_dim: D, the width of every embedding (the paper: 20 on bAbI 1k per task,
            50 jointly, 50-100 on 10k).
        hops: K, the number of memory hops (the paper: 3).
        tying: ``adjacent`` (``A^{k+1} = C^k``, ``B = A^1``, ``W^T = C^K`` for one-word answers when
            the system passes ``answer_words`` to :meth:`bind`) or ``layerwise``
            (one A and one C for every hop, plus a learned H between hops).
        position_encoding: weight words by their position in the sentence (PE): True or ``code``, the
            original code's form ``1 + 4 (k - (D+1)/2)(j - (J+1)/2) / (D J)``; ``paper``, the form sec. 4.1
            prints, ``(1 - j/J) - (k/D)(1 - 2j/J)`` (with it MemN2N did not learn bAbI task 16); False, a bag
            of words.
        temporal_encoding: add a learned vector per recency index to the memories (``T_A``, ``T_C``).
        random_noise: while training, the probability of an empty memory after each sentence (RN,
            which regularises ``T_A``/``T_C``); 0 for none.
        linear_start: start without the softmax of each hop (LS): the weights are the raw scores
            ``u^T m_i`` (0 at padded slots). A callback ends it with :meth:`set_linear_start`. Needs an
            addressing with ``scores()``.
        addressing: attention over the sentences (default :class:`DotProductAddressing`, eq. 1); any
            registered addressing works, one module shared by every hop. When it needs P != D
            parameters (ContentAddressing: D + 1), a learned map ``[P, D]`` turns u into them.
        memory_size: at most this many sentences are held (the paper: 50); the memory has M =
            min(memory_size, N) slots. A longer story keeps its M most recent sentences, a shorter one
            is padded with empty slots, so the addressing always sees M slots; the trace is mapped back
            onto the story's own N slots. Default: N, the longest story of the data.
        attend_empty_slots: let the hops' attention cover the empty slots too (zero key and value, so score 0
            and nothing read), as the original code's softmax over its fixed M slots does: a hop can then put
            weight on nothing. Off by default (empty slots get exactly zero weight); the joint bAbI preset turns it
            on: jointly on the 20 tasks of bAbI 1k, 10 seeds, it gave 16.3% mean test error on average against
            19.6%, every seed better (benchmarks/RESULTS.md).
        answer_softmax: ``classes`` (the softmax covers the A answer classes) or ``vocabulary`` (it covers every
            word of the vocabulary as well, as the original code's output layer ``[V, D]`` does: the scores
            ``C^K w . (u^K + o^K)`` of the words that answer nothing go into :attr:`QAOutput.rest`, so the loss
            also pushes them down and a question they win is wrong). ``vocabulary`` needs adjacent tying and the
            answers' words (the QA system passes them).
        position_length: one J for the position encoding of every sentence and question, as the original code
            (its longest sentence plus one); ``data``: J = max(L, Q) + 1 of the data :meth:`bind` is given
            (with ``BabiDataModule(drop_punctuation: true)``, the code's own J); None: each sentence's own length.
        time_scale: scale the time vectors by the position weight of position J (the original code); needs
            ``position_length``.
        answer_extra: the vocabulary softmax also scores the time rows and the padding word (the original code).
        nil_gradient: the padding word gets the gradient the original code's "nil" word gets (zero forward), so it
            counts in a clip of its table (``ClipEachGradient(together: [words, time])``); needs ``position_length``.
    """

    def __init__(
        self,
        embedding_dim: int = 20,
        hops: int = 3,
        tying: Literal["adjacent", "layerwise"] = "adjacent",
        position_encoding: bool | Literal["code", "paper"] = True,
        temporal_encoding: bool = True,
        random_noise: float = 0.1,
        linear_start: bool = False,
        addressing: Addressing | None = None,
        memory_size: int | None = None,
        attend_empty_slots: bool = False,
        answer_softmax: Literal["classes", "vocabulary"] = "classes",
        position_length: int | Literal["data"] | None = None,
        time_scale: bool = False,
        answer_extra: bool = False,
        nil_gradient: bool = False,
    ) -> None:
        super().__init__()
        _check_int("MemN2N", "embedding_dim", embedding_dim, 1)
        _check_int("MemN2N", "hops", hops, 1)
        if tying not in TYINGS:
            raise ConfigError(f"MemN2N: tying must be adjacent or layerwise, got {tying!r}; pick one of those.")
        _check_noise("MemN2N", random_noise)
        _check_position("MemN2N", position_encoding)
        if memory_size is not None:
            _check_int("MemN2N", "memory_size", memory_size, 1)
        self.head = HopReadHead(addressing)  # one head (and addressing) for every hop
        if linear_start and not has_scores(self.head.addressing):
            raise _linear_refused(self.head.addressing)
        self.head.set_linear(linear_start)
        self.embedding_dim, self.hops, self.tying = embedding_dim, hops, tying
        self.position_encoding, self.temporal_encoding = position_encoding, temporal_encoding
        self.random_noise, self.memory_size = float(random_noise), memory_size
        if not isinstance(attend_empty_slots, bool):
            raise ConfigError(f"MemN2N: attend_empty_slots must be true or false, got {attend_empty_slots!r}.")
        self.attend_empty_slots = attend_empty_slots
        if answer_softmax not in ANSWER_SOFTMAXES:
            raise ConfigError(
                f"MemN2N: answer_softmax must be classes or vocabulary, got {answer_softmax!r}; use classes (the softmax over "
                "the answers) or vocabulary (over every word, as the paper's W of size V x d)."
            )
        if answer_softmax == "vocabulary" and tying != "adjacent":
            raise ConfigError(
                "MemN2N: answer_softmax vocabulary scores words with the last output embedding C^K, which only adjacent "
                f"tying ties to the answer (tying is {tying!r}); set tying: adjacent or answer_softmax: classes."
            )
        self.answer_softmax = answer_softmax
        if answer_extra and answer_softmax != "vocabulary":
            raise ConfigError("MemN2N: answer_extra adds the time rows and a nil score to the vocabulary softmax; set answer_softmax: vocabulary.")
        if not (position_length is None or position_length == "data" or (type(position_length) is int and position_length >= 2)):
            raise ConfigError(f"MemN2N: position_length must be an integer of at least 2, data or null, got {position_length!r}; "
                              "use data for the original code's J (the longest sentence or question plus one).")
        if (time_scale or nil_gradient) and (position_length is None or not position_encoding):
            raise ConfigError("MemN2N: time_scale and nil_gradient need position_encoding and a position_length; set "
                              "position_length: data.")
        self.position_length, self.time_scale, self.answer_extra = position_length, time_scale, answer_extra
        self.nil_gradient = nil_gradient
        self.register_buffer("other_words", None, persistent=False)  # [V'] words no class has (bind fills it)
        self.controller = HopController(embedding_dim, linear_map=tying == "layerwise")
        self.controller.bind(embedding_dim)

    # -- linear start ---------------------------------------------------------------------------
    @property
    def linear_start(self) -> bool:
        """Whether the hops run without their softmax now."""
        return bool(self.head.linear)

    def set_linear_start(self, flag: bool) -> None:
        """End (False) or restart (True) linear start; kept in the state_dict."""
        self.head.set_linear(flag)

    # -- building -------------------------------------------------------------------------------
    def bind(self, vocab_size: int, answer_size: int, max_sentences: int, sentence_length: int,
             question_length: int, answer_words: Tensor | None = None) -> None:
        """Create the embeddings for V words, A answers and stories of N x L words.

        Args:
            answer_words: optional word ids of each answer class ``[A, La]`` (0-padded; QASystem passes them);
                with adjacent tying they tie the answer matrix to the last output embedding (``W^T = C^K``)
                for the classes :func:`tied_answer_ids` picks; the other classes keep rows of their own.
        """
        for name, value in (("vocab_size", vocab_size), ("answer_size", answer_size), ("max_sentences", max_sentences),
                            ("sentence_length", sentence_length), ("question_length", question_length)):
            _check_int("MemN2N", name, value, 1)
        if not self._bind_once(vocab_size=vocab_size, answer_size=answer_size, max_sentences=max_sentences):
            return
        size = min(self.memory_size or max_sentences, max_sentences)  # M
        D = self.embedding_dim
        J = max(sentence_length, question_length) + 1 if self.position_length == "data" else self.position_length
        memories = []
        for _ in range(self.hops):
            memory = StoryMemory(size, D, self.position_encoding, self.temporal_encoding, self.random_noise,
                                 position_length=J, time_scale=self.time_scale,
                                 nil_gradient=self.nil_gradient)
            memory.bind(vocab_size)
            memories.append(memory)
        if self.tying == "adjacent":
            for below, above in zip(memories, memories[1:]):
                above.share(keys=below.values)  # A^{k+1} = C^k, T_A^{k+1} = T_C^k
            self.question = memories[0].keys  # B = A^1 (its temporal table is not used)
        else:
            for memory in memories[1:]:
                memory.share(keys=memories[0].keys, values=memories[0].values)  # A^k = A^1, C^k = C^1
            self.question = SentenceEncoder(vocab_size, D, 0, self.position_encoding, J,
                                            nil_gradient=self.nil_gradient)  # B
        self.memories = nn.ModuleList(memories)
        self.head.bind(memories[0])
        P = self.head.param_size(memories[0])
        maps = [nn.Linear(D, P) if P != D else nn.Identity() for _ in range(1 if self.tying == "layerwise" else self.hops)]
        for layer in maps:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=INIT_STD)
                nn.init.zeros_(layer.bias)
        self.query_maps = nn.ModuleList(maps)  # u -> the addressing's P parameters, per hop (one when layer-wise)
        self.answer = nn.Linear(D, answer_size, bias=False)  # W: [A, D] (the untied rows when tied)
        nn.init.normal_(self.answer.weight, std=INIT_STD)
        if answer_words is not None and self.tying == "adjacent":
            if answer_words.dim() != 2 or answer_words.shape[0] != answer_size:
                raise ShapeError(
                    f"answer_words has shape [{', '.join(map(str, answer_words.shape))}] but [{answer_size}, La] was "
                    "expected (the word ids of each answer class)."
                )
            self.register_buffer("answer_ids", tied_answer_ids(answer_words))  # W^T = C^K where an answer is one word
        else:
            self.answer_ids = None
        if self.answer_softmax == "vocabulary":
            if self.answer_ids is None:
                raise ConfigError(
                    "MemN2N: answer_softmax vocabulary needs the answers' words, but bind() got no answer_words (QASystem "
                    "passes them when it takes the vocabulary from the data, not with sizes set by hand); leave the model's "
                    "sizes null or set answer_softmax: classes."
                )
            other = torch.ones(vocab_size, dtype=torch.bool)
            other[0] = False  # padding
            other[self.answer_ids] = False  # words that are answer classes are scored among the logits
            self.other_words = other.nonzero().flatten()  # [V'] word ids

    # -- the forward pass -----------------------------------------------------------------------
    def forward(self, story: Tensor, question: Tensor, record: bool = False) -> QAOutput:
        """``story [B, N, L]``, ``question [B, Q]`` (int64) -> logits ``[B, A]``; the trace holds
        ``attention [B, K, N]`` (each hop's weights over the story's slots, 0 at empty slots and at sentences
        beyond the memory size; raw scores under linear start)."""
        if not self.is_bound:
            raise ConfigError("MemN2N is not bound; call bind(vocab_size, answer_size, ...) first (the QA system does this).")
        if story.dim() != 3 or question.dim() != 2 or story.shape[0] != question.shape[0]:
            raise ShapeError(
                f"story has shape [{', '.join(map(str, story.shape))}] and question [{', '.join(map(str, question.shape))}] "
                "but [B, N, L] and [B, Q] with the same B were expected."
            )
        B, N, L = story.shape
        size = self.memories[0].slots  # M
        kept = None
        if N > size:
            kept = recent_slots(story_mask(story), size)  # the M most recent sentences' slots, [B, M]
            story = story.gather(1, kept.unsqueeze(-1).expand(B, size, L))  # [B, N, L] -> [B, M, L]
        elif N < size:
            story = F.pad(story, (0, 0, 0, size - N))  # empty slots after the story: [B, N, L] -> [B, M, L]
        mask = story_mask(story)  # [B, M]
        times = self.memories[0].times(mask) if self.temporal_encoding else None  # one RN draw for every hop
        u = self.question(question)  # u^1 = sum_j l_j B q_j: [B, Q] -> [B, D]
        cache: dict = {}  # the real sentences and their word bags, made once; a tied encoder embeds them once
        weights = []
        head_state = self.head.initial_state(story.shape[0], self.memories[0], story.device, u.dtype)
        for k, memory in enumerate(self.memories):
            if k > 0:
                u, _ = self.controller(o, u)  # u^{k+1} = H u^k + o^k
            state = memory.load(story, times, mask, cache)
            if self.attend_empty_slots:  # empty slots (zero key, zero value) join the softmax with score 0
                state = state._replace(mask=torch.ones_like(state.mask))
            params = self.query_maps[min(k, len(self.query_maps) - 1)](u).unsqueeze(1)  # [B, D] -> [B, 1, P]
            read = self.head(params, memory, state, head_state, record)
            head_state = read.state  # a stateful addressing carries its state from hop to hop
            o = read.reads[:, 0]  # o^k: [B, 1, D] -> [B, D]
            if record:
                weights.append(read.trace["read_weights"][:, 0])  # [B, N]
        top = u + o  # u^K + o^K
        if self.answer_ids is None:
            logits = self.answer(top)  # W (u^K + o^K): [B, D] -> [B, A]
        else:
            W = answer_matrix(self.memories[-1].values.words, self.answer_ids, self.answer.weight)  # [A, D]
            logits = top @ W.T  # [B, D] @ [D, A] -> [B, A]
        rest = None
        if self.other_words is not None and self.other_words.numel():
            words = self.memories[-1].values.words[self.other_words]  # C^K rows of the words no class has: [V', D]
            if self.answer_extra:  # the original code's output layer also scores its time words and its nil word (0)
                extra = [words]
                if self.memories[-1].values.time is not None:
                    extra.append(self.memories[-1].values.time)
                nil = self.memories[-1].values.nil().unsqueeze(0) if self.nil_gradient else words.new_zeros(1, words.shape[1])
                extra.append(nil)  # the nil word: score 0 (row 0, kept at zero, with nil_gradient)
                words = torch.cat(extra)  # [V' + M + 1, D]
            rest = torch.logsumexp(top @ words.T, dim=-1)  # log sum_w exp(C^K w . top): [B, V'] -> [B]
        trace = None
        if record:
            attention = torch.stack(weights, dim=1)  # K x [B, M] -> [B, K, M]
            if kept is not None:  # back onto the story's own slots: [B, K, M] -> [B, K, N], 0 at the dropped ones
                attention = attention.new_zeros(B, self.hops, N).scatter(2, kept.unsqueeze(1).expand(-1, self.hops, -1), attention)
            trace = {"attention": attention[..., :N]}  # [B, K, N]
        return QAOutput(logits, trace, rest)
