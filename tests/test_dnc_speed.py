"""The dense DNC's speed measures (issue 16): reused link buffers never hand out memory in use."""

import torch

from mannkit_dnc import buffers
from mannkit_dnc.fused import temporal_step, temporal_step_reference

B, N, R = 2, 1024, 2  # one [B, N, N] float32 link is 8 MiB: large enough to be pooled


def test_a_link_buffer_is_reused_only_once_nothing_holds_it():
    like = torch.zeros(B, N)
    first = buffers._empty_link(like, (B, N, N))
    address = first.data_ptr()
    row = first[1]  # a view keeps it in use
    del first
    second = buffers._empty_link(like, (B, N, N))
    assert second.data_ptr() != address
    del row
    third = buffers._empty_link(like, (B, N, N))
    assert third.data_ptr() == address  # free again: its pages are reused
    small = buffers._empty_link(like, (B, 8, 8))
    assert small.shape == (B, 8, 8)  # small buffers are plain torch.empty


def test_without_torchs_private_use_count_no_buffer_is_reused(monkeypatch):
    """The pool rests on ``torch._C._storage_Use_Count``; a torch that lacks it gets fresh buffers, never one in use."""
    like = torch.zeros(B, N)
    monkeypatch.delattr(torch._C, "_storage_Use_Count")
    first = buffers._empty_link(like, (B, N, N))
    row, address = first[1], first.data_ptr()
    del first
    pooled = sum(len(b) for b in buffers._pool.values())
    second = buffers._empty_link(like, (B, N, N))
    assert second.data_ptr() != address and row.data_ptr() != second[1].data_ptr()
    assert sum(len(b) for b in buffers._pool.values()) == pooled  # nothing kept that could never be handed out again


def test_saved_links_are_not_overwritten_by_later_steps():
    """A chain of steps whose links autograd saves, with buffers freed and reused between sequences, matches the reference."""
    torch.manual_seed(0)
    for _ in range(2):  # the second sequence reuses the first one's buffers
        link = torch.zeros(()).expand(B, N, N)
        reference_link = link
        write = torch.softmax(torch.randn(3, B, N), -1).requires_grad_()
        read = torch.softmax(torch.randn(B, R, N), -1)
        precedence = reference_precedence = torch.zeros(B, N)
        outputs, expected = [], []
        for t in range(3):
            link, precedence, forward, backward = temporal_step(link, write[t], precedence, read)
            reference_link, reference_precedence, f_ref, b_ref = temporal_step_reference(reference_link, write[t], reference_precedence, read)
            outputs.append(forward.sum() + backward.pow(2).sum())
            expected.append(f_ref.sum() + b_ref.pow(2).sum())
        torch.testing.assert_close(link, reference_link)
        (got,) = torch.autograd.grad(sum(outputs), write)
        (want,) = torch.autograd.grad(sum(expected), write)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
