"""DNC mechanisms (plugins/mannkit_dnc/mechanisms.py) and their fused forms (fused.py).

Hand-computed planted cases, invariants over random sequences, float64 gradcheck of every
mechanism and fused function, and the fused functions against the composed mechanisms.
Sizes are distinct primes (B=3, R=2, N=7, W=5) so that a transposed axis breaks a test.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from mannkit_dnc import buffers, fused_link
from mannkit_dnc.fused import (
    read_addressing,
    read_addressing_reference,
    temporal_step,
    temporal_step_reference,
    write_addressing,
    write_addressing_reference,
)
from mannkit_dnc.mechanisms import (
    allocation_weights,
    directional_weights,
    read_weighting,
    retention,
    update_link,
    update_precedence,
    update_usage,
    write_weighting,
)

B, R, N, W = 3, 2, 7, 5
F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rand(*shape: int, seed: int, grad: bool = False, scale: float = 1.0) -> torch.Tensor:
    return (scale * torch.rand(*shape, generator=_gen(seed), dtype=F64)).requires_grad_(grad)


def _randn(*shape: int, seed: int, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=F64).requires_grad_(grad)


def _weighting(*shape: int, seed: int, grad: bool = False, total: float = 1.0) -> torch.Tensor:
    """Non-negative weights summing to ``total`` over the last axis."""
    return (total * torch.softmax(2 * torch.randn(*shape, generator=_gen(seed), dtype=F64), -1)).requires_grad_(grad)


def _one_hot(slot: int, size: int = N) -> torch.Tensor:
    return F.one_hot(torch.tensor(slot), size).to(F64)


# -- allocation ------------------------------------------------------------------------------


def test_allocation_by_hand_on_three_slots():
    usage = torch.tensor([[0.5, 0.1, 0.9]], dtype=F64)
    # phi = (1, 0, 2): a[1] = 0.9, a[0] = (1 - 0.5) 0.1 = 0.05, a[2] = (1 - 0.9) 0.1 0.5 = 0.005
    expected = torch.tensor([[0.05, 0.9, 0.005]], dtype=F64)
    torch.testing.assert_close(allocation_weights(usage, eps=0.0), expected)
    torch.testing.assert_close(allocation_weights(usage), expected, atol=1e-5, rtol=0)  # the eps floor barely moves it


def test_allocation_picks_the_least_used_slot():
    usage = _rand(B, N, seed=1)
    allocation = allocation_weights(usage)
    assert torch.equal(allocation.argmax(-1), usage.argmin(-1))
    assert (allocation >= 0).all() and (allocation.sum(-1) <= 1 + 1e-12).all()


def test_a_full_memory_allocates_nothing_and_a_free_slot_takes_everything():
    full = torch.ones(B, N, dtype=F64)
    torch.testing.assert_close(allocation_weights(full, eps=0.0), torch.zeros(B, N, dtype=F64))
    one_free = full.clone()
    one_free[:, 4] = 0.0
    torch.testing.assert_close(allocation_weights(one_free, eps=0.0), _one_hot(4).expand(B, N))


def test_a_slot_freed_by_a_free_gate_becomes_allocatable():
    usage = torch.ones(B, N, dtype=F64)  # every slot in use
    read = torch.zeros(B, R, N, dtype=F64)
    read[:, 1, 3] = 1.0  # the second read head read slot 3 at the last step
    free = torch.tensor([[0.0, 1.0]] * B, dtype=F64)  # ... and its free gate is open
    no_write = torch.zeros(B, N, dtype=F64)
    new_usage = update_usage(usage, no_write, retention(free, read))
    torch.testing.assert_close(new_usage, 1 - _one_hot(3).expand(B, N))
    torch.testing.assert_close(allocation_weights(new_usage, eps=0.0), _one_hot(3).expand(B, N))
    closed = update_usage(usage, no_write, retention(torch.zeros(B, R, dtype=F64), read))
    torch.testing.assert_close(closed, usage)  # a shut free gate frees nothing


# -- usage -----------------------------------------------------------------------------------


def test_retention_and_usage_by_hand():
    free = torch.tensor([[0.5, 1.0]], dtype=F64)
    read = torch.tensor([[[0.2, 0.8, 0.0], [0.0, 0.5, 0.5]]], dtype=F64)  # [1, R, 3]
    psi = retention(free, read)  # prod_i (1 - f_i w^r_i)
    torch.testing.assert_close(psi, torch.tensor([[0.9 * 1.0, 0.6 * 0.5, 1.0 * 0.5]], dtype=F64))
    usage = torch.tensor([[0.5, 0.0, 1.0]], dtype=F64)
    write = torch.tensor([[0.5, 0.5, 0.0]], dtype=F64)
    # u + w - u w = [0.75, 0.5, 1.0], times psi
    torch.testing.assert_close(update_usage(usage, write, psi), torch.tensor([[0.675, 0.15, 0.5]], dtype=F64))


def test_retention_without_read_heads_keeps_everything():
    torch.testing.assert_close(retention(torch.zeros(B, 0, dtype=F64), torch.zeros(B, 0, N, dtype=F64)), torch.ones(B, N, dtype=F64))


def test_usage_stays_in_zero_one_over_random_steps():
    usage = torch.zeros(B, N, dtype=F64)
    for seed in range(40):
        free = _rand(B, R, seed=seed)
        read = _weighting(B, R, N, seed=seed + 100, total=0.9)
        write = _weighting(B, N, seed=seed + 200, total=float(torch.rand((), generator=_gen(seed))))
        usage = update_usage(usage, write, retention(free, read))
        assert (usage >= 0).all() and (usage <= 1).all(), seed
        allocation = allocation_weights(usage)
        assert (allocation >= 0).all() and (allocation.sum(-1) <= 1 + 1e-12).all()


# -- write weighting -------------------------------------------------------------------------


def test_write_weighting_gates():
    allocation, content = _weighting(B, N, seed=1), _weighting(B, N, seed=2)
    ones, zeros = torch.ones(B, 1, dtype=F64), torch.zeros(B, 1, dtype=F64)
    torch.testing.assert_close(write_weighting(allocation, content, ones, ones), allocation)
    torch.testing.assert_close(write_weighting(allocation, content, zeros, ones), content)
    torch.testing.assert_close(write_weighting(allocation, content, ones, zeros), torch.zeros(B, N, dtype=F64))
    gates = torch.tensor([[0.25], [0.5], [1.0]], dtype=F64)  # per example
    out = write_weighting(allocation, content, gates, 0.5 * ones)
    torch.testing.assert_close(out, 0.5 * (gates * allocation + (1 - gates) * content))


# -- temporal links --------------------------------------------------------------------------


def _write_in_order(slots: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Link and precedence after one-hot writes to ``slots`` in turn, from an empty memory."""
    link, precedence = torch.zeros(B, N, N, dtype=F64), torch.zeros(B, N, dtype=F64)
    for slot in slots:
        write = _one_hot(slot).expand(B, N)
        link, precedence = update_link(link, write, precedence), update_precedence(precedence, write)
    return link, precedence


