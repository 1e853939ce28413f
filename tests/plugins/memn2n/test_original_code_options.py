"""Options that reproduce the original MemN2N Matlab code: one J for all sentences (``position_length``), time vectors
scaled by the position weights of position J (``time_scale``), the nil word's gradient (``nil_gradient``),
``answer_extra``, ``BabiDataModule(drop_punctuation)``, ``ClipEachGradient(together)`` (the code's one lookup table per
embedding, clipped as one matrix) and the benchmark's ``ReplacementBatches``.

Expected values are worked out by hand from the formulas (paper: l_kj = (1 - j/J) - (k/D)(1 - 2j/J); code:
l_kj = 1 + 4 (k - (D+1)/2)(j - (J+1)/2) / (D J)), not taken from the code under test.
"""

import types
from pathlib import Path

import pytest
import torch
from torch import nn

from mannkit.callbacks.clip_each import ClipEachGradient
from mannkit.core.errors import ConfigError
from mannkit.tasks.babi import BabiDataModule
from mannkit.nn.text import position_coefficients
from mannkit_memn2n import MemN2N
from mannkit_memn2n.encoding import SentenceEncoder

FIXTURES = Path(__file__).parents[2] / "fixtures" / "babi"


def _l(j: int, k: int, J: int, D: int, form: str = "paper") -> float:
    """The hand formula of the position weight of word j (1-based) in dimension k (1-based)."""
    if form == "paper":
        return (1 - j / J) - (k / D) * (1 - 2 * j / J)
    return 1 + 4 * (k - (D + 1) / 2) * (j - (J + 1) / 2) / (D * J)


# -- position_coefficients with one J -------------------------------------------------------------
def test_fixed_length_paper_form_uses_the_given_J_not_the_word_count():
    words = torch.tensor([[3, 5, 0, 0]])  # 2 words, J = 4
    a, b = position_coefficients(words, dim=4, form="paper", length=4)
    assert torch.allclose(a, torch.tensor([[0.75, 0.5, 0.0, 0.0]]))  # 1 - j/4
    assert torch.allclose(b, torch.tensor([[0.5, 0.0, 0.0, 0.0]]))  # 1 - 2j/4
    own_a, own_b = position_coefficients(words, dim=4, form="paper")  # J = 2: a = 1/2, 0; b = 0, -1
    assert torch.allclose(own_a, torch.tensor([[0.5, 0.0, 0.0, 0.0]]))
    assert torch.allclose(own_b, torch.tensor([[0.0, -1.0, 0.0, 0.0]]))
    assert not torch.allclose(a, own_a)


def test_fixed_length_code_form_matches_the_hand_formula():
    words = torch.tensor([[3, 5, 0, 0], [1, 2, 4, 0]])
    a, b = position_coefficients(words, dim=2, form="code", length=4)
    # c_j = (j - 5/2) / 4 = -3/8, -1/8, (1/8); a = 1 - 3 c, b = -4 c
    assert torch.allclose(a, torch.tensor([[2.125, 1.375, 0.0, 0.0], [2.125, 1.375, 0.625, 0.0]]))
    assert torch.allclose(b, torch.tensor([[1.5, 0.5, 0.0, 0.0], [1.5, 0.5, -0.5, 0.0]]))
    k = torch.tensor([1.0, 2.0]) / 2
    l = a.unsqueeze(-1) - k * b.unsqueeze(-1)  # [S, L, D]
    for s, n in ((0, 2), (1, 3)):
        for j in range(1, n + 1):
            for kk in (1, 2):
                assert l[s, j - 1, kk - 1].item() == pytest.approx(_l(j, kk, 4, 2, "code"))


def test_encoder_with_position_length_embeds_with_that_J():
    torch.manual_seed(0)
    enc = SentenceEncoder(6, 3, 0, "paper", position_length=5)
    words = torch.tensor([[2, 4, 0, 0, 0]])
    A = enc.words.detach()
    want = torch.tensor([sum(_l(j, k, 5, 3) * A[w, k - 1].item() for j, w in ((1, 2), (2, 4))) for k in (1, 2, 3)])
    assert torch.allclose(enc(words)[0].detach(), want, atol=1e-6)


