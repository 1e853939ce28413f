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
from mannkit.core.interfaces import Addressing, Memory
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.nn.addressing import content_weights

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
    index = shift_index(weights.shape[-1], S, weights.device)  # [S, N]
    moved = weights[..., index]  # w(i - d mod N) for each offset d: [B, h, N] -> [B, h, S, N]
    return torch.einsum("bhsn,bhs->bhn", moved, shift)  # w~(i) = sum_d s(d) w(i - d)


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
        keys = params[..., :W]  # k, [B, h, W]
        beta = F.softplus(params[..., W])  # key strength, [B, h]
        gate = torch.sigmoid(params[..., W + 1])  # g, [B, h]
        shift = torch.softmax(params[..., W + 2 : W + 2 + S], dim=-1)  # s, [B, h, S]
        gamma = 1 + F.softplus(params[..., -1])  # gamma >= 1, [B, h]

        content = content_weights(keys, beta, memory)  # w_c, eq. 5
        gated = interpolate(content, state, gate)  # w_g, eq. 7
        shifted = circular_shift(gated, shift)  # w~, eq. 8
        weights = sharpen(shifted, gamma)  # w_t, eq. 9
        return weights, weights
