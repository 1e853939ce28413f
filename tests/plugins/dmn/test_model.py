"""DMNPlus (plugins/mannkit_dmn/model.py): shapes, padding, untied passes, swapping the attention, round trips, learning.

Sizes are distinct (B=3, N=7, L=5, Q=4, V=23, A=11, W=6) so that a transposed axis breaks a test.
"""

import io
import json
import pickle

import pytest
import torch
import torch.nn.functional as F

from mannkit.core.config import instantiate
from mannkit.core.errors import ConfigError, DataError, ShapeError
from mannkit.core.interfaces import Head, HeadOutput, QAModel
from mannkit.core.registry import registry
from mannkit.nn import ContentAddressing
from mannkit.testing import check_component, check_qa_model
from mannkit_dmn import AttentionGRUHead, DMNPlus, FactMemory, InteractionAddressing, last_state, memory_update

B, N, L, Q, V, A, W = 3, 7, 5, 4, 23, 11, 6
LENGTHS = [7, 4, 1]  # sentences per story


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    story = torch.randint(1, V, (B, N, L), generator=g)
    story[:, :, 3:] = 0  # three words per sentence
    story[torch.arange(N) >= torch.tensor(LENGTHS).unsqueeze(-1)] = 0  # unused slots after the real sentences
    question = torch.randint(1, V, (B, Q), generator=g)
    question[1, 2:] = 0
    return story, question


def _model(seed: int = 0, **options) -> DMNPlus:
    torch.manual_seed(seed)
    options.setdefault("memory", FactMemory(word_size=W, dropout=0.0))
    model = DMNPlus(**options)
    model.bind(V, A, N, L, Q)
    return model.eval()


def _logits(model: DMNPlus, seed: int = 0) -> torch.Tensor:
    return model(*_data(seed)).logits


# -- the equations ------------------------------------------------------------------------------


def test_memory_update_by_hand():
    m, c, q = torch.tensor([[1.0, -1.0]]), torch.tensor([[2.0]]), torch.tensor([[0.5, 0.0]])
    weight = torch.tensor([[1.0, 0.0, 1.0, 2.0, 0.0], [0.0, 1.0, -1.0, 0.0, 0.0]])  # W_t [m; c; q]
    bias = torch.tensor([0.0, 0.5])
    # unit 0: 1 + 2 + 1 = 4; unit 1: -1 - 2 + 0.5 = -2.5 -> ReLU 0
    assert memory_update(m, c, q, weight, bias).tolist() == [[4.0, 0.0]]


def test_last_state_takes_each_question_after_its_last_word():
    outputs = torch.arange(B * Q * 2, dtype=torch.float).view(B, Q, 2)
    words = torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0], [0, 0, 0, 0]])
    assert last_state(outputs, words).tolist() == [outputs[0, 3].tolist(), outputs[1, 1].tolist(), outputs[2, 0].tolist()]


# -- shapes, trace, padding ---------------------------------------------------------------------


def test_logits_and_attention_trace():
    model = _model(passes=3)
    out = model(*_data(), record=True)
    assert out.logits.shape == (B, A) and torch.isfinite(out.logits).all()
    attention = out.trace["attention"]
    assert attention.shape == (B, 3, N)
    for b, n in enumerate(LENGTHS):
        assert torch.equal(attention[b, :, n:], torch.zeros(3, N - n))
    torch.testing.assert_close(attention.sum(-1), torch.ones(B, 3))
    assert model(*_data()).trace is None


def test_a_bank_of_heads_traces_pass_major():
    model = _model(passes=2, head=AttentionGRUHead(InteractionAddressing(), count=2))
    assert model.to_params is not None  # two heads need their own queries: a learned map from [q; m]
    assert model(*_data(), record=True).trace["attention"].shape == (B, 2 * 2, N)


def test_padding_changes_nothing():
    """More empty sentence slots, longer sentences and longer questions (all 0) give the same answer scores."""
    model = _model()
    story, question = _data()
    wider = F.pad(story, (0, 2, 0, 3))  # L + 2 words, N + 3 sentence slots
    longer = F.pad(question, (0, 3))
    torch.testing.assert_close(model(wider, longer).logits, model(story, question).logits)


def test_each_story_is_answered_on_its_own():
    model = _model()
    story, question = _data()
    batch = model(story, question).logits
    for b in range(B):
        torch.testing.assert_close(model(story[b : b + 1], question[b : b + 1]).logits, batch[b : b + 1])


def test_the_answer_depends_on_an_early_sentence_and_on_the_question():
    model = _model()
    story, question = _data()
    base = model(story, question).logits
    changed = story.clone()
    changed[0, 0, 0] = (story[0, 0, 0] % (V - 1)) + 1
    assert not torch.allclose(model(changed, question).logits[0], base[0])
    asked = question.clone()
    asked[0, 0] = (question[0, 0] % (V - 1)) + 1
    assert not torch.allclose(model(story, asked).logits[0], base[0])


# -- untied passes ----------------------------------------------------------------------------------


