"""LRUA and plasticity equations: hand-computed cases, invariants and float64 gradcheck."""

import torch

from mannkit_mann.mechanisms import hebbian_update, least_used, lrua_write, lrua_write_weights, oja_update, update_usage


def test_least_used_picks_the_smallest_usage_and_the_first_of_ties():
    usage = torch.tensor([[0.3, 0.2, 0.9, 0.2], [0.0, 0.0, 0.0, 0.0]])
    assert least_used(usage).tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]


def test_write_weights_by_hand():
    gate = torch.tensor([[0.25, 1.0]])  # two heads: one mostly to the least-used slot, one to where it read
    previous = torch.tensor([[[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]])
    least = torch.tensor([[0.0, 0.0, 1.0]])
    w = lrua_write_weights(gate, previous, least)
    assert torch.allclose(w, torch.tensor([[[0.0, 0.25, 0.75], [0.5, 0.5, 0.0]]]))
    assert torch.allclose(w.sum(-1), torch.ones(1, 2))  # rows of one-hot and read weights mix to 1


def test_write_zeroes_the_least_used_slot_then_adds():
    memory = torch.arange(6.0).view(1, 3, 2)  # rows (0, 1), (2, 3), (4, 5)
    least = torch.tensor([[0.0, 1.0, 0.0]])
    weights = torch.tensor([[[0.0, 1.0, 0.0]]])  # the one head writes (7, 7) into slot 1
    out = lrua_write(memory, weights, torch.tensor([[[7.0, 7.0]]]), least)
    assert out.tolist() == [[[0, 1], [7, 7], [4, 5]]]
    half = lrua_write(memory, torch.tensor([[[0.5, 0.0, 0.5]]]), torch.tensor([[[2.0, 4.0]]]), least)
    assert half.tolist() == [[[1, 3], [0, 0], [5, 7]]]


def test_usage_decays_and_gains_reads_and_writes():
    usage = torch.tensor([[1.0, 0.0, 0.5]])
    reads = torch.tensor([[[0.2, 0.8, 0.0], [0.0, 0.0, 1.0]]])
    writes = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])
    assert torch.allclose(update_usage(usage, reads, writes, 0.9), torch.tensor([[0.9 + 0.2 + 1.0, 0.8, 0.45 + 1.0 + 1.0]]))


def test_hebbian_and_oja_updates_by_hand():
    hebb = torch.tensor([[[0.5, -1.0], [0.0, 2.0]]])
    pre, post, eta = torch.tensor([[1.0, -1.0]]), torch.tensor([[0.5, 1.0]]), torch.tensor(0.1)
    # Hebb: 0.9 * hebb + 0.1 * pre_i post_j = [[0.45 + 0.05, -0.9 + 0.1], [0 - 0.05, 1.8 - 0.1]]
    assert torch.allclose(hebbian_update(hebb, pre, post, eta, 2.0), torch.tensor([[[0.5, -0.8], [-0.05, 1.7]]]))
    # Oja: hebb + 0.1 * post_j (pre_i - post_j hebb_ij)
    # [0,0]: 0.5 + 0.1*0.5*(1 - 0.25) = 0.5375; [0,1]: -1 + 0.1*1*(1 + 1) = -0.8
    # [1,0]: 0 + 0.1*0.5*(-1 - 0) = -0.05; [1,1]: 2 + 0.1*1*(-1 - 2) = 1.7
    assert torch.allclose(oja_update(hebb, pre, post, eta, 2.0), torch.tensor([[[0.5375, -0.8], [-0.05, 1.7]]]))
    assert hebbian_update(hebb * 10, pre, post, eta, 2.0).abs().max() <= 2.0  # clamped


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    d = dict(dtype=torch.float64, requires_grad=True)
    gate, prev = torch.rand(3, 2, generator=g, dtype=torch.float64).requires_grad_(), torch.rand(3, 2, 7, generator=g, **{"dtype": torch.float64}).requires_grad_()
    least = least_used(torch.rand(3, 7, generator=g, dtype=torch.float64))
    memory, values = torch.randn(3, 7, 5, generator=g, dtype=torch.float64).requires_grad_(), torch.randn(3, 2, 5, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, m, v: lrua_write(m, lrua_write_weights(a, b, least), v, least), (gate, prev, memory, values))
    hebb = (0.1 * torch.randn(3, 4, 4, generator=g, dtype=torch.float64)).requires_grad_()
    pre, post = torch.randn(3, 4, generator=g, dtype=torch.float64).requires_grad_(), torch.randn(3, 4, generator=g, dtype=torch.float64).requires_grad_()
    eta = torch.tensor(0.05, **d)
    for rule in (hebbian_update, oja_update):
        assert torch.autograd.gradcheck(lambda h, a, b, e: rule(h, a, b, e, 2.0), (hebb, pre, post, eta))
