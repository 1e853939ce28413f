"""DMN+ (Xiong, Merity & Socher 2016) for textual question answering, assembled from mannkit's interfaces.

Shape letters: B batch, N sentences (facts), L words per sentence, Q question words, V vocabulary,
A answer classes, W the model width d (the memory's word size), T passes, h heads, C read width.

- Input module: word embeddings -> position-encoded sentence vectors (:func:`mannkit.nn.encode_sentences`)
  -> the memory's input fusion layer (:class:`FactMemory`: a bidirectional GRU, directions summed) -> facts F.
- Question module: a GRU over the question's word embeddings (the same embedding matrix); its
  final state is q.
- Episodic memory: ``m_0 = q``; pass t hands ``[q; m_{t-1}]`` to the head (an :class:`AttentionGRUHead`
  whose :class:`InteractionAddressing` computes the attention gates over facts), which reads the
  episode's context ``c_t``; then ``m_t = ReLU(W_t [m_{t-1}; c_t; q] + b_t)`` with separate weights per
  pass (the untied update, eq. 15).
- Answer module: ``logits = W_a [m_T; q] + b_a``. bAbI answers are single classes here (the data
  module maps each full answer string to one class), so the paper's GRU answer decoder, which emits
  words one at a time, is replaced by this one linear classifier.

The head and its addressing are ordinary components: ``head: {class_path: AttentionGRUHead, init_args:
{addressing: {class_path: ...}}}`` swaps the attention (the GRU takes any weighting). The pass query
``[q; m_{t-1}]`` (2W numbers) is handed to the addressing as it is when it asks for exactly that many
parameters with one head (InteractionAddressing); otherwise a learned linear map turns the query into
the ``count * P`` parameters the head's addressing asks for (e.g. W + 1 for ContentAddressing).

>>> import torch
>>> model = DMNPlus(memory=FactMemory(word_size=8), passes=2)
>>> model.bind(vocab_size=20, answer_size=5, max_sentences=4, sentence_length=3, question_length=3)
>>> story = torch.tensor([[[3, 4, 0], [5, 6, 7], [0, 0, 0], [0, 0, 0]]])   # B=1, N=4, L=3: two sentences
>>> out = model(story, torch.tensor([[8, 9, 0]]), record=True)
>>> out.logits.shape, out.trace["attention"].shape, out.trace["attention"][0, :, 2:].sum().item()
(torch.Size([1, 5]), torch.Size([1, 2, 4]), 0.0)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mannkit.core.errors import ConfigError, DataError, ShapeError
from mannkit.core.interfaces import Head, QAModel, QAOutput
from mannkit.core.registry import register
from mannkit.nn.text import encode_sentences
from mannkit_dmn._util import positive_int, probability, xavier_, xavier_gru_
from mannkit_dmn.addressing import InteractionAddressing
from mannkit_dmn.episode import AttentionGRUHead
from mannkit_dmn.memory import FactMemory, story_lengths

__all__ = ["DMNPlus", "memory_update", "last_state"]


def memory_update(previous: Tensor, context: Tensor, question: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``m_t = ReLU(W_t [m_{t-1}; c_t; q] + b)`` (DMN+ eq. 15, the untied update: W_t is this pass's own).

    Args:
        previous: m_{t-1}, ``[B, W]``.
        context: c_t, ``[B, C']`` (every head's read, side by side).
        question: q, ``[B, W]``.
        weight: W_t, ``[W, 2W + C']``; bias: b, ``[W]``.

    Returns:
        m_t, ``[B, W]``.
    """
    return F.relu(F.linear(torch.cat([previous, context, question], dim=-1), weight, bias))


def last_state(outputs: Tensor, words: Tensor) -> Tensor:
    """A unidirectional RNN's state after each sequence's last word (padding 0 comes after the words).

    Args:
        outputs: the RNN's output at every position, ``[B, Q, W]``.
        words: the word ids, ``[B, Q]``.

    Returns:
        ``[B, W]`` (the first position's output for a sequence with no words).

    >>> last_state(torch.arange(6.0).view(1, 3, 2), torch.tensor([[4, 5, 0]])).tolist()
    [[2.0, 3.0]]
    """
    last = (story_lengths(words != 0) - 1).clamp_min(0)  # index of the last word, [B]
    index = last.view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])  # [B] -> [B, 1, W]
    return outputs.gather(1, index).squeeze(1)  # [B, 1, W] -> [B, W]


