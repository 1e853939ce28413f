"""DNC pictures: the temporal link matrix, precedence and read modes are recorded (only when recording)
and drawn sensibly by mannkit's MemoryPictures.

Sizes are distinct (B=3, T=6, R=2, N=7, W=5, H=13) so that a transposed axis breaks a test.
"""

import numpy as np
import pytest
import torch

from mannkit.callbacks.memory_pictures import example_figures
from mannkit.cell import MemoryCell
from mannkit.nn import MLPController
from mannkit.systems import SequenceSystem
from mannkit.tasks import CopyTask
from mannkit.viz import draw_trace, view_of
from mannkit_dnc import DNCMemory, DNCReadHead, DNCWriteHead, SparseDNCMemory
from mannkit_dnc.mechanisms import update_link, update_precedence

B, T, R, N, W, H = 3, 6, 2, 7, 5, 13


def _cell(memory=None) -> MemoryCell:
    torch.manual_seed(0)
    cell = MemoryCell(MLPController(H, activation="tanh"), memory or DNCMemory(slots=N, word_size=W),
                      [DNCWriteHead(), DNCReadHead(count=R)])
    cell.bind(4, 3)
    return cell


def _trace(cell: MemoryCell, dtype=torch.float32) -> dict[str, torch.Tensor]:
    x = torch.randn(B, T, 4, generator=torch.Generator().manual_seed(1), dtype=dtype)
    return cell.to(dtype)(x, record=True).trace


def test_link_precedence_and_modes_are_recorded_with_their_shapes():
    trace = _trace(_cell())
    assert trace["link"].shape == (B, T, N, N)
    assert trace["precedence"].shape == (B, T, N)
    assert trace["read_modes"].shape == (B, T, R, 3)


def test_the_recorded_link_and_precedence_are_the_papers_recurrences_of_the_recorded_writes():
    """Replaying L_t and p_t from the traced write weightings gives the traced values at every step."""
    trace = _trace(_cell(), torch.float64)
    link, precedence = torch.zeros(B, N, N, dtype=torch.float64), torch.zeros(B, N, dtype=torch.float64)
    for t in range(T):
        w = trace["write_weights"][:, t, 0]  # w^w_t [B, N]
        link, precedence = update_link(link, w, precedence), update_precedence(precedence, w)
        torch.testing.assert_close(trace["link"][:, t], link)
        torch.testing.assert_close(trace["precedence"][:, t], precedence)
    assert link.abs().sum() > 0  # not a vacuous comparison of zeros


def test_read_modes_are_a_mixture_per_head_and_step():
    trace = _trace(_cell(), torch.float64)
    modes = trace["read_modes"]
    assert (modes > 0).all()
    torch.testing.assert_close(modes.sum(-1), torch.ones(B, T, R, dtype=torch.float64))


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_the_recorded_modes_are_the_ones_the_read_used(mode):
    """Parameters that force one mode (backward, content, forward) are recorded as that one-hot mixture."""
    memory = DNCMemory(slots=N, word_size=W)
    memory.attach_read_heads(R)
    logits = torch.full((B, R, 3), -1e4)
    logits[..., mode] = 1e4
    params = torch.cat([torch.randn(B, R, W + 1, generator=torch.Generator().manual_seed(2)), logits], -1)
    out = DNCReadHead(count=R)(params, memory, memory.initial_state(B, torch.device("cpu"), torch.float32), (), record=True)
    torch.testing.assert_close(out.trace["read_modes"], torch.nn.functional.one_hot(torch.full((B, R), mode), 3).float())


def test_nothing_is_recorded_on_the_training_path():
    out = _cell()(torch.randn(B, T, 4))
    assert not out.trace


def test_the_pictures_of_a_dnc():
    trace = {name: value[0].detach().numpy() for name, value in _trace(_cell()).items()}
    assert view_of("link", trace["link"]) == "final" and view_of("read_modes", trace["read_modes"]) == "modes"
    figures = draw_trace(trace)
    assert {"link", "precedence", "read_modes"} <= set(figures)
    (link_axes, _) = figures["link"].axes  # the matrix and its colour bar
    assert (link_axes.get_xlabel(), link_axes.get_ylabel()) == ("slot j (written before)", "slot i (written after j)")
    assert link_axes.get_title() == f"link at step {T - 1}"
    assert link_axes.images[0].get_array().shape == (N, N)
    np.testing.assert_allclose(link_axes.images[0].get_array(), trace["link"][-1])
    mode_axes = figures["read_modes"].axes
    assert len(mode_axes) == R
    assert [t.get_text() for t in mode_axes[0].get_legend().get_texts()] == ["backward", "content", "forward"]
    np.testing.assert_allclose(mode_axes[1].lines[2].get_ydata(), trace["read_modes"][:, 1, 2])  # head 1, forward
    (precedence_axes, _) = figures["precedence"].axes
    assert precedence_axes.get_ylabel() == "memory slot" and precedence_axes.images[0].get_array().shape == (N, T)


def test_memory_pictures_draw_them_for_a_sequence_system():
    system = SequenceSystem(_cell(), input_size=4, output_size=3)
    batch = CopyTask(bits=3, min_length=2, max_length=3, seed=3).example_batch(1)
    figures = example_figures(system, batch)
    assert {"link", "precedence", "read_modes", "usage", "read_weights"} <= set(figures)


@pytest.mark.parametrize("slots", [16])
def test_the_sparse_memory_records_precedence_and_modes_but_no_dense_link(slots):
    trace = _trace(_cell(SparseDNCMemory(slots=slots, word_size=W, k=2, link_k=2)))
    assert trace["read_modes"].shape == (B, T, R, 3) and trace["precedence"].shape == (B, T, slots)
    assert (trace["precedence"] >= 0).all() and (trace["precedence"].sum(-1) <= 1 + 1e-5).all()
    assert trace["precedence"][:, -1].sum() > 0 and "link" not in trace
    assert "read_modes" in draw_trace({k: v[0].detach().numpy() for k, v in trace.items()})