def test_a_nonzero_padding_row_changes_nothing_forward():
    """``mannkit fit`` does not drop row 0's gradient, so row 0 may move: the outputs must not."""
    torch.manual_seed(0)
    enc = SentenceEncoder(6, 3, 4, "code", position_length=5, nil_gradient=True)
    words, times = torch.tensor([[2, 4, 0, 0], [1, 0, 0, 0]]), torch.tensor([0, 1])
    before, slot = enc(words, times).detach(), enc.empty_slot().detach()
    with torch.no_grad():
        enc.words[0] = torch.tensor([5.0, -3.0, 2.0])
    torch.testing.assert_close(enc(words, times), before)
    torch.testing.assert_close(enc.empty_slot(), slot)
    assert (slot == 0).all()


def test_position_length_is_refused_for_word_distributions():
    enc = SentenceEncoder(6, 3, 0, "paper", position_length=5)
    soft = nn.functional.one_hot(torch.tensor([[2, 4, 0, 0]]), 6).float()
    with pytest.raises(ValueError, match=r"^SentenceEncoder: position_length and nil_gradient apply to word ids"):
        enc(soft)
    assert SentenceEncoder(6, 3, 0, "paper")(soft).shape == (1, 3)  # without them a distribution is encoded as before


# -- time_scale -----------------------------------------------------------------------------------
@pytest.mark.parametrize("form, scale", [("paper", [0.25, 0.5, 0.75, 1.0]),  # a_J = 0, b_J = -1: l_kJ = k/D
                                         ("code", [0.4375, 0.8125, 1.1875, 1.5625])])  # 1 + (3/8)(k - 5/2)
def test_time_scale_multiplies_time_vectors_by_l_kJ(form, scale):
    torch.manual_seed(0)
    enc = SentenceEncoder(5, 4, 3, form, position_length=4, time_scale=True)
    words = torch.tensor([[1, 2, 0, 0], [3, 0, 0, 0]])
    times = torch.tensor([2, 0])
    added = (enc(words, times) - enc(words)).detach()
    want = enc.time.detach()[times] * torch.tensor(scale)
    assert torch.allclose(added, want, atol=1e-6)
    plain = SentenceEncoder(5, 4, 3, form, position_length=4)
    plain.load_state_dict(enc.state_dict())
    assert torch.allclose((plain(words, times) - plain(words)).detach(), enc.time.detach()[times], atol=1e-6)


def test_time_scale_and_nil_gradient_need_position_length_and_a_position_encoding():
    for kwargs in (dict(time_scale=True), dict(nil_gradient=True)):
        with pytest.raises(ValueError, match="position_length"):
            SentenceEncoder(5, 4, 3, "paper", **kwargs)
        with pytest.raises(ValueError, match="position_length"):
            SentenceEncoder(5, 4, 3, False, position_length=4, **kwargs)


# -- nil_gradient ---------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["paper", "code"])
def test_nil_gradient_is_zero_forward_and_gives_row_0_the_padding_positions_gradient(form):
    V, D, J = 6, 4, 4
    torch.manual_seed(0)
    nil = SentenceEncoder(V, D, 0, form, position_length=J, nil_gradient=True)
    assert torch.equal(nil.words.detach()[0], torch.zeros(D))
    plain = SentenceEncoder(V, D, 0, form, position_length=J)
    plain.load_state_dict(nil.state_dict())
    words = torch.tensor([[2, 3, 0, 0], [4, 0, 0, 0], [1, 2, 3, 0], [5, 1, 2, 3]])  # 2, 1, 3, 4 words
    g = torch.randn(4, D)
    out_nil, out_plain = nil(words), plain(words)
    assert torch.allclose(out_nil, out_plain, atol=1e-7)
    (out_nil * g).sum().backward()
    (out_plain * g).sum().backward()
    # padding positions j < J: sentence 0: j = 3; sentence 1: j = 2, 3; sentences 2 and 3: none
    pad = {0: [3], 1: [2, 3], 2: [], 3: []}
    want = torch.zeros(D)
    for s, js in pad.items():
        for j in js:
            want += g[s] * torch.tensor([_l(j, k, J, D, form) for k in range(1, D + 1)])
    assert torch.allclose(nil.words.grad[0], want, atol=1e-5)
    assert torch.equal(plain.words.grad[0], torch.zeros(D))
    assert torch.allclose(nil.words.grad[1:], plain.words.grad[1:], atol=1e-6), "the real words' gradients are unchanged"