def test_a_sequence_written_in_order_is_followed_forward_and_backward():
    A, Bs, C = 2, 5, 0  # written in this order
    link, precedence = _write_in_order([A, Bs, C])
    expected = torch.zeros(N, N, dtype=F64)
    expected[Bs, A] = expected[C, Bs] = 1.0  # L[i, j] = 1: i was written right after j
    torch.testing.assert_close(link, expected.expand(B, N, N))
    torch.testing.assert_close(precedence, _one_hot(C).expand(B, N))
    read = torch.stack([_one_hot(A), _one_hot(C)]).expand(B, R, N)  # head 0 on A, head 1 on C
    forward, backward = directional_weights(link, read)
    torch.testing.assert_close(forward[:, 0], _one_hot(Bs).expand(B, N))  # forward from A lands on B
    torch.testing.assert_close(backward[:, 1], _one_hot(Bs).expand(B, N))  # backward from C lands on B
    torch.testing.assert_close(forward[:, 1], torch.zeros(B, N, dtype=F64))  # nothing was written after C
    torch.testing.assert_close(backward[:, 0], torch.zeros(B, N, dtype=F64))  # nothing before A
    # the fused step gives the same links and weightings
    fused_link, fused_precedence = torch.zeros(B, N, N, dtype=F64), torch.zeros(B, N, dtype=F64)
    for slot in (A, Bs, C):
        fused_link, fused_precedence, f, b = temporal_step(fused_link, _one_hot(slot).expand(B, N), fused_precedence, read)
    torch.testing.assert_close(fused_link, link)
    torch.testing.assert_close((f, b), (forward, backward))


def test_rewriting_a_slot_cuts_its_old_links():
    link, _ = _write_in_order([1, 3, 1])  # 1, then 3, then 1 again
    assert link[0, 3, 1] == 0.0  # "3 after 1" was forgotten when 1 was rewritten
    assert link[0, 1, 3] == 1.0  # "1 after 3" is the new link


