"""MemN2N(answer_softmax="vocabulary"): the softmax over every word of the vocabulary, as the original code's output layer.

Sizes are distinct (B=3, N=5, L=4, Q=2, V=11 words, A=4 answer classes, D=6) so that a transposed axis breaks a test.
"""

import pytest
import torch
import torch.nn.functional as F

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import NOT_AN_ANSWER, QAOutput
from mannkit.systems.qa import QASystem
from mannkit_memn2n import MemN2N

B, N, L, Q, V, A, D = 3, 5, 4, 2, 11, 4, 6
SIZES = dict(vocab_size=V, answer_size=A, max_sentences=N, sentence_length=L, question_length=Q)
ANSWER_WORDS = torch.tensor([[3, 0], [7, 0], [9, 0], [2, 5]])  # classes 0-2 are words 3, 7, 9; class 3 a list "2,5"


def _model(dtype: torch.dtype = torch.float32, **kwargs) -> MemN2N:
    torch.manual_seed(0)
    model = MemN2N(embedding_dim=D, hops=2, answer_softmax="vocabulary", **kwargs)
    model.bind(**SIZES, answer_words=ANSWER_WORDS)
    return model.to(dtype)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    story = torch.randint(1, V, (B, N, L), generator=g)
    story[1, 3:] = 0
    return story, torch.randint(1, V, (B, Q), generator=g)


def test_the_loss_is_the_cross_entropy_over_the_whole_vocabulary():
    """By hand: the class scores plus ``rest`` give the same loss as a softmax over V - 1 words and the list's row."""
    model = _model(torch.float64).eval()
    story, question = _batch()
    out = model(story, question)
    assert out.logits.shape == (B, A) and out.rest.shape == (B,)
    # rest must be the log-sum-exp of the scores of the words no class has (1, 2, 4, 5, 6, 8, 10)
    other = [w for w in range(1, V) if w not in (3, 7, 9)]
    assert model.other_words.tolist() == other
    # recompute top from the model's own pieces by running it with every word tied: logits == top @ rows.T
    probe = MemN2N(embedding_dim=D, hops=2, answer_softmax="vocabulary")
    probe.bind(**{**SIZES, "answer_size": V - 1}, answer_words=torch.arange(1, V).unsqueeze(-1))  # class w-1 = word w
    missing, unexpected = probe.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("answer")}, strict=False)
    assert not unexpected and all(k.startswith("answer") for k in missing), (missing, unexpected)
    probe = probe.to(torch.float64).eval()
    word_scores = probe(story, question).logits  # top . C[w] for w = 1..V-1: [B, V - 1]
    assert torch.allclose(out.logits[:, :3], word_scores[:, [2, 6, 8]])
    assert torch.allclose(out.rest, torch.logsumexp(word_scores[:, [w - 1 for w in other]], -1))
    answer = torch.tensor([0, 2, 3])
    list_score = out.logits[:, 3:]  # [B, 1]
    full = torch.cat([word_scores, list_score], -1)  # [B, V - 1 + 1]: every word, then the list's own row
    target = torch.tensor([3 - 1, 9 - 1, V - 1])  # the same answers as indices into `full`
    assert torch.allclose(F.cross_entropy(out.scores(), answer), F.cross_entropy(full, target))


def test_rest_has_a_gradient_to_the_words_that_answer_nothing():
    model = _model(torch.float64)
    story, question = _batch(1)
    out = model(story, question)
    F.cross_entropy(out.scores(), torch.tensor([0, 1, 2])).backward()
    grad = model.memories[-1].values.words.grad  # [V, D]
    assert grad[[1, 4, 6]].abs().sum() > 0  # words that are no answer class are pushed down too


def test_rest_gradcheck_float64():
    """``rest`` = logsumexp of ``top . C^K w`` over the other words: its gradient to C^K, checked numerically."""
    model = _model(torch.float64)
    other = model.other_words
    top = torch.randn(B, D, dtype=torch.float64)
    words = model.memories[-1].values.words.detach().clone().requires_grad_(True)  # [V, D]
    assert torch.autograd.gradcheck(lambda w: torch.logsumexp(top @ w[other].T, -1), (words,))


def test_classes_softmax_has_no_rest():
    model = MemN2N(embedding_dim=D, hops=2)
    model.bind(**SIZES, answer_words=ANSWER_WORDS)
    out = model(*_batch())
    assert out.rest is None and out.scores() is out.logits


def test_scores_appends_rest_as_a_last_column():
    out = QAOutput(torch.tensor([[1.0, 2.0]]), None, torch.tensor([5.0]))
    assert out.scores().tolist() == [[1.0, 2.0, 5.0]]
    assert out.scores().argmax(-1).item() == 2  # the rest won: index A, which no answer has, so it counts as wrong


def test_errors_name_the_field_and_the_fix():
    with pytest.raises(ConfigError, match="answer_softmax must be classes or vocabulary, got 'words'; use classes"):
        MemN2N(answer_softmax="words")
    with pytest.raises(ConfigError, match="tying is 'layerwise'.*set tying: adjacent or answer_softmax: classes"):
        MemN2N(tying="layerwise", answer_softmax="vocabulary")
    model = MemN2N(embedding_dim=D, answer_softmax="vocabulary")
    with pytest.raises(ConfigError, match="needs the answers' words.*answer_softmax: classes"):
        model.bind(**SIZES)


def test_the_system_writes_not_an_answer_when_the_rest_wins():
    system = QASystem(model=MemN2N(embedding_dim=D))
    system.sizes = dict(SIZES)
    system.answers = ["a", "b", "c", "d"]
    assert system._answer_text(A) == NOT_AN_ANSWER
    assert system._answer_text(1) == "b"


def test_the_kit_checks_the_vocabulary_softmax():
    """The conformance kit binds with answer words when ``bind`` takes them, and checks ``rest`` too."""
    from mannkit.testing import check_qa_model

    check_qa_model(lambda: MemN2N(embedding_dim=D, hops=2, answer_softmax="vocabulary"))


def test_the_kit_fails_a_rest_of_the_wrong_shape():
    from mannkit.testing import check_qa_model

    class Broken(MemN2N):
        def forward(self, story, question, record=False):
            out = super().forward(story, question, record)
            return out._replace(rest=out.rest.unsqueeze(-1))  # [B, 1] instead of [B]

    with pytest.raises(AssertionError, match="rest"):
        check_qa_model(lambda: Broken(embedding_dim=D, hops=2, answer_softmax="vocabulary"))
