"""The input fusion layer (plugins/mannkit_dmn/memory.py): both directions, padding, dropout, the kit.

Sizes are distinct (B=3, N=7, W=5) so that a transposed axis breaks a test.
"""

import pytest
import torch
from torch.autograd import gradcheck

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.testing import check_component, check_memory
from mannkit.nn import ContentAddressing
from mannkit_dmn import AttentionGRUHead, FactMemory, FactState, FactTagger, fuse_directions, reverse_within, story_lengths

B, N, W = 3, 7, 5
F64 = torch.float64


def _randn(*shape: int, seed: int, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64).requires_grad_(grad)


def _memory(dropout: float = 0.0) -> FactMemory:
    torch.manual_seed(0)
    return FactMemory(word_size=W, dropout=dropout).double()


def _mask(lengths: list[int], slots: int = N) -> torch.Tensor:
    return torch.arange(slots) < torch.tensor(lengths).unsqueeze(-1)


def test_fuse_directions_sums_forward_and_backward():
    forward, backward = _randn(B, N, W, seed=1), _randn(B, N, W, seed=31)
    assert torch.equal(fuse_directions(forward, backward), forward + backward)


def test_reverse_within_each_length_is_an_involution():
    x = _randn(B, N, W, seed=32)
    lengths = torch.tensor([7, 3, 0])
    reversed_ = reverse_within(x, lengths)
    torch.testing.assert_close(reversed_[0], x[0].flip(0))
    torch.testing.assert_close(reversed_[1, :3], x[1, :3].flip(0))
    assert torch.equal(reversed_[1, 3:], x[1, 3:]) and torch.equal(reversed_[2], x[2])
    assert torch.equal(reverse_within(reversed_, lengths), x)


def test_story_lengths_count_to_the_last_real_sentence():
    mask = torch.tensor([[True, True, True, False], [True, False, True, False], [False, False, False, False]])
    assert story_lengths(mask).tolist() == [3, 3, 0]


def test_fusion_is_bidirectional_a_later_fact_changes_an_earlier_one_and_vice_versa():
    memory = _memory()
    sentences, mask = _randn(1, N, W, seed=2), torch.ones(1, N, dtype=torch.bool)
    before = memory.load(sentences, mask).memory
    later = sentences.clone()
    later[0, 5] += 1.0  # change the sixth sentence
    after = memory.load(later, mask).memory
    assert not torch.allclose(before[0, 0], after[0, 0])  # the first fact hears of it (the backward direction)
    earlier = sentences.clone()
    earlier[0, 1] += 1.0
    assert not torch.allclose(before[0, 6], memory.load(earlier, mask).memory[0, 6])  # and the last one (forward)


def test_fact_is_the_sum_of_the_two_directions_checked_against_pytorch_s_bidirectional_gru():
    memory = _memory()
    sentences = _randn(1, 4, W, seed=3)
    facts = memory.load(sentences, torch.ones(1, 4, dtype=torch.bool)).memory
    both = torch.nn.GRU(W, W, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(both, name).copy_(getattr(memory.forward_gru, name))
            getattr(both, name + "_reverse").copy_(getattr(memory.backward_gru, name))
    out = both(sentences)[0]  # [1, 4, 2W]: forward units, then backward units
    torch.testing.assert_close(facts, out[..., :W] + out[..., W:])  # f->_i + f<-_i


def test_padded_slots_are_zero_and_do_not_change_the_real_facts():
    memory = _memory()
    lengths = [7, 4, 2]
    sentences, mask = _randn(B, N, W, seed=4), _mask(lengths)
    state = memory.load(sentences, mask)
    assert isinstance(state, FactState) and torch.equal(state.mask, mask)
    for b, n in enumerate(lengths):
        assert torch.equal(state.memory[b, n:], torch.zeros(N - n, W, dtype=F64))
        alone = memory.load(sentences[b : b + 1, :n], torch.ones(1, n, dtype=torch.bool)).memory
        torch.testing.assert_close(state.memory[b : b + 1, :n], alone)  # the backward direction starts at the last real one


def test_an_empty_story_gives_zero_facts_and_no_nan():
    state = _memory().load(_randn(2, N, W, seed=5), torch.zeros(2, N, dtype=torch.bool))
    assert torch.equal(state.memory, torch.zeros(2, N, W, dtype=F64)) and not state.mask.any()


def test_dropout_acts_in_training_only():
    memory = _memory(dropout=0.5)
    sentences, mask = _randn(B, N, W, seed=6), _mask([7, 7, 7])
    memory.eval()
    a, b = memory.load(sentences, mask).memory, memory.load(sentences, mask).memory
    assert torch.equal(a, b)
    memory.train()
    assert not torch.allclose(memory.load(sentences, mask).memory, a)


def test_read_is_the_weighted_sum_of_facts():
    memory = _memory()
    state = memory.load(_randn(B, N, W, seed=7), _mask([7, 5, 3]))
    weights = torch.softmax(_randn(B, 2, N, seed=8), -1)
    torch.testing.assert_close(memory.read(weights, state), torch.einsum("bhn,bnw->bhw", weights, state.memory))


def test_initial_state_is_an_empty_story():
    state = FactMemory(word_size=W).initial_state(B, torch.device("cpu"), F64)
    assert state.memory.shape == (B, 0, W) and state.memory.dtype == F64 and state.mask.shape == (B, 0)


def test_xavier_weights_and_zero_biases():
    memory = FactMemory(word_size=W)
    for name, tensor in [*memory.forward_gru.named_parameters(), *memory.backward_gru.named_parameters()]:
        if name.startswith("bias"):
            assert not tensor.any(), name
        else:
            bound = (6 / (W + W)) ** 0.5  # each [W, W] gate block
            assert tensor.abs().max() <= bound, name


def test_load_gradcheck():
    memory = FactMemory(word_size=2, dropout=0.0).double()
    mask = _mask([4, 2], slots=4)
    assert gradcheck(lambda s: memory.load(s, mask).memory, (_randn(2, 4, 2, seed=9, grad=True),))


def test_conforms_through_its_registered_harness():
    check_component("FactMemory")


def test_conforms_with_a_content_addressed_attention_gru():
    check_memory(lambda: FactMemory(word_size=W, dropout=0.0),
                 harness=lambda memory: FactTagger(memory, AttentionGRUHead(ContentAddressing(), count=2)))


@pytest.mark.parametrize("argument, value, message", [
    ("word_size", 0, r"^FactMemory: word_size must be a positive integer, got 0; set word_size to 1 or more\.$"),
    ("dropout", 1.0, r"^FactMemory: dropout must be a number in \[0, 1\), got 1\.0; use e\.g\. 0\.1, or 0 for none\.$"),
])
def test_bad_arguments_are_refused(argument, value, message):
    with pytest.raises(ConfigError, match=message):
        FactMemory(**{argument: value})


def test_sentences_of_the_wrong_width_name_both_shapes():
    with pytest.raises(ShapeError, match=r"sentences have shape \[3, 7, 4\] and mask \[3, 7\] but \[B, N, W\] = \[B, N, 5\]"):
        _memory().load(_randn(B, N, W - 1, seed=10), _mask([1, 1, 1]))