def test_link_and_precedence_invariants_over_random_writes():
    link, precedence = torch.zeros(B, N, N, dtype=F64), torch.zeros(B, N, dtype=F64)
    for seed in range(30):
        write = _weighting(B, N, seed=seed, total=float(torch.rand((), generator=_gen(seed + 500))))
        link, precedence = update_link(link, write, precedence), update_precedence(precedence, write)
        assert (torch.diagonal(link, dim1=1, dim2=2) == 0).all()
        assert (link >= 0).all()
        assert (link.sum(-1) <= 1 + 1e-12).all() and (link.sum(-2) <= 1 + 1e-12).all()
        assert (precedence >= 0).all() and (precedence.sum(-1) <= 1 + 1e-12).all()


def test_precedence_by_hand():
    precedence = torch.tensor([[0.5, 0.25, 0.0]], dtype=F64)
    write = torch.tensor([[0.0, 0.5, 0.25]], dtype=F64)
    torch.testing.assert_close(update_precedence(precedence, write), torch.tensor([[0.125, 0.5625, 0.25]], dtype=F64))


def test_directional_weights_match_the_sums():
    link, read = _rand(B, N, N, seed=1), _weighting(B, R, N, seed=2)
    forward, backward = directional_weights(link, read)
    for b in range(B):
        for h in range(R):
            torch.testing.assert_close(forward[b, h], link[b] @ read[b, h])  # f = L w^r
            torch.testing.assert_close(backward[b, h], link[b].T @ read[b, h])  # b = L^T w^r


def test_read_weighting_modes_select_each_weighting():
    backward, content, forward = (_weighting(B, R, N, seed=s) for s in (1, 2, 3))
    for mode, expected in enumerate((backward, content, forward)):
        modes = F.one_hot(torch.full((B, R), mode), 3).to(F64)
        torch.testing.assert_close(read_weighting(backward, content, forward, modes), expected)
    modes = _weighting(B, R, 3, seed=4)
    mixed = read_weighting(backward, content, forward, modes)
    torch.testing.assert_close(mixed[1, 0], modes[1, 0, 0] * backward[1, 0] + modes[1, 0, 1] * content[1, 0] + modes[1, 0, 2] * forward[1, 0])


# -- gradients of the mechanisms (float64 gradcheck) ----------------------------------------