def test_untied_memory_update_has_its_own_weights_per_pass():
    model = _model(passes=3)
    layers = list(model.updates)
    assert len(layers) == 3
    pointers = {layer.weight.data_ptr() for layer in layers} | {layer.bias.data_ptr() for layer in layers}
    assert len(pointers) == 6  # no tensor shared between passes
    assert all(layer.weight.shape == (W, 3 * W) for layer in layers)  # [m; c; q] -> m
    assert not torch.allclose(layers[0].weight, layers[1].weight)
    # each pass's layer gets its own gradient, and changing the last pass's weights changes the answer
    model(*_data()).logits.sum().backward()
    grads = [layer.weight.grad for layer in layers]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert not torch.allclose(grads[0], grads[1]) and not torch.allclose(grads[1], grads[2])
    before = _logits(model)
    with torch.no_grad():
        layers[2].weight.add_(0.5)
    assert not torch.allclose(_logits(model), before)
    assert len({id(p) for p in model.parameters()}) == len(list(model.parameters()))


def test_more_passes_add_update_layers_only():
    one, three = _model(passes=1), _model(passes=3)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(three) - count(one) == 2 * (3 * W * W + W)


# -- gradients, init, dropout ---------------------------------------------------------------------


def test_every_parameter_gets_a_finite_nonzero_gradient():
    model = _model()
    model.train()
    F.cross_entropy(model(*_data()).logits, torch.tensor([1, 5, 9])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert not model.embedding.weight.grad[0].any()  # the padding word learns nothing


def test_initialisation_xavier_zero_biases_and_a_zero_padding_word():
    model = _model()
    assert not model.embedding.weight[0].any()
    assert model.embedding.weight.abs().max() <= 3 ** 0.5
    for layer in (*model.updates, model.answer):
        assert not layer.bias.any()
        fan_out, fan_in = layer.weight.shape
        assert layer.weight.abs().max() <= (6 / (fan_in + fan_out)) ** 0.5


def test_dropout_in_training_only():
    model = _model(answer_dropout=0.5, memory=FactMemory(word_size=W, dropout=0.5))
    assert torch.equal(_logits(model), _logits(model))
    model.train()
    torch.manual_seed(1)
    assert not torch.allclose(_logits(model), _logits(model))


# -- swapping the attention ----------------------------------------------------------------------


def test_any_addressing_through_a_learned_query_map():
    model = _model(head=AttentionGRUHead(ContentAddressing()))
    assert model.to_params.weight.shape == (W + 1, 2 * W)  # [q; m] -> key and strength
    out = model(*_data(), record=True)
    assert out.logits.shape == (B, A)
    for b, n in enumerate(LENGTHS):  # the fact memory's mask holds for any addressing
        assert not out.trace["attention"][b, :, n:].any()


def test_dmn_attention_takes_q_and_m_as_they_are():
    assert _model().to_params is None


def test_yaml_swaps_the_addressing():
    config = {
        "class_path": "DMNPlus",
        "init_args": {
            "memory": {"class_path": "FactMemory", "init_args": {"word_size": W}},
            "head": {"class_path": "AttentionGRUHead", "init_args": {"addressing": {"class_path": "ContentAddressing"}}},
            "passes": 2,
        },
    }
    model = instantiate(config)
    assert isinstance(model.head.addressing, ContentAddressing) and model.passes == 2


# -- round trips (the checks the conformance kit runs on other models) ----------------------------


def test_registered_as_a_qa_model():
    assert registry.get("DMNPlus", "model") is DMNPlus and issubclass(DMNPlus, QAModel)


def test_conforms_with_the_kit():
    check_component("DMNPlus")
    check_qa_model(lambda: DMNPlus(FactMemory(word_size=W), AttentionGRUHead(ContentAddressing(), count=2), passes=2))


def test_determinism_state_dict_pickle_and_config_round_trip():
    original = _model(seed=0)
    expected = _logits(original)
    assert torch.equal(_logits(_model(seed=0)), expected)  # two builds under one seed
    assert torch.equal(_logits(original), expected)  # one module run twice
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    fresh = _model(seed=1)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(_logits(fresh), expected)
    assert torch.equal(_logits(pickle.loads(pickle.dumps(original))), expected)
    config = original.to_config()
    json.dumps(config)
    rebuilt = instantiate(config)
    rebuilt.bind(V, A, N, L, Q)
    rebuilt.load_state_dict(original.state_dict())
    assert torch.equal(_logits(rebuilt.eval()), expected)
    assert rebuilt.to_config() == config


def test_default_parts_are_the_paper_s():
    model = DMNPlus()
    assert model.memory.word_size == 80 and model.memory.dropout == 0.1 and model.passes == 3
    assert isinstance(model.head, AttentionGRUHead) and isinstance(model.head.addressing, InteractionAddressing)
    assert model.to_config()["init_args"]["memory"] is None  # null in YAML means the default part


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options, message", [
    ({"passes": 0}, r"^DMNPlus: passes must be a positive integer, got 0; set passes to 1 or more\.$"),
    ({"answer_dropout": -0.1}, r"^DMNPlus: answer_dropout must be a number in \[0, 1\), got -0\.1; "),
    ({"memory": ContentAddressing()}, r"^DMNPlus: memory must load a story's sentence encodings \(such as FactMemory\), but it is ContentAddressing; "),
    ({"head": ContentAddressing()}, r"^DMNPlus: head must be a Head component, got ContentAddressing; "),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        DMNPlus(**options)


class _Silent(Head):
    """A head that reads nothing."""

    @property
    def count(self) -> int:
        return 1

    def param_size(self, memory) -> int:
        return 1

    def forward(self, params, memory, memory_state, state, record=False):
        return HeadOutput(None, memory_state, state, {})


def test_a_head_that_reads_nothing_is_refused():
    with pytest.raises(ConfigError, match=r"^DMNPlus: the head _Silent reads nothing, but each pass needs an episode to read; "):
        DMNPlus(memory=FactMemory(word_size=W), head=_Silent()).bind(V, A, N, L, Q)


def test_unbound_model_says_how_to_build_it():
    with pytest.raises(ConfigError, match=r"^DMNPlus is not built yet; call model.bind"):
        DMNPlus()(*_data())


def test_bad_inputs_are_named():
    model = _model()
    story, question = _data()
    with pytest.raises(ShapeError, match=r"story has shape \[3, 35\] and question \[3, 4\] but \[B, N, L\] and \[B, Q\]"):
        model(story.view(B, -1), question)
    with pytest.raises(DataError, match=r"the story holds torch.float32 values but word ids \(int64\) were expected"):
        model(story.float(), question)
    question[2, 1] = V
    with pytest.raises(DataError, match=rf"the question holds word ids in \[0, {V}\] but the vocabulary has {V} words \(ids 0 to {V - 1}\)"):
        model(story, question)


# -- learning ------------------------------------------------------------------------------------------

PERSONS, OBJECTS, PLACES, SLOTS, WORDS = 4, 5, 3, 6, 4
TOOK, WENT, TO, WHAT, DID, TAKE = 1, 2, 3, 4, 5, 6
PERSON, OBJECT = 7, 7 + PERSONS
PLACE = OBJECT + OBJECTS
VOCAB = PLACE + PLACES


def _pick_up_task(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stories of 3-6 sentences: two people take an object each ("p took o"), the rest walk ("p went to l").

    Question: "what did p take" for one of the two takers; answer: that taker's object (one of 5 classes).
    """
    g = torch.Generator().manual_seed(seed)
    rows = torch.arange(batch)
    length = torch.randint(3, SLOTS + 1, (batch,), generator=g)
    walk = lambda k, n: torch.full((batch, n), k)  # noqa: E731
    story = torch.stack([torch.randint(PERSONS, (batch, SLOTS), generator=g) + PERSON, walk(WENT, SLOTS), walk(TO, SLOTS),
                         torch.randint(PLACES, (batch, SLOTS), generator=g) + PLACE], -1)  # [batch, SLOTS, WORDS]
    takers = torch.rand(batch, PERSONS, generator=g).argsort(-1)[:, :2]  # two different people
    objects = torch.rand(batch, OBJECTS, generator=g).argsort(-1)[:, :2]
    padding = (torch.arange(SLOTS) >= length.unsqueeze(-1)).float()
    slots = (torch.rand(batch, SLOTS, generator=g) + 2 * padding).argsort(-1)[:, :2]  # two real sentence slots
    story[rows.unsqueeze(-1), slots] = torch.stack([takers + PERSON, torch.full_like(takers, TOOK), objects + OBJECT,
                                                     torch.zeros_like(takers)], -1)
    story[padding.bool()] = 0
    which = torch.randint(2, (batch,), generator=g)
    question = torch.stack([walk(WHAT, 1)[:, 0], walk(DID, 1)[:, 0], takers[rows, which] + PERSON, walk(TAKE, 1)[:, 0]], -1)
    return story, question, objects[rows, which]


def test_learns_which_object_a_person_took():
    train_story, train_question, train_answer = _pick_up_task(2000, seed=0)
    val_story, val_question, val_answer = _pick_up_task(500, seed=1)
    torch.manual_seed(0)
    model = DMNPlus(FactMemory(word_size=16, dropout=0.0), passes=1, answer_dropout=0.0)
    model.bind(VOCAB, OBJECTS, SLOTS, WORDS, 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    accuracy = 0.0
    for step in range(400):
        i = (step * 32) % 2000
        loss = F.cross_entropy(model(train_story[i : i + 32], train_question[i : i + 32]).logits, train_answer[i : i + 32])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 20 == 19:
            model.eval()
            with torch.no_grad():
                accuracy = (model(val_story, val_question).logits.argmax(-1) == val_answer).float().mean().item()
            model.train()
            if accuracy > 0.95:
                break
    assert accuracy > 0.9, f"validation accuracy {accuracy:.3f} after {step + 1} steps"
