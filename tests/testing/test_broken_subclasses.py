"""The kit checks the class it is given, and catches what it used to miss.

Each broken component below subclasses a healthy built-in. The kit must test the subclass
itself (a subclass of a class with a registered example used to be checked with its parent's
example, so any fault of its own passed), and must catch a head whose ``param_size`` is larger
than what it uses, a state that changes dtype over a step, and a read from an empty memory with
a key that is not zero.
"""

import pytest
import torch
from mannkit_dmn.memory import FactMemory
from mannkit_dnc.heads import DNCReadHead, DNCWriteHead

from mannkit.nn import ContentAddressing, MatrixMemory, ReadHead, WriteHead
from mannkit.nn.addressing import content_weights
from mannkit.testing import SIZES, check_addressing, check_component, check_head, check_memory, default_factory
from mannkit.testing.defaults import example_for


# -- subclasses of classes whose example has a factory ---------------------------------------------
class NaNReadingDNCHead(DNCReadHead):
    """Reads NaN: its parent's registered example (a healthy DNCReadHead) must not stand in for it."""

    def forward(self, params, memory, memory_state, state, record=False):
        out = super().forward(params, memory, memory_state, state, record)
        return out._replace(reads=out.reads * float("nan"))


class TransposedDNCReadHead(DNCReadHead):
    def forward(self, params, memory, memory_state, state, record=False):
        out = super().forward(params, memory, memory_state, state, record)
        return out._replace(reads=out.reads.transpose(0, 1))


class NaNFactMemory(FactMemory):
    """Loads NaN facts (its parent's example is a FactMemory factory)."""

    def load(self, sentences, mask):
        state = super().load(sentences, mask)
        return state._replace(memory=state.memory * float("nan"))


class HealthyDNCReadHead(DNCReadHead):
    """Changes nothing: the subclass path passes a healthy subclass."""


@pytest.mark.parametrize(
    "cls, message",
    [
        (NaNReadingDNCHead, r"head NaNReadingDNCHead fails the contract check: the reads hold NaN or inf"),
        (TransposedDNCReadHead, r"head TransposedDNCReadHead fails the contract check: forward gives reads of shape \[2, 3, 11\]"),
        (NaNFactMemory, r"memory NaNFactMemory fails the \w+ check"),
    ],
    ids=["nan-reads", "transposed-reads", "nan-memory-read"],
)
def test_a_subclass_is_checked_itself_not_its_parents_example(cls, message):
    with pytest.raises(AssertionError, match=message):
        check_component(cls)


def test_a_subclass_is_built_with_its_parents_example_arguments():
    head = default_factory(NaNReadingDNCHead)()
    assert type(head) is NaNReadingDNCHead and head.count == SIZES.h  # the example's DNCReadHead(count=h)
    assert example_for(NaNReadingDNCHead).harness is example_for(DNCReadHead).harness  # partners are inherited
    assert example_for(NaNReadingDNCHead).factory is None
    check_component(HealthyDNCReadHead)


def test_an_example_that_builds_another_class_is_refused(monkeypatch):
    from mannkit.testing import defaults

    monkeypatch.setattr(defaults, "_EXAMPLES", {})
    defaults.register_example(NaNReadingDNCHead, lambda: DNCReadHead(count=2))
    with pytest.raises(AssertionError, match=r"asked to check NaNReadingDNCHead but its example factory builds DNCReadHead; "
                                             r"register an example that builds the class itself"):
        check_head(NaNReadingDNCHead)


# -- a head that declares more parameters than it uses ---------------------------------------------
class PaddedReadHead(ReadHead):
    """Declares three parameters per head more than its addressing takes, and drops them."""

    def param_size(self, memory):
        return super().param_size(memory) + 3

    def forward(self, params, memory, memory_state, state, record=False):
        return super().forward(params[..., :-3], memory, memory_state, state, record)


class PaddedDNCWriteHead(DNCWriteHead):
    """Declares one parameter more than the DNC interface vector and ignores the last."""

    def param_size(self, memory):
        return super().param_size(memory) + 1

    def forward(self, params, memory, memory_state, state, record=False):
        return super().forward(params[..., :-1], memory, memory_state, state, record)