MECHANISMS = {
    "retention": lambda: (retention, (_rand(B, R, seed=1, grad=True), _weighting(B, R, N, seed=2, grad=True))),
    "update_usage": lambda: (update_usage, (_rand(B, N, seed=1, grad=True), _weighting(B, N, seed=2, grad=True), _rand(B, N, seed=3, grad=True))),
    "allocation_weights": lambda: (allocation_weights, (_rand(B, N, seed=1, grad=True),)),  # distinct values: no sort ties
    "write_weighting": lambda: (write_weighting, (_weighting(B, N, seed=1, grad=True), _weighting(B, N, seed=2, grad=True),
                                                  _rand(B, 1, seed=3, grad=True), _rand(B, 1, seed=4, grad=True))),
    "update_link": lambda: (update_link, (_rand(B, N, N, seed=1, grad=True, scale=0.1), _weighting(B, N, seed=2, grad=True, total=0.8),
                                          _weighting(B, N, seed=3, grad=True, total=0.9))),
    "update_precedence": lambda: (update_precedence, (_weighting(B, N, seed=1, grad=True), _weighting(B, N, seed=2, grad=True))),
    "directional_weights": lambda: (directional_weights, (_rand(B, N, N, seed=1, grad=True), _weighting(B, R, N, seed=2, grad=True))),
    "read_weighting": lambda: (read_weighting, tuple(_weighting(B, R, N, seed=s, grad=True) for s in (1, 2, 3)) + (_weighting(B, R, 3, seed=4, grad=True),)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_mechanism_gradcheck(name):
    fn, inputs = MECHANISMS[name]()
    assert gradcheck(fn, inputs)


def test_allocation_gradient_is_finite_when_usage_is_all_zero_or_all_one():
    for value in (0.0, 1.0):
        usage = torch.full((B, N), value, dtype=F64, requires_grad=True)
        allocation_weights(usage).mul(_randn(B, N, seed=1)).sum().backward()
        assert torch.isfinite(usage.grad).all(), value


# -- the fused functions against the composed mechanisms ------------------------------------


def _write_inputs(grad: bool = True, seed: int = 0) -> tuple[torch.Tensor, ...]:
    return (
        _randn(B, N, W, seed=seed + 1, grad=grad),  # memory
        _rand(B, N, seed=seed + 2, grad=grad),  # usage
        _weighting(B, N, seed=seed + 3, grad=grad, total=0.9),  # previous write
        _weighting(B, R, N, seed=seed + 4, grad=grad),  # previous read
        _randn(B, 1, W, seed=seed + 5, grad=grad),  # key
        (1 + _rand(B, 1, seed=seed + 6)).requires_grad_(grad),  # strength
        _rand(B, R, seed=seed + 7, grad=grad),  # free gates
        _rand(B, 1, seed=seed + 8, grad=grad),  # allocation gate
        _rand(B, 1, seed=seed + 9, grad=grad),  # write gate
    )


def _read_inputs(grad: bool = True, seed: int = 0) -> tuple[torch.Tensor, ...]:
    return (
        _randn(B, N, W, seed=seed + 1, grad=grad),  # memory
        _randn(B, R, W, seed=seed + 2, grad=grad),  # keys
        (1 + _rand(B, R, seed=seed + 3)).requires_grad_(grad),  # strengths
        _weighting(B, R, 3, seed=seed + 4, grad=grad),  # modes
        _weighting(B, R, N, seed=seed + 5, grad=grad, total=0.5),  # forward
        _weighting(B, R, N, seed=seed + 6, grad=grad, total=0.5),  # backward
    )


def _temporal_inputs(grad: bool = True, seed: int = 0) -> tuple[torch.Tensor, ...]:
    return (
        _rand(B, N, N, seed=seed + 1, grad=grad, scale=1 / N),  # link (a non-zero diagonal, ignored)
        _weighting(B, N, seed=seed + 2, grad=grad, total=0.8),  # write
        _weighting(B, N, seed=seed + 3, grad=grad, total=0.9),  # precedence
        _weighting(B, R, N, seed=seed + 4, grad=grad),  # read
    )


EPS = 1e-6
FUSED = {
    "write": (lambda *x: write_addressing(*x, EPS)[:2], lambda *x: write_addressing_reference(*x, EPS)[:2], _write_inputs),
    "temporal": (temporal_step, temporal_step_reference, _temporal_inputs),
    "read": (read_addressing, read_addressing_reference, _read_inputs),
}


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_function_matches_the_composed_mechanisms(name):
    fast, reference, make = FUSED[name]
    inputs = make()
    outputs, expected = fast(*inputs), reference(*inputs)
    torch.testing.assert_close(outputs, expected)
    weights = [_randn(*o.shape, seed=10 + i) for i, o in enumerate(outputs)]
    grads = torch.autograd.grad(outputs, inputs, weights)
    expected_grads = torch.autograd.grad(expected, inputs, weights)
    torch.testing.assert_close(grads, expected_grads)


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_function_gradcheck_and_gradgradcheck(name):
    fast, _, make = FUSED[name]
    inputs = make()
    assert gradcheck(fast, inputs)
    assert gradgradcheck(fast, inputs, fast_mode=True)  # second order runs through the reference composition


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_function_gradient_of_each_input_alone(name):
    fast, _, make = FUSED[name]
    for i in range(len(make(grad=False))):
        inputs = tuple(t.requires_grad_(j == i) for j, t in enumerate(make(grad=False)))
        assert gradcheck(fast, inputs, fast_mode=True), i


def test_fused_write_with_only_the_usage_used_downstream():
    inputs = _write_inputs()
    assert gradcheck(lambda *x: write_addressing(*x, EPS)[0], inputs)


def test_fused_write_gives_the_allocation_without_gradient():
    usage, weights, allocation = write_addressing(*_write_inputs(), EPS)
    assert not allocation.requires_grad and weights.requires_grad
    torch.testing.assert_close(allocation, allocation_weights(usage, EPS))


def _chain(link, write, precedence, read, keep_link=True):
    """Three temporal steps in a row (the middle ones get their link gradient from the next step)."""
    outputs = []
    for k in range(3):
        link, precedence, forward, backward = temporal_step(link, write * (0.4 + 0.2 * k), precedence, read.roll(k, -1))
        outputs += [forward, backward]
    return (link, precedence, *outputs) if keep_link else (precedence, *outputs)


@pytest.mark.parametrize("keep_link", [True, False])
def test_chained_temporal_steps_reuse_their_gradient_buffers_correctly(keep_link, monkeypatch):
    owned = []
    original = fused_link._owned
    monkeypatch.setattr(fused_link, "_owned", lambda g: owned.append(original(g)) or owned[-1])
    assert gradcheck(lambda *x: _chain(*x, keep_link=keep_link), _temporal_inputs(), fast_mode=True)
    assert any(owned), "the in-place path for a buffer of the next step was never taken"


def test_temporal_backward_in_chunks_equals_one_chunk(monkeypatch):
    inputs = _temporal_inputs()
    weights = [_randn(*o.shape, seed=20 + i) for i, o in enumerate(_chain(*inputs))]
    whole = torch.autograd.grad(_chain(*inputs), inputs, weights)
    monkeypatch.setattr(fused_link, "_CHUNK_ENTRIES", N * N)  # one batch element per chunk
    chunked = torch.autograd.grad(_chain(*inputs), inputs, weights)
    torch.testing.assert_close(chunked, whole)
    assert gradcheck(_chain, inputs, fast_mode=True)


def test_a_link_used_elsewhere_too_keeps_correct_gradients():
    """When the link also feeds another computation, autograd sums into a fresh buffer: no in-place reuse."""
    inputs = _temporal_inputs()

    def used_twice(link, write, precedence, read):
        new_link, precedence, forward, backward = temporal_step(link, write, precedence, read)
        following = temporal_step(new_link, write.flip(-1), precedence, read)
        return (*following, (new_link * new_link).sum().expand(1))

    assert gradcheck(used_twice, inputs, fast_mode=True)


def test_temporal_step_from_the_initial_expanded_zero_link():
    link = torch.zeros((), dtype=F64).expand(B, N, N)
    _, write, precedence, read = _temporal_inputs()
    out = temporal_step(link, write, precedence, read)
    torch.testing.assert_close(out, temporal_step_reference(torch.zeros(B, N, N, dtype=F64), write, precedence, read))
    assert gradcheck(lambda w, p, r: temporal_step(link, w, p, r), (write, precedence, read))


def test_temporal_step_without_read_heads():
    link, write, precedence, _ = _temporal_inputs()
    read = torch.zeros(B, 0, N, dtype=F64)
    new_link, new_precedence, forward, backward = temporal_step(link, write, precedence, read)
    assert forward.shape == backward.shape == (B, 0, N)
    assert gradcheck(lambda *x: temporal_step(*x, read)[:2], (link, write, precedence))


def test_fused_functions_give_no_nan_on_an_all_zero_memory():
    write = list(_write_inputs(grad=False))
    write[0], write[1], write[2], write[3], write[4] = (torch.zeros_like(t) for t in write[:5])  # memory, usage, weights, key
    write = [t.requires_grad_() for t in write]
    usage, weights, _ = write_addressing(*write, EPS)
    read = [torch.zeros_like(t).requires_grad_() for t in _read_inputs(grad=False)]
    reads, read_weights = read_addressing(*read)
    outputs = (usage, weights, reads, read_weights)
    assert all(torch.isfinite(o).all() for o in outputs)
    torch.autograd.backward(outputs, [torch.ones_like(o) for o in outputs])
    assert all(torch.isfinite(t.grad).all() for t in write + read if t.grad is not None)


def test_the_link_buffer_helper_gives_an_uninitialised_tensor_of_the_shape_asked():
    like = torch.zeros(1, dtype=F64)
    small = buffers._empty_link(like, (B, N, N))
    big = buffers._empty_link(like, (2, 512, 512))  # 4 MiB: asks for huge pages on Linux
    assert (small.shape, big.shape, big.dtype) == ((B, N, N), (2, 512, 512), F64)
    big.fill_(1.0)
    assert big.sum() == 2 * 512 * 512


def test_fused_write_with_no_usage_floor_handles_exactly_zero_usage():
    """allocation_eps = 0 (the paper's formula) with an empty memory: usage is exactly 0 everywhere."""
    inputs = list(_write_inputs(grad=False))
    inputs[1], inputs[2], inputs[3] = torch.zeros(B, N, dtype=F64), torch.zeros(B, N, dtype=F64), torch.zeros(B, R, N, dtype=F64)
    inputs = [t.requires_grad_() for t in inputs]
    outputs = write_addressing(*inputs, 0.0)[:2]
    weights = [_randn(*o.shape, seed=30 + i) for i, o in enumerate(outputs)]
    grads = torch.autograd.grad(outputs, inputs, weights)
    expected = torch.autograd.grad(write_addressing_reference(*inputs, 0.0)[:2], inputs, weights)
    assert all(torch.isfinite(g).all() for g in grads)
    torch.testing.assert_close(grads, expected)
