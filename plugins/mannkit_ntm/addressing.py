"""NTM location addressing (Graves et al. 2014, sec. 3.3): content, interpolation, shift, sharpening.

Shape letters: B batch, h heads of one bank, N memory slots, W word size,
S = 2k + 1 shift offsets for a shift range k (offset index 0 is the shift -k).

Each equation of the paper is a small pure function; :class:`NTMAddressing`
composes them (content -> interpolate -> circular shift -> sharpen) and keeps the
previous weighting as its state.

>>> import torch
>>> w = torch.tensor([[[0.0, 0.0, 1.0]]])                 # [B=1, h=1, N=3], all mass on slot 2
>>> circular_shift(w, torch.tensor([[[0.0, 0.0, 1.0]]]))  # shift by +1 wraps round to slot 0
tensor([[[1., 0., 0.]]])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mannkit.core.errors import ConfigError, ShapeError
from mannkit.core.interfaces import Addressing, Memory, slot_mask
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.nn.addressing import EPS, content_weights, cosine_similarity_parts, cosine_similarity_vjp

__all__ = ["NTMAddressing", "interpolate", "circular_shift", "sharpen", "shift_index"]


def interpolate(content: Tensor, previous: Tensor, gate: Tensor) -> Tensor:
    """Interpolation gate (NTM eq. 7): ``w_g = g w_c + (1 - g) w_{t-1}``.

    Args:
        content: w_c, ``[B, h, N]``.
        previous: w_{t-1}, ``[B, h, N]``.
        gate: g in [0, 1], ``[B, h]``.

    Returns:
        w_g, ``[B, h, N]``; a weighting when both inputs are.

    >>> interpolate(torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 1.0]]]), torch.tensor([[0.25]]))
    tensor([[[0.2500, 0.7500]]])
    """
    g = gate.unsqueeze(-1)  # [B, h] -> [B, h, 1], broadcast over N
    return g * content + (1 - g) * previous  # w_g


def shift_index(slots: int, shifts: int, device: torch.device | None = None) -> Tensor:
    """The gather index of a circular convolution: ``index[o, i] = (i - (o - k)) mod N``.

    Row ``o`` holds, for each output slot ``i``, the slot that offset ``o - k`` moves onto ``i``.

    Args:
        slots: N.
        shifts: S = 2k + 1.

    Returns:
        ``[S, N]`` int64.

    >>> shift_index(4, 3)
    tensor([[1, 2, 3, 0],
            [0, 1, 2, 3],
            [3, 0, 1, 2]])
    """
    k = shifts // 2
    offsets = torch.arange(-k, k + 1, device=device)  # [S], the shift of each row
    slot = torch.arange(slots, device=device)  # [N]
    return (slot.unsqueeze(0) - offsets.unsqueeze(1)) % slots  # [1, N] - [S, 1] -> [S, N]


_INDEX_CACHE: dict[tuple[int, int, torch.device], tuple[Tensor, Tensor]] = {}


def _shift_indices(slots: int, shifts: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """:func:`shift_index` and its transpose (the rows in reverse order), ``[S, N]`` each.

    Built once per (N, S, device) in eager mode; under ``torch.compile`` they are constants.
    """
    if torch.compiler.is_compiling():
        index = shift_index(slots, shifts, device)
        return index, index.flip(0)
    key = (slots, shifts, device)
    pair = _INDEX_CACHE.get(key)
    if pair is None:
        index = shift_index(slots, shifts, device)
        pair = _INDEX_CACHE[key] = (index, index.flip(0))
    return pair


def _gather_shift(weights: Tensor, shift: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """``w~(i) = sum_o s(o) w(index[o, i])`` -> ``(w~ [B, h, N], moved [B, h, S, N])``."""
    B, h, N = weights.shape
    S = index.shape[0]
    moved = weights[..., index]  # w(i - d mod N) for each offset d: [B, h, N] -> [B, h, S, N]
    out = torch.bmm(shift.reshape(B * h, 1, S), moved.view(B * h, S, N))  # [B*h, 1, S] @ [B*h, S, N]
    return out.view(B, h, N), moved


def circular_shift(weights: Tensor, shift: Tensor) -> Tensor:
    """Convolutional shift (NTM eq. 8): ``w~(i) = sum_j w(j) s(i - j mod N)``.

    Offsets run from -k to k with S = 2k + 1 (``shift[..., 0]`` is the weight of the
    shift -k); a positive offset moves mass to higher slots and wraps round from N-1 to 0.
    One gather with a ``[S, N]`` index, no loop.

    Args:
        weights: w_g, ``[B, h, N]``.
        shift: s, a distribution over the S offsets, ``[B, h, S]`` (S odd).

    Returns:
        w~, ``[B, h, N]``.

    >>> w = torch.tensor([[[0.1, 0.2, 0.3, 0.4]]])
    >>> circular_shift(w, torch.tensor([[[1.0, 0.0, 0.0]]]))  # all mass on the offset -1
    tensor([[[0.2000, 0.3000, 0.4000, 0.1000]]])
    """
    S = shift.shape[-1]
    if S % 2 != 1:
        raise ShapeError(
            f"shift has shape {list(shift.shape)} but its last axis must be odd (S = 2k + 1 offsets from -k to k)."
        )
    index, _ = _shift_indices(weights.shape[-1], S, weights.device)  # [S, N]
    moved = weights[..., index]  # w(i - d mod N) for each offset d: [B, h, N] -> [B, h, S, N]
    return (shift.unsqueeze(-2) @ moved).squeeze(-2)  # w~(i) = sum_d s(d) w(i - d): [B, h, 1, S] @ [B, h, S, N]


def sharpen(weights: Tensor, gamma: Tensor) -> Tensor:
    """Sharpening (NTM eq. 9): ``w(i) = w~(i)^gamma / sum_j w~(j)^gamma``.

    Computed as ``softmax(gamma * log w~)`` with ``w~`` clamped to the dtype's smallest
    normal number, so it is exact for positive weights, normalised, and free of NaN and
    inf for zero weights or a huge gamma (1e6 gives the one-hot of the argmax).

    Args:
        weights: w~ >= 0, ``[B, h, N]``.
        gamma: gamma >= 1, ``[B, h]``.

    Returns:
        ``[B, h, N]``, summing to 1 over N.

    >>> sharpen(torch.tensor([[[0.2, 0.3, 0.5]]]), torch.tensor([[2.0]]))  # [0.04, 0.09, 0.25] / 0.38
    tensor([[[0.1053, 0.2368, 0.6579]]])
    """
    log_w = torch.log(weights.clamp_min(torch.finfo(weights.dtype).tiny))  # log w~, finite at zero
    return torch.softmax(gamma.unsqueeze(-1) * log_w, dim=-1)  # w~^gamma / sum_j w~(j)^gamma


_aten = torch.ops.aten


def _address_parts(params: Tensor, memory: Tensor, previous: Tensor, shifts: int) -> tuple[Tensor, ...]:
    """NTM eq. 5-9 from raw parameters, returning every intermediate the backward needs (weights last)."""
    N, W = memory.shape[-2:]
    keys, raw_beta, raw_gate, raw_shift, raw_gamma = params.split([W, 1, 1, shifts, 1], dim=-1)  # k | beta | g | s | gamma
    beta = F.softplus(raw_beta)  # key strength >= 0, [B, h, 1]
    gate = torch.sigmoid(raw_gate)  # g in [0, 1], [B, h, 1]
    shift = torch.softmax(raw_shift, dim=-1)  # s over the S offsets, [B, h, S]
    gamma = F.softplus(raw_gamma) + 1  # gamma >= 1, [B, h, 1]

    sims, key_sq, mem_sq, scale = cosine_similarity_parts(keys, memory, EPS)  # K(k, M[n]), [B, h, N]
    content = torch.softmax(beta * sims, dim=-1)  # w_c, eq. 5
    gated = torch.lerp(previous, content, gate)  # w_g = w_{t-1} + g (w_c - w_{t-1}), eq. 7
    index, _ = _shift_indices(N, shifts, memory.device)
    shifted, moved = _gather_shift(gated, shift, index)  # w~, eq. 8
    clamped = shifted.clamp_min(torch.finfo(shifted.dtype).tiny)  # w~ >= tiny so that its log is finite
    log_w = clamped.log()
    weights = torch.softmax(gamma * log_w, dim=-1)  # w_t = w~^gamma / sum_j w~(j)^gamma, eq. 9
    return sims, key_sq, mem_sq, scale, beta, gate, shift, gamma, content, moved, shifted, clamped, log_w, weights


class _NTMAddressingFunction(torch.autograd.Function):
    """NTM eq. 5-9 from raw parameters in one autograd node, with a hand-written backward.

    Forward (:func:`_address_parts`) is :func:`content_weights` -> :func:`interpolate` (as one
    ``lerp``) -> :func:`circular_shift` -> :func:`sharpen` after the activations; backward runs
    the chain rule through the same steps in reverse on the forward's intermediates (rebuilt
    from the inputs when a double backward needs them differentiable). At these sizes the cost
    is the number of tensor calls, so each step is written with few.
    Inputs: ``params [B, h, W + S + 3]`` (raw), ``memory [B, N, W]``, ``previous [B, h, N]``.
    """

    @staticmethod
    def forward(ctx, params: Tensor, memory: Tensor, previous: Tensor, shifts: int) -> Tensor:  # noqa: ANN001
        parts = _address_parts(params, memory, previous, shifts)
        ctx.shifts = shifts
        ctx.save_for_backward(params, memory, previous, *parts)
        return parts[-1]

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN205, ANN001
        params, memory, previous, *parts = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward: rebuild the intermediates as functions of the inputs
            parts = _address_parts(params, memory, previous, ctx.shifts)
        sims, key_sq, mem_sq, scale, beta, gate, shift, gamma, content, moved, shifted, clamped, log_w, weights = parts
        need_params, need_memory, need_previous, _ = ctx.needs_input_grad
        B, h, N = weights.shape
        S, W = shift.shape[-1], memory.shape[-1]
        keys, raw_beta, _, _, raw_gamma = params.split([W, 1, 1, S, 1], dim=-1)

        # eq. 9: w = softmax(gamma log max(w~, tiny))
        d_logits = _aten._softmax_backward_data(grad, weights, -1, weights.dtype)  # [B, h, N]
        d_gamma = (d_logits * log_w).sum(-1, keepdim=True)  # [B, h, 1]
        d_shifted = torch.where(shifted == clamped, d_logits * gamma / clamped, 0.0)  # no gradient where clamped

        # eq. 8: d s(o) = sum_i dw~(i) w_g(index[o, i]); dw_g gathers dw~ with the transposed index
        d_shift = torch.bmm(d_shifted.view(B * h, 1, N), moved.view(B * h, S, N).mT).view(B, h, S)
        _, index_t = _shift_indices(N, S, memory.device)
        d_gated, _ = _gather_shift(d_shifted, shift, index_t)  # [B, h, N]

        # eq. 7: w_g = w_{t-1} + g (w_c - w_{t-1})
        d_gate = ((content - previous) * d_gated).sum(-1, keepdim=True)  # [B, h, 1]
        d_content = gate * d_gated
        d_previous = d_gated - d_content if need_previous else None  # (1 - g) dw_g

        # eq. 5: w_c = softmax(beta K)
        d_scores = _aten._softmax_backward_data(d_content, content, -1, content.dtype)
        d_keys, d_memory = cosine_similarity_vjp(
            d_scores * beta, keys, memory, sims, key_sq, mem_sq, scale,
            need_keys=need_params, need_memory=need_memory,
        )  # fmt: skip

        d_params = None
        if need_params:  # through the activations, back into the raw layout k | beta | g | s | gamma
            d_beta = (d_scores * sims).sum(-1, keepdim=True)  # [B, h, 1]
            d_params = torch.cat(
                [
                    d_keys,
                    _aten.softplus_backward(d_beta, raw_beta, 1.0, 20.0),
                    _aten.sigmoid_backward(d_gate, gate),
                    _aten._softmax_backward_data(d_shift, shift, -1, shift.dtype),
                    _aten.softplus_backward(d_gamma, raw_gamma, 1.0, 20.0),
                ],
                dim=-1,
            )
        return d_params, d_memory, d_previous, None


@register
class NTMAddressing(Addressing):
    """The full NTM addressing: content weights, interpolation with the previous weighting, shift, sharpening.

    Each head's raw parameters are ``P = W + 1 + 1 + S + 1``, in this order: the key k (W),
    the key strength beta = softplus(raw), the gate g = sigmoid(raw), the shift weights
    s = softmax(raw) over the S offsets, and the sharpening gamma = 1 + softplus(raw).
    The state is the previous weighting ``[B, h, N]``, one-hot on slot 0 at the start.

    Args:
        shift_range: k, the largest shift in either direction, so that S = 2k + 1 offsets
            (-k .. k) are learned; 0 disables shifting. The memory needs at least S slots.

    >>> from mannkit.nn import MatrixMemory
    >>> memory = MatrixMemory(slots=7, word_size=5)
    >>> addressing = NTMAddressing(shift_range=1)
    >>> addressing.param_size(memory)  # W + beta + g + S + gamma
    11
    >>> previous = addressing.initial_state(3, 2, memory, torch.device("cpu"), torch.float32)
    >>> weights, state = addressing(torch.randn(3, 2, 11), memory.initial_state(3, "cpu", torch.float32), previous)
    >>> weights.shape
    torch.Size([3, 2, 7])
    """

    def __init__(self, shift_range: int = 1) -> None:
        super().__init__()
        if isinstance(shift_range, bool) or not isinstance(shift_range, int) or shift_range < 0:
            raise ConfigError(
                f"NTMAddressing: shift_range must be a non-negative integer, got {shift_range!r}; "
                "set it to 0 (no shift) or more."
            )
        self.shift_range = shift_range

    @property
    def shifts(self) -> int:
        """S = 2 * shift_range + 1."""
        return 2 * self.shift_range + 1

    def _check_slots(self, slots: int) -> None:
        if self.shifts > slots:
            raise ConfigError(
                f"NTMAddressing: shift_range={self.shift_range} needs {self.shifts} slots for its shifts but the "
                f"memory has N={slots}; set shift_range to at most {(slots - 1) // 2} or use more slots."
            )

    def _slots_of(self, memory: Memory) -> int:
        slots = getattr(memory, "slots", None)
        if not isinstance(slots, int):
            raise ConfigError(
                f"NTMAddressing needs a memory with a fixed number of slots (such as MatrixMemory), but the memory "
                f"is {type(memory).__name__}; use a matrix memory."
            )
        self._check_slots(slots)
        return slots

    def param_size(self, memory: Memory) -> int:
        self._slots_of(memory)
        return memory.word_size + 3 + self.shifts  # k, beta, g, s, gamma

    def initial_state(self, batch_size: int, heads: int, memory: Memory, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The weighting before the first step: one-hot on slot 0, ``[B, h, N]``."""
        previous = torch.zeros(batch_size, heads, self._slots_of(memory), device=device, dtype=dtype)
        previous[..., 0] = 1
        return previous

    def forward(self, params: Tensor, memory_state, state: Tensor) -> tuple[Tensor, Tensor]:  # noqa: ANN001
        """``params [B, h, W + S + 3]``, memory ``[B, N, W]``, ``state [B, h, N]`` -> ``(weights, weights)``."""
        memory = memory_state.memory  # M, [B, N, W]
        B, N, W = memory.shape
        S = self.shifts
        self._check_slots(N)
        check_shape(params, (B, "h", W + S + 3), "NTMAddressing params", "each head needs W + 2 * shift_range + 4 numbers")
        check_shape(state, (B, params.shape[1], N), "NTMAddressing state", "it is the previous weighting [B, h, N]")
        weights = _NTMAddressingFunction.apply(params, memory, state, S)  # eq. 5-9, see the function's docstring
        mask = slot_mask(memory_state)
        if mask is not None:  # slots not in use get no weight: the shift's spill onto them is removed, the rest renormalised
            weights = weights * mask.unsqueeze(1).to(weights.dtype)  # [B, h, N] * [B, 1, N]
            weights = weights / weights.sum(-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
        return weights, weights