@pytest.mark.parametrize(
    "target, message",
    [
        (lambda: PaddedReadHead(ContentAddressing()), r"declares P=15 parameters per head but forward ignores 3 of them \(positions \[12, 13, 14\]\)"),
        (PaddedDNCWriteHead, r"declares P=\d+ parameters per head but forward ignores 1 of them"),
    ],
    ids=["read-head", "dnc-write-head"],
)
def test_a_head_that_declares_unused_parameters_fails(target, message):
    with pytest.raises(AssertionError, match=r"fails the contract check: param_size\(memory\) " + message):
        check_head(target)


# -- a state that changes dtype over a step --------------------------------------------------------
class Float32WriteHead(WriteHead):
    """Hands back its addressing state (NTM-style previous weights) as float32, whatever the run's dtype."""

    def initial_state(self, batch_size, memory, device, dtype):
        return torch.zeros(batch_size, self.count, memory.slots, device=device, dtype=dtype)  # [B, h, N]

    def forward(self, params, memory, memory_state, state, record=False):
        out = super().forward(params, memory, memory_state, (), record)
        return out._replace(state=state.float())


class Float32DNCReadHead(DNCReadHead):
    """Returns a memory state whose read weightings fell back to float32."""

    def forward(self, params, memory, memory_state, state, record=False):
        out = super().forward(params, memory, memory_state, state, record)
        return out._replace(memory_state=out.memory_state._replace(read_weights=out.memory_state.read_weights.float()))


@pytest.mark.parametrize(
    "target, message",
    [
        (lambda: Float32WriteHead(ContentAddressing()), r"the head state changes dtype over a step: a torch\.float64 tensor comes back as torch\.float32"),
        (Float32DNCReadHead, r"float64 .*float32|float32 .*float64"),
    ],
    ids=["head-state", "memory-state"],
)
def test_a_state_that_changes_dtype_fails(target, message):
    with pytest.raises(AssertionError, match=r"fails the contract check: .*" + message):
        check_head(target)


# -- a read from an empty memory -------------------------------------------------------------------
class KeyGuardedAddressing(ContentAddressing):
    """Cosine similarity guarded against a zero key but not against an empty memory (0 / 0 there)."""

    def forward(self, params, memory_state, state):
        keys, raw_strength = params[..., :-1], params[..., -1]
        if not keys.any():  # the only guard: a zero key gives uniform weights
            return content_weights(keys, torch.nn.functional.softplus(raw_strength), memory_state.memory), state
        memory = memory_state.memory  # [B, N, W]
        cosine = torch.bmm(keys, memory.transpose(1, 2)) / (keys.norm(dim=-1, keepdim=True) * memory.norm(dim=-1).unsqueeze(1))
        return torch.softmax(torch.nn.functional.softplus(raw_strength).unsqueeze(-1) * cosine, dim=-1), state  # [B, h, N]


def test_an_empty_memory_read_with_a_nonzero_key_fails():
    message = r"fails the zero_memory check: the reads hold NaN or inf on an all-zero memory with non-zero parameters"
    with pytest.raises(AssertionError, match=message):
        check_head(lambda: ReadHead(KeyGuardedAddressing(), count=2))
    with pytest.raises(AssertionError, match=r"fails the zero_memory check: the weights hold NaN or inf on an all-zero memory with non-zero"):
        check_addressing(KeyGuardedAddressing)


def test_the_healthy_parents_pass():
    check_head(lambda: ReadHead(ContentAddressing(), count=2))
    check_head(DNCWriteHead)
    check_memory(lambda: MatrixMemory(SIZES.N, SIZES.W, init_value=0.0))


# -- a param_bias of the wrong shape ------------------------------------------------------------------
class ShortBiasReadHead(ReadHead):
    def param_bias(self, memory):
        return torch.zeros(2)


def test_a_head_whose_param_bias_has_the_wrong_shape_fails():
    with pytest.raises(AssertionError, match=r"param_bias\(memory\) must be None or a float tensor of shape \[\d+\]"):
        check_head(lambda: ShortBiasReadHead(ContentAddressing()))
    check_head(lambda: DNCWriteHead(free_gate_bias=-5))  # healthy ones pass
    check_head(lambda: DNCWriteHead(free_gates=False))