def test_empty_slot_is_zero_with_all_J_positions_in_row_0_gradient():
    V, D, J = 6, 4, 4
    torch.manual_seed(1)
    enc = SentenceEncoder(V, D, 2, "paper", position_length=J, nil_gradient=True)
    slot = enc.empty_slot()
    assert torch.equal(slot.detach(), torch.zeros(D))
    g = torch.randn(D)
    (slot * g).sum().backward()
    # sum_{j=1}^{J} l_kj = (J - 1)/2 + k/D for the paper form
    want = g * torch.tensor([(J - 1) / 2 + k / D for k in range(1, D + 1)])
    assert torch.allclose(enc.words.grad[0], want, atol=1e-6)
    assert SentenceEncoder(V, D, 2, "paper", position_length=J).empty_slot() is None


# -- MemN2N ---------------------------------------------------------------------------------------
def test_answer_extra_needs_the_vocabulary_softmax():
    with pytest.raises(ConfigError, match="answer_softmax"):
        MemN2N(embedding_dim=5, answer_extra=True)


# -- the benchmark's helpers ----------------------------------------------------------------------
def test_drop_punctuation_removes_the_marks_from_statements_questions_and_vocabulary():
    kept = BabiDataModule(FIXTURES, tasks=[1], val_fraction=0.0)
    dropped = BabiDataModule(FIXTURES, tasks=[1], val_fraction=0.0, drop_punctuation=True)
    kept.setup("fit"), dropped.setup("fit")
    assert {".", "?"} <= set(kept.vocab) and not {".", "?"} & set(dropped.vocab)
    assert set(dropped.vocab) == set(kept.vocab) - {".", "?"}
    assert (dropped.sentence_length, dropped.question_length) == (kept.sentence_length - 1, kept.question_length - 1)
    words = lambda data, ids: [data.vocab[i] for i in ids.tolist() if i]  # noqa: E731
    a, b = kept.split("train"), dropped.split("train")
    assert words(dropped, b.question[0]) == words(kept, a.question[0])[:-1] and words(kept, a.question[0])[-1] == "?"
    assert words(dropped, b.table[0]) == words(kept, a.table[0])[:-1] and words(kept, a.table[0])[-1] == "."
    assert torch.equal(a.answer, b.answer)


def test_drop_punctuation_must_be_a_boolean():
    with pytest.raises(ConfigError, match="drop_punctuation must be true or false, got 'yes'"):
        BabiDataModule(FIXTURES, tasks=[1], drop_punctuation="yes")


def test_position_length_data_is_the_longest_sentence_or_question_plus_one():
    model = MemN2N(embedding_dim=4, hops=2, position_length="data", nil_gradient=True, time_scale=True)
    model.bind(vocab_size=9, answer_size=3, max_sentences=5, sentence_length=6, question_length=4)
    assert {m.keys.position_length for m in model.memories} == {7} and model.question.position_length == 7
    model = MemN2N(embedding_dim=4, hops=1, tying="layerwise", position_length="data")
    model.bind(vocab_size=9, answer_size=3, max_sentences=5, sentence_length=3, question_length=8)
    assert model.question.position_length == 9


