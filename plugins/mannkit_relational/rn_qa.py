"""A Relation Network QA model for bAbI (Santoro et al. 2017, sec. 4.3), trained by ``QASystem``.

Shape letters: B batch, N sentences in a story, L words per sentence, Q question words, V
vocabulary (0 = padding), A answers, M the most recent sentences kept, E word embedding width,
S LSTM width.

1. Each of the M most recent sentences is read word by word by an LSTM (its state after the last
   word is the sentence), and tagged with its recency (a one-hot over M: 0 = the latest sentence);
   the objects are ``[B, M, S + M]``, those past the story's start masked out.
2. The question is read by a second LSTM: ``q [B, S]``.
3. ``logits = RN(objects, q)`` (:class:`~mannkit_relational.relation_network.RelationNetwork`).

>>> import torch
>>> model = RelationNetworkQA(embedding_dim=4, lstm_size=5, g_layers=[6], f_layers=[7], memory_size=3)
>>> model.bind(vocab_size=9, answer_size=4, max_sentences=5, sentence_length=3, question_length=2)
>>> model(torch.randint(1, 9, (2, 5, 3)), torch.randint(1, 9, (2, 2))).logits.shape
torch.Size([2, 4])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import QAModel, QAOutput
from mannkit.core.registry import register
from mannkit_relational.relation_network import RelationNetwork, check_dropout, check_widths

__all__ = ["RelationNetworkQA", "recent_sentences", "encode_words"]


def recent_sentences(story: Tensor, memory_size: int) -> tuple[Tensor, Tensor]:
    """The M most recent sentences, latest first, and which of them exist.

    Args:
        story: ``[B, N, L]`` word ids, sentences in story order from slot 0, unused slots all 0.
        memory_size: M.

    Returns:
        ``([B, M, L], bool [B, M])``; slot k holds the sentence k places before the last one.

    >>> s = torch.tensor([[[1], [2], [3], [0]]])
    >>> kept, mask = recent_sentences(s, 2)
    >>> kept[0, :, 0].tolist(), mask.tolist()
    ([3, 2], [[True, True]])
    """
    count = story.ne(0).any(-1).sum(-1)  # sentences in use per story: [B]
    k = torch.arange(memory_size, device=story.device)  # recency: [M]
    index = count.unsqueeze(1) - 1 - k  # story slot of recency k: [B, M]
    mask = index >= 0
    gathered = story.gather(1, index.clamp_min(0).unsqueeze(-1).expand(-1, -1, story.shape[-1]))  # [B, M, L]
    return gathered * mask.unsqueeze(-1).to(story.dtype), mask


def encode_words(lstm: nn.LSTM, embedding: nn.Embedding, words: Tensor) -> Tensor:
    """An LSTM's output after the last word of each right-padded word sequence ``[..., L]`` -> ``[..., S]``.

    Outputs at the padding after a sequence do not reach earlier positions, so the output at the last
    word is that of the unpadded sequence; an empty sequence gives the output after its first pad.
    """
    shape = words.shape
    flat = words.reshape(-1, shape[-1])  # [..., L] -> [B', L]
    out, _ = lstm(embedding(flat))  # [B', L, S]
    last = (flat.ne(0).sum(-1) - 1).clamp_min(0)  # index of the last word: [B']
    picked = out.gather(1, last.view(-1, 1, 1).expand(-1, 1, out.shape[-1])).squeeze(1)  # [B', S]
    return picked.view(*shape[:-1], out.shape[-1])  # [B', S] -> [..., S]


@register
class RelationNetworkQA(QAModel):
    """Sentences by an LSTM with recency tags, the question by an LSTM, answer logits by a Relation Network.

    Args:
        embedding_dim: E, the word embedding width (the paper: 32).
        lstm_size: S, the width of the sentence and question LSTMs (the paper: 32 and 128).
        g_layers: widths of ``g_theta``'s layers (the paper: ``[256, 256, 256, 256]``).
        f_layers: hidden widths of ``f_phi`` before the answer layer (the paper: ``[256, 512]``).
        memory_size: M, the most recent sentences kept as objects (the paper: 20).
        dropout: dropout before the answer layer, in training only (the paper: 0.5).
    """

    def __init__(self, embedding_dim: int = 32, lstm_size: int = 32, g_layers: list[int] = [256, 256, 256, 256],  # noqa: B006
                 f_layers: list[int] = [256, 512], memory_size: int = 20, dropout: float = 0.0) -> None:  # noqa: B006
        super().__init__()
        for name, value in (("embedding_dim", embedding_dim), ("lstm_size", lstm_size), ("memory_size", memory_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"RelationNetworkQA: {name} must be a positive integer, got {value!r}; set {name} to 1 or more.")
        self.embedding_dim, self.lstm_size, self.memory_size = embedding_dim, lstm_size, memory_size
        self.g_layers, self.f_layers, self.dropout = list(g_layers), list(f_layers), dropout
        check_widths("RelationNetworkQA", "g_layers", g_layers)
        check_widths("RelationNetworkQA", "f_layers", f_layers, allow_empty=True)
        check_dropout("RelationNetworkQA", dropout)

    def bind(self, vocab_size: int, answer_size: int, max_sentences: int, sentence_length: int, question_length: int) -> None:
        """Create the embedding, the two LSTMs and the RN for V words and A answers."""
        if not self._bind_once(vocab_size=vocab_size, answer_size=answer_size):
            return
        E, S, M = self.embedding_dim, self.lstm_size, self.memory_size
        self.words = nn.Embedding(vocab_size, E, padding_idx=0)
        self.sentence_lstm = nn.LSTM(E, S, batch_first=True)
        self.question_lstm = nn.LSTM(E, S, batch_first=True)
        self.rn = RelationNetwork(S + M, S, answer_size, self.g_layers, self.f_layers, self.dropout)

    def forward(self, story: Tensor, question: Tensor, record: bool = False) -> QAOutput:
        """``story [B, N, L]``, ``question [B, Q]`` -> logits ``[B, A]``."""
        if not self.is_bound:
            raise ConfigError("RelationNetworkQA is not built yet; call bind(...) or let QASystem build it.")
        M = self.memory_size
        kept, in_use = recent_sentences(story, M)  # [B, M, L], [B, M]
        # Only the K <= M most recent slots that some story of the batch fills: the pairs of the others are
        # masked out of the sum anyway, so dropping them changes nothing but the cost (K^2 pairs, not M^2).
        K = max(1, int(in_use.sum(-1).max()))
        kept, mask = kept[:, :K], in_use[:, :K]  # [B, K, L], [B, K]
        sentences = encode_words(self.sentence_lstm, self.words, kept)  # [B, K, S]
        tags = F.one_hot(torch.arange(K, device=story.device), M).to(sentences.dtype)  # recency one-hot: [K, M]
        objects = torch.cat([sentences, tags.expand(story.shape[0], K, M)], dim=-1)  # [B, K, S + M]
        q = encode_words(self.question_lstm, self.words, question)  # [B, S]
        logits = self.rn(objects, q, mask)
        return QAOutput(logits, {"objects_in_use": in_use.to(logits.dtype)} if record else None)
