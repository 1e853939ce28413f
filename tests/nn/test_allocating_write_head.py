"""AllocatingWriteHead: the DNC's usage-based allocation as a write head for any memory with slots (mannkit.nn.heads).

Sizes are distinct (B=3, N=7, W=5) so that a transposed axis breaks a test.
"""

import pytest
import torch
from torch.autograd import gradcheck

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Memory
from mannkit.nn import AllocatingWriteHead, ContentAddressing, MatrixMemory, MatrixState, WriteHead
from mannkit.nn.heads import AllocationState
from mannkit.testing import check_head

B, N, W = 3, 7, 5
F64 = torch.float64
CPU = torch.device("cpu")
BIG = 30.0  # a raw gate of +-BIG is a sigmoid of 1 or 0 to float64 precision (about 1e-13)


def _head(count: int = 1, dtype: torch.dtype = F64) -> tuple[AllocatingWriteHead, MatrixMemory]:
    memory = MatrixMemory(slots=N, word_size=W, init="constant", init_value=0.0).to(dtype)
    head = AllocatingWriteHead(ContentAddressing(), count=count)
    head.bind(memory)
    return head.to(dtype), memory


def _params(count: int, allocation_gate: float, write_gate: float, add: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``[B, h, P]``: a random content key and strength, the two raw gates, erase fully open, the given add ``[B, h, W]``."""
    key = torch.randn(B, count, W + 1, generator=torch.Generator().manual_seed(seed), dtype=F64)
    gates = torch.tensor([allocation_gate, write_gate], dtype=F64).expand(B, count, 2)
    erase = torch.full((B, count, W), BIG, dtype=F64)
    return torch.cat([key, gates, erase, add], dim=-1)


def test_param_size_is_the_addressing_two_gates_erase_and_add():
    head, memory = _head()
    assert head.param_size(memory) == (W + 1) + 2 + 2 * W


def test_an_allocating_head_writes_each_step_into_a_free_slot_and_marks_it_used():
    """Allocation gate and write gate open: each step writes one whole word into a slot not written before
    (a stable sort takes slot 0 of an empty memory first), and the usage of exactly those slots becomes 1."""
    head, memory = _head()
    memory_state, state = memory.initial_state(B, CPU, F64), head.initial_state(B, memory, CPU, F64)
    words = torch.randn(3, B, 1, W, generator=torch.Generator().manual_seed(1), dtype=F64)
    taken = []
    for t in range(3):
        out = head(_params(1, BIG, BIG, words[t], seed=t), memory, memory_state, state, record=True)
        memory_state, state = out.memory_state, out.state
        weights = out.trace["write_weights"][:, 0]  # [B, N]
        slot = weights.argmax(-1)  # [B]
        torch.testing.assert_close(weights, torch.eye(N, dtype=F64)[slot], atol=1e-5, rtol=0)  # one whole slot
        assert all(bool((slot != before).all()) for before in taken)  # never one written before
        taken.append(slot)
    assert (taken[0] == 0).all()
    slots = torch.stack(taken, 1)  # [B, 3]
    written = memory_state.memory.gather(1, slots.unsqueeze(-1).expand(B, 3, W))  # [B, 3, W]
    torch.testing.assert_close(written, words[:, :, 0].transpose(0, 1), atol=1e-5, rtol=0)
    used = torch.zeros(B, N, dtype=F64).scatter(1, slots, 1.0)
    torch.testing.assert_close(state.usage, used, atol=1e-5, rtol=0)
    untouched = memory_state.memory.masked_select(~used.bool().unsqueeze(-1).expand(B, N, W))
    assert untouched.abs().max() < 1e-5  # nothing else written


def test_with_the_allocation_gate_closed_it_is_a_content_write_head():
    """g^a = 0, g^w = 1: w = c, the same write as WriteHead with the same addressing and numbers."""
    head, memory = _head()
    plain = WriteHead(ContentAddressing())
    plain.bind(memory)
    start = MatrixState(torch.randn(B, N, W, generator=torch.Generator().manual_seed(2), dtype=F64))
    add = torch.randn(B, 1, W, dtype=F64)
    params = _params(1, -BIG, BIG, add, seed=3)
    ours = head(params, memory, start, head.initial_state(B, memory, CPU, F64))
    key_strength, erase_add = params[..., : W + 1], params[..., W + 3 :]
    theirs = plain(torch.cat([key_strength, erase_add], -1), memory, start, plain.initial_state(B, memory, CPU, F64))
    torch.testing.assert_close(ours.memory_state.memory, theirs.memory_state.memory)


def test_a_closed_write_gate_writes_nothing_and_uses_nothing():
    head, memory = _head()
    start = MatrixState(torch.randn(B, N, W, dtype=F64))
    out = head(_params(1, BIG, -BIG, torch.randn(B, 1, W, dtype=F64)), memory, start, head.initial_state(B, memory, CPU, F64))
    torch.testing.assert_close(out.memory_state.memory, start.memory)
    assert out.state.usage.abs().max() < 1e-10


def test_two_heads_allocate_two_different_free_slots():
    """Head 2 allocates from the usage after head 1's allocation, so they do not both take slot 0."""
    head, memory = _head(count=2)
    out = head(_params(2, BIG, BIG, torch.randn(B, 2, W, dtype=F64)), memory, memory.initial_state(B, CPU, F64),
               head.initial_state(B, memory, CPU, F64), record=True)
    weights = out.trace["write_weights"]  # [B, 2, N]
    assert (weights.argmax(-1)[:, 0] != weights.argmax(-1)[:, 1]).all()
    assert (weights.max(-1).values > 1 - 1e-5).all()
    assert (out.state.usage.sum(-1) > 2 - 1e-4).all()


def test_usage_stays_in_0_1_never_falls_and_weights_sum_to_at_most_1():
    torch.manual_seed(0)
    head, memory = _head(count=2)
    memory_state, state = memory.initial_state(B, CPU, F64), head.initial_state(B, memory, CPU, F64)
    for _ in range(12):
        out = head(3 * torch.randn(B, 2, head.param_size(memory), dtype=F64), memory, memory_state, state, record=True)
        weights = out.trace["write_weights"]
        assert (weights >= 0).all() and (weights.sum(-1) <= 1 + 1e-9).all()
        assert (out.state.usage >= state.usage - 1e-12).all()  # nothing is freed
        assert (out.state.usage >= 0).all() and (out.state.usage <= 1 + 1e-12).all()
        assert out.trace["allocation_weights"].shape == (B, 2, N) and out.trace["usage"].shape == (B, N)
        memory_state, state = out.memory_state, out.state


@pytest.mark.parametrize("count", [1, 2])
def test_gradcheck_through_params_memory_and_usage(count):
    head, memory = _head(count=count)
    P = head.param_size(memory)
    gen = torch.Generator().manual_seed(4)
    params = torch.randn(B, count, P, generator=gen, dtype=F64).requires_grad_()
    contents = torch.randn(B, N, W, generator=gen, dtype=F64).requires_grad_()
    usage = torch.rand(B, N, generator=gen, dtype=F64).requires_grad_()  # distinct values: no sort ties

    def step(params, contents, usage):  # noqa: ANN001
        out = head(params, memory, MatrixState(contents), AllocationState((), usage))
        return out.memory_state.memory, out.state.usage

    assert gradcheck(step, (params, contents, usage))


def test_the_conformance_kit_passes():
    check_head(lambda: AllocatingWriteHead(ContentAddressing(), count=2))


class _NoSlots(Memory):
    """A memory with read and write but no fixed slots."""

    word_size = 4

    def initial_state(self, batch_size, device, dtype):  # noqa: ANN001
        return MatrixState(torch.zeros(batch_size, 3, 4, device=device, dtype=dtype))

    def read(self, weights, state):  # noqa: ANN001
        return weights @ state.memory

    def write(self, weights, erase, add, state):  # noqa: ANN001
        return state


def test_a_memory_without_fixed_slots_is_refused_in_one_sentence():
    with pytest.raises(ConfigError) as caught:
        AllocatingWriteHead(ContentAddressing()).bind(_NoSlots())
    message = str(caught.value)
    assert "slots" in message and "_NoSlots" in message and "MatrixMemory" in message
    assert message.endswith(".") and message.count(". ") == 0