@pytest.mark.parametrize("bad", ["longest", 1, 2.5, True])
def test_position_length_refuses_what_is_not_a_length(bad):
    with pytest.raises(ConfigError, match=f"position_length must be an integer of at least 2, data or null, got {bad!r}"):
        MemN2N(embedding_dim=4, position_length=bad)


def test_nil_gradient_needs_a_position_length():
    with pytest.raises(ConfigError, match="set position_length: data"):
        MemN2N(embedding_dim=4, nil_gradient=True)


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = SentenceEncoder(3, 2, 2, False)
        self.lin = nn.Linear(2, 2, bias=False)


def _toy_with_grads() -> _Toy:
    model = _Toy()
    model.enc.words.grad = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    model.enc.time.grad = torch.tensor([[4.0, 0.0], [0.0, 0.0]])  # stacked: columns of norm 5 and 1, spectral norm 5
    model.lin.weight.grad = torch.tensor([[2.0, 0.0], [0.0, 0.5]])  # spectral norm 2
    return model


def _clip_together(model: nn.Module, bound: float) -> int:
    clip = ClipEachGradient(bound, norm="spectral", together=["words", "time"])
    return clip.clip(model.parameters(), clip.groups(model))


def test_clip_together_clips_the_stacked_tables_by_their_spectral_norm():
    model = _toy_with_grads()
    assert _clip_together(model, 2.5) == 1, "one stack clipped, the linear layer not"  # 5 > 2.5: both tables halved (apart, time's 4 -> 2.5, words' 3 -> 2.5)
    assert torch.allclose(model.enc.words.grad, torch.tensor([[1.5, 0.0], [0.0, 0.5], [0.0, 0.0]]))
    assert torch.allclose(model.enc.time.grad, torch.tensor([[2.0, 0.0], [0.0, 0.0]]))
    stacked = torch.cat([model.enc.words.grad, model.enc.time.grad])
    assert torch.linalg.matrix_norm(stacked, ord=2).item() == pytest.approx(2.5)
    assert torch.allclose(model.lin.weight.grad, torch.tensor([[2.0, 0.0], [0.0, 0.5]])), "2 <= 2.5: untouched"
    model = _toy_with_grads()
    assert _clip_together(model, 1.0) == 2
    assert torch.allclose(model.enc.words.grad, torch.tensor([[0.6, 0.0], [0.0, 0.2], [0.0, 0.0]]))
    assert torch.allclose(model.enc.time.grad, torch.tensor([[0.8, 0.0], [0.0, 0.0]]))
    assert torch.allclose(model.lin.weight.grad, torch.tensor([[1.0, 0.0], [0.0, 0.25]])), "clipped alone to 1"