@register
class DMNPlus(QAModel):
    """The DMN+ question-answering model: input fusion, a question GRU, T episodic passes, a classifier.

    Shapes: story ``[B, N, L]`` and question ``[B, Q]`` word ids -> logits ``[B, A]``; with
    ``record``, the trace holds ``attention [B, T * count, N]``, the head's weighting over the
    facts in each pass (pass-major; ``[B, T, N]`` for one head), zero at padded sentences.

    Args:
        memory: the input fusion layer and fact store; null for ``FactMemory()`` (W = 80, dropout 0.1).
            Its ``word_size`` is the width W of every vector of the model (embeddings, facts, q, m).
        head: reads one episode per pass from ``[q; m_{t-1}]``; null for
            ``AttentionGRUHead(InteractionAddressing())``, DMN+'s attention GRU.
        passes: T, the number of episodic memory passes (3 in the paper).
        answer_dropout: dropout probability on the answer module's input ``[m_T; q]``, in training only
            (DMN+ sec. 4.2 keeps it with probability 0.9); 0 for none.
        position_encoding: weight the words of a sentence by position (DMN+'s sentence reader) instead of
            a plain bag of words.
    """

    def __init__(
        self,
        memory: FactMemory | None = None,
        head: Head | None = None,
        passes: int = 3,
        answer_dropout: float = 0.1,
        position_encoding: bool = True,
    ) -> None:
        super().__init__()
        positive_int("DMNPlus", "passes", passes)
        probability("DMNPlus", "answer_dropout", answer_dropout)
        memory = FactMemory() if memory is None else memory
        head = AttentionGRUHead(InteractionAddressing()) if head is None else head
        if not callable(getattr(memory, "load", None)):
            raise ConfigError(
                f"DMNPlus: memory must load a story's sentence encodings (such as FactMemory), but it is "
                f"{type(memory).__name__}; use class_path FactMemory or null."
            )
        if not isinstance(head, Head):
            raise ConfigError(f"DMNPlus: head must be a Head component, got {type(head).__name__}; use class_path AttentionGRUHead or null.")
        self.memory, self.head = memory, head
        self.passes, self.answer_dropout, self.position_encoding = passes, answer_dropout, position_encoding
        self.embedding: nn.Embedding | None = None
        self.question_gru: nn.GRU | None = None
        self.to_params: nn.Linear | None = None  # [q; m] -> the head's parameters, when they are not [q; m] itself
        self.updates = nn.ModuleList()  # W_t, b_t: one layer per pass (untied)
        self.answer: nn.Linear | None = None  # W_a, b_a

    def bind(self, vocab_size: int, answer_size: int, max_sentences: int, sentence_length: int, question_length: int) -> None:
        """Create the layers for V words and A answers (the model runs on stories of any N, L and questions of any Q)."""
        if not self._bind_once(vocab_size=vocab_size, answer_size=answer_size):
            return
        for name, value in (("vocab_size", vocab_size), ("answer_size", answer_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"DMNPlus: {name} must be a positive integer, got {value!r}; it comes from the data, so check the data set.")
        self.vocab_size, self.answer_size = vocab_size, answer_size
        W = self.memory.word_size
        self.embedding = nn.Embedding(vocab_size, W, padding_idx=0)
        nn.init.uniform_(self.embedding.weight, -math.sqrt(3), math.sqrt(3))  # DMN+ sec. 4.2: uniform in [-sqrt 3, sqrt 3]
        with torch.no_grad():
            self.embedding.weight[0].zero_()  # the padding word contributes nothing
        self.question_gru = xavier_gru_(nn.GRU(W, W, batch_first=True))
        self.head.bind(self.memory)
        count, P = self.head.count, self.head.param_size(self.memory)
        self._param_size = P
        if not (count == 1 and P == 2 * W):
            self.to_params = xavier_(nn.Linear(2 * W, count * P))
        reads = count * self.head.read_size(self.memory)
        if reads < 1:
            raise ConfigError(
                f"DMNPlus: the head {type(self.head).__name__} reads nothing, but each pass needs an episode to read; "
                "use a reading head such as AttentionGRUHead."
            )
        self.updates.extend(xavier_(nn.Linear(2 * W + reads, W)) for _ in range(self.passes))
        self.answer = xavier_(nn.Linear(2 * W, answer_size))

    def _check_inputs(self, story: Tensor, question: Tensor) -> None:
        if self.answer is None:
            raise ConfigError("DMNPlus is not built yet; call model.bind(...) with the data's sizes or let QASystem build it.")
        if story.dim() != 3 or question.dim() != 2 or story.shape[0] != question.shape[0]:
            raise ShapeError(
                f"DMNPlus: story has shape {list(story.shape)} and question {list(question.shape)} but [B, N, L] and "
                "[B, Q] with the same B were expected."
            )
        for name, words in (("story", story), ("question", question)):
            if words.dtype != torch.long:
                raise DataError(f"DMNPlus: the {name} holds {words.dtype} values but word ids (int64) were expected.")
            if words.numel() and (int(words.min()) < 0 or int(words.max()) >= self.vocab_size):
                raise DataError(
                    f"DMNPlus: the {name} holds word ids in [{int(words.min())}, {int(words.max())}] but the vocabulary has "
                    f"{self.vocab_size} words (ids 0 to {self.vocab_size - 1}); bind the model to the data's vocabulary size."
                )

    def forward(self, story: Tensor, question: Tensor, record: bool = False) -> QAOutput:
        """``story [B, N, L]``, ``question [B, Q]`` -> logits ``[B, A]`` (and ``attention [B, T * count, N]``)."""
        self._check_inputs(story, question)
        B, N, _ = story.shape
        # facts: only the sentence slots up to the batch's longest story are worth computing
        used = story.ne(0).any(-1)  # [B, N], True at real sentences
        n = max(int(story_lengths(used).max()) if B else 0, 1)
        story, used = story[:, :n], used[:, :n]  # [B, n, L], [B, n]
        sentences = encode_sentences(self.embedding(story), story, self.position_encoding)  # [B, n, L, W] -> [B, n, W]
        facts = self.memory.load(sentences, used)  # F [B, n, W] and its mask
        # question module: the GRU's state after the last question word
        outputs, _ = self.question_gru(self.embedding(question))  # [B, Q, W]
        q = last_state(outputs, question)  # [B, W]
        # episodic memory: T passes, each reading one episode with the head
        count = self.head.count
        head_state = self.head.initial_state(B, self.memory, story.device, q.dtype)
        m = q  # m_0 = q
        attention = []
        for t in range(self.passes):
            query = torch.cat([q, m], dim=-1)  # [q; m_{t-1}], [B, 2W]
            params = query if self.to_params is None else self.to_params(query)  # [B, count * P]
            out = self.head(params.view(B, count, self._param_size), self.memory, facts, head_state, record)  # -> [B, count, P]
            head_state = out.state
            context = out.reads.reshape(B, -1)  # c_t: [B, count, C] -> [B, count * C]
            m = memory_update(m, context, q, self.updates[t].weight, self.updates[t].bias)  # m_t (eq. 15)
            if record and "read_weights" in out.trace:
                attention.append(out.trace["read_weights"])  # [B, count, n]
        # answer module: a classifier on [m_T; q]
        logits = self.answer(F.dropout(torch.cat([m, q], dim=-1), self.answer_dropout, self.training))  # [B, A]
        trace = None
        if record:
            trace = {}
            if attention:
                weights = torch.stack(attention, dim=1).flatten(1, 2)  # [B, T, count, n] -> [B, T * count, n]
                trace["attention"] = F.pad(weights, (0, N - n))  # zero for the sentence slots not computed
        return QAOutput(logits, trace)