def test_clip_together_leaves_small_gradients_alone():
    model = _toy_with_grads()
    assert _clip_together(model, 10.0) == 0
    assert model.enc.words.grad.tolist() == [[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    assert model.enc.time.grad.tolist() == [[4.0, 0.0], [0.0, 0.0]]
    assert model.lin.weight.grad.tolist() == [[2.0, 0.0], [0.0, 0.5]]


def test_replacement_batches_draw_floor_n_over_b_batches(benchmark_script):
    script = benchmark_script("run_memn2n_babi")

    class Data:
        def __len__(self) -> int:
            return 10

        def __getitems__(self, index: list) -> list:
            return list(index)

    batches = script.ReplacementBatches(Data(), 3)
    assert len(batches) == 3
    drawn = list(batches)
    assert len(drawn) == 3 and all(len(b) == 3 and all(0 <= i < 10 for i in b) for b in drawn)


def test_new_options_parse_with_the_defaults_of_the_paper_runs(benchmark_script):
    script = benchmark_script("run_memn2n_babi")
    args = script.parse_args(["--data-dir", "x"])
    assert (args.position_length, args.time_scale, args.answer_extra, args.drop_punctuation, args.clip_tables,
            args.anneal_early, args.sample, args.nil_gradient) == ("own", False, False, False, "apart", False, "shuffle", False)
    args = script.parse_args(["--data-dir", "x", "--position-length", "fixed", "--time-scale", "--answer-extra",
                              "--drop-punctuation", "--clip-tables", "together", "--anneal-early", "--sample", "replacement",
                              "--nil-gradient"])
    assert (args.position_length, args.time_scale, args.answer_extra, args.drop_punctuation, args.clip_tables,
            args.anneal_early, args.sample, args.nil_gradient) == ("fixed", True, True, True, "together", True, "replacement", True)
    with pytest.raises(SystemExit):
        script.parse_args(["--data-dir", "x", "--sample", "bootstrap"])


# -- through StoryMemory and MemN2N ---------------------------------------------------------------
def test_story_memory_nil_gradient_counts_padding_and_empty_slots():
    from mannkit_memn2n.memory import StoryMemory

    V, D, J = 6, 4, 4
    torch.manual_seed(2)
    memory = StoryMemory(3, D, "paper", False, position_length=J, nil_gradient=True)
    memory.bind(V)
    story = torch.tensor([[[2, 3, 0, 0], [4, 0, 0, 0], [0, 0, 0, 0]]])  # 2 words, 1 word, an empty slot
    state = memory.load(story)
    assert torch.equal(state.memory[0, 2].detach(), torch.zeros(D)), "an empty slot is still zero"
    g = torch.randn(1, 3, D)
    (state.memory * g).sum().backward()

    def l(j: int) -> torch.Tensor:
        return torch.tensor([_l(j, k, J, D) for k in range(1, D + 1)])

    want = g[0, 0] * l(3) + g[0, 1] * (l(2) + l(3)) + g[0, 2] * (l(1) + l(2) + l(3) + l(4))
    assert torch.allclose(memory.keys.words.grad[0], want, atol=1e-5)


def _memn2n(**kwargs) -> MemN2N:
    torch.manual_seed(0)
    model = MemN2N(embedding_dim=6, hops=2, **kwargs)
    model.bind(vocab_size=11, answer_size=4, max_sentences=5, sentence_length=4, question_length=3,
               answer_words=torch.tensor([[3, 0], [7, 0], [9, 0], [2, 5]]))
    return model.double()


def _story() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    story = torch.randint(1, 11, (3, 5, 4), generator=g)
    story[:, :, 3] = 0
    story[0, :, 2] = 0  # shorter sentences
    story[1, 3:] = 0  # empty slots
    question = torch.randint(1, 11, (3, 3), generator=g)
    question[:, 2] = 0
    return story, question


def test_memn2n_nil_gradient_same_forward_and_row_0_gets_a_gradient():
    plain = _memn2n(position_length=5).eval()
    nil = _memn2n(position_length=5, nil_gradient=True).eval()
    encoders = [m for m in nil.modules() if isinstance(m, SentenceEncoder)]
    assert encoders and all(torch.equal(e.words.detach()[0], torch.zeros(6, dtype=torch.float64)) for e in encoders)
    nil.load_state_dict(plain.state_dict())  # row 0 as in plain (random): make it zero in both for one forward
    with torch.no_grad():
        for model in (plain, nil):
            for e in (m for m in model.modules() if isinstance(m, SentenceEncoder)):
                e.words[0] = 0
    story, question = _story()
    out_plain, out_nil = plain(story, question), nil(story, question)
    assert torch.allclose(out_plain.logits, out_nil.logits, atol=1e-12)
    out_plain.logits.sum().backward()
    out_nil.logits.sum().backward()
    for e in (m for m in plain.modules() if isinstance(m, SentenceEncoder)):
        assert e.words.grad is None or torch.equal(e.words.grad[0], torch.zeros(6, dtype=torch.float64))
    assert any(e.words.grad is not None and e.words.grad[0].abs().sum() > 0
               for e in (m for m in nil.modules() if isinstance(m, SentenceEncoder)))


@pytest.mark.parametrize("temporal", [False, True])
def test_answer_extra_adds_the_time_rows_and_a_zero_score_to_rest(temporal):
    """With the last hop's T_C zeroed, each time row and the nil word score 0: exp(rest) grows by M + 1 (or 1)."""
    plain = _memn2n(answer_softmax="vocabulary", temporal_encoding=temporal).eval()
    extra = _memn2n(answer_softmax="vocabulary", temporal_encoding=temporal, answer_extra=True).eval()
    extra.load_state_dict(plain.state_dict())
    if temporal:
        with torch.no_grad():
            plain.memories[-1].values.time.zero_()
            extra.memories[-1].values.time.zero_()
    story, question = _story()
    a, b = plain(story, question), extra(story, question)
    assert torch.allclose(a.logits, b.logits)
    rows = (5 if temporal else 0) + 1  # M = 5 time rows (the memory size is the max_sentences), then the nil word
    assert torch.allclose(b.rest.exp(), a.rest.exp() + rows)


# -- the benchmark end to end, every new option on -------------------------------------------------
ROOT = Path(__file__).parents[3]


def _train(script, tmp_path, *extra: str):
    args = script.parse_args(["--data-dir", str(ROOT / "tests" / "fixtures" / "babi"), "--tasks", "1,8", "--epochs", "3",
                              "--ls-epochs", "0", "--no-linear-start", "--anneal-every", "2", "--dim", "8",
                              "--batch-size", "4", "--out", str(tmp_path), *extra])
    return script.train(args)


def test_anneal_early_halves_the_rate_at_the_start_of_epoch_anneal_every(tmp_path, benchmark_script):
    script = benchmark_script("run_memn2n_babi")
    late = [row["lr"] for row in _train(script, tmp_path)[2] if row["phase"] == "softmax"]
    early = [row["lr"] for row in _train(script, tmp_path, "--anneal-early")[2] if row["phase"] == "softmax"]
    lr = late[0]
    assert late == pytest.approx([lr, lr, lr / 2])  # StepLR(2): halved after epoch 2
    assert early == pytest.approx([lr, lr / 2, lr / 2])  # halved at the start of epoch 2, (ep + 1) % 2 == 0


def test_all_original_code_options_train_and_keep_the_nil_word_zero(tmp_path, benchmark_script):
    script = benchmark_script("run_memn2n_babi")
    model, data, history, _ = _train(script, tmp_path, "--answer-softmax", "vocabulary", "--position-length", "fixed",
                                     "--time-scale", "--answer-extra", "--drop-punctuation", "--clip-tables", "together",
                                     "--sample", "replacement", "--nil-gradient")
    assert len([row for row in history if row["phase"] == "softmax"]) == 3
    assert data.drop_punctuation and not {".", "?"} & set(data.vocab), "the marks left the data and the vocabulary"
    J = max(data.sentence_length, data.question_length) + 1
    longest = max(int(getattr(data.split(n), f).ne(0).sum(-1).max()) for n in ("train", "val") for f in ("table", "question"))
    assert model.position_length == "data" and longest + 1 == J
    assert {e.position_length for e in model.modules() if isinstance(e, SentenceEncoder)} == {J}
    assert "<unk>" not in [data.vocab[i] for i in model.other_words.tolist()]
    encoders = [m for m in model.modules() if isinstance(m, SentenceEncoder)]
    assert encoders and all(e.nil_tails is not None and e.words.detach()[0].abs().sum() == 0 for e in encoders), \
        "the nil word's gradient is dropped before each step"
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_clip_together_refuses_tables_of_different_widths():
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.words, self.time = nn.Parameter(torch.zeros(3, 2)), nn.Parameter(torch.zeros(2, 5))

    with pytest.raises(ConfigError, match=r"words \(3, 2\), time \(2, 5\).*leave a name out of together"):
        ClipEachGradient(1.0, together=["words", "time"]).groups(Odd())


def test_clip_together_must_be_a_list_of_names():
    with pytest.raises(ConfigError, match="together must be a list of parameter names, got 'words'"):
        ClipEachGradient(1.0, together="words")
