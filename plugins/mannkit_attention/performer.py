"""Performer attention (Choromanski et al. 2021, FAVOR+) as an addressing: softmax attention from random features.

Shape letters: B batch, h heads of one bank, N memory slots, W word size, m random features.

Positive random features ``phi(x) = exp(omega x - |x|^2 / 2) / sqrt(m)`` (omega ``[m, W]``,
orthogonal Gaussian rows) give ``E[phi(x) . phi(y)] = exp(x . y)``; with x and y the query and a
key scaled by ``W^(-1/4)`` this is the softmax kernel ``exp(q . k / sqrt(W))``, so
``w_n = phi(q) . phi(k_n) / sum_n' phi(q) . phi(k_n')`` estimates softmax attention and tends to
it as m grows. Every phi is positive, so w is a weighting.

Cost. The weights over N are formed explicitly (the Addressing contract returns them): the key
features cost O(N m W) and the weights O(h N m), more than softmax attention's O(h N W) when
m >= W. Performer's saving is the linear-attention trick, which never forms the weights: a read
``r = sum_n w_n v_n = phi(q)^T (phi(K)^T V) / phi(q)^T (phi(K)^T 1)`` costs O(m W) per query once
``phi(K)^T V`` (``[m, W]``, O(N m W)) is built, so it pays when many queries read the same memory.

>>> import torch
>>> omega = torch.zeros(4, 3)                       # m=4 features of W=3 numbers, all zero:
>>> positive_random_features(torch.zeros(1, 2, 3), omega)  # phi(0) = exp(0) / sqrt(4)
tensor([[[0.5000, 0.5000, 0.5000, 0.5000],
         [0.5000, 0.5000, 0.5000, 0.5000]]])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Addressing, Memory, slot_mask
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit_attention._checks import check_bool, check_bound, check_positive_int

__all__ = [
    "PerformerAddressing",
    "orthogonal_gaussian",
    "favor_log_features",
    "positive_random_features",
    "performer_weights",
]


def orthogonal_gaussian(
    features: int, dim: int, *, batch: int | None = None, generator: torch.Generator | None = None,
    device: torch.device | None = None, dtype: torch.dtype | None = None,
) -> Tensor:
    """omega: m rows of W numbers, orthogonal within each block of W rows, each row as long as a Gaussian vector.

    Blocks of W rows are the rows of Haar-random orthogonal matrices (QR of a Gaussian matrix, signs
    fixed by R's diagonal); each row is then scaled by the norm of an independent W-dimensional
    standard Gaussian vector, so every row is marginally ``N(0, I_W)`` (FAVOR+'s orthogonal
    random features, which lower the estimator's variance).

    Args:
        features: m.
        dim: W.
        batch: B for an independent omega per example, or None for one.
        generator: draws from it (torch's global generator if None).

    Returns:
        ``[m, W]``, or ``[B, m, W]`` with ``batch``.
    """
    lead = () if batch is None else (batch,)
    blocks = -(-features // dim)  # ceil(m / W)
    kw = {"generator": generator, "device": device, "dtype": dtype}
    gaussian = torch.randn(*lead, blocks, dim, dim, **kw)  # [(B,) blocks, W, W]
    q, r = torch.linalg.qr(gaussian)  # orthonormal columns
    q = q * torch.sgn(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)  # column signs from diag(R): Haar-distributed
    rows = q.mT.reshape(*lead, blocks * dim, dim)[..., :features, :]  # [(B,) blocks, W, W] -> [(B,) m, W]
    lengths = torch.randn(*lead, features, dim, **kw).norm(dim=-1, keepdim=True)  # chi_W lengths: [(B,) m, 1]
    return rows * lengths


def favor_log_features(x: Tensor, omega: Tensor) -> Tensor:
    """``log(sqrt(m) phi(x)) = omega x - |x|^2 / 2``.

    Args:
        x: ``[B, L, W]`` (L queries or N keys).
        omega: ``[m, W]`` or ``[B, m, W]``.

    Returns:
        ``[B, L, m]``.
    """
    projected = torch.matmul(x, omega.mT)  # omega x: [B, L, W] @ [(B,) W, m] -> [B, L, m]
    return projected - 0.5 * (x * x).sum(-1, keepdim=True)  # - |x|^2 / 2, [B, L, 1]


def positive_random_features(x: Tensor, omega: Tensor) -> Tensor:
    """FAVOR+'s ``phi(x) = exp(omega x - |x|^2 / 2) / sqrt(m)`` (unstabilised; see :func:`performer_weights`).

    Args:
        x: ``[B, L, W]``.
        omega: ``[m, W]`` or ``[B, m, W]``.

    Returns:
        ``[B, L, m]``, positive; ``phi(x) . phi(y)`` is an unbiased estimate of ``exp(x . y)``
        when the rows of omega are ``N(0, I_W)``.
    """
    return torch.exp(favor_log_features(x, omega)) / math.sqrt(omega.shape[-2])


def performer_weights(queries: Tensor, keys: Tensor, omega: Tensor, mask: Tensor | None) -> Tensor:
    """``w_n = phi(q) . phi(k_n) / sum_n' phi(q) . phi(k_n')`` with q, k scaled by ``W^(-1/4)``.

    Stabilised in log space: each query's features are divided by their largest value and all
    keys' features of one example by their largest value (over slots in use and features); both
    factors, and phi's ``1 / sqrt(m)``, are common to every n and cancel in the ratio. If every
    product still underflows, the weighting is uniform over the slots in use.

    Args:
        queries: q, ``[B, h, W]``.
        keys: K, ``[B, N, W]``.
        omega: ``[m, W]`` or ``[B, m, W]``.
        mask: bool ``[B, N]`` or None; masked slots get exactly zero weight.

    Returns:
        ``[B, h, N]``, summing to 1 over N (all zeros for an example with no slot in use).
    """
    scale = queries.shape[-1] ** -0.25  # W^(-1/4) on both sides gives softmax's 1 / sqrt(W)
    omega = omega * scale  # omega (s x) = (s omega) x: scale the small [m, W] rather than the keys
    square = 0.5 * scale * scale  # |s x|^2 / 2 = s^2 |x|^2 / 2
    log_q = torch.matmul(queries, omega.mT) - square * (queries * queries).sum(-1, keepdim=True)  # [B, h, m]
    projected = torch.matmul(keys, omega.mT)  # omega (s k_n): [B, N, W] @ [(B,) W, m] -> [B, N, m]
    offset = square * (keys * keys).sum(-1, keepdim=True)  # |s k_n|^2 / 2: [B, N, 1]
    if mask is not None:
        offset = offset.masked_fill(~mask.unsqueeze(-1), float("inf"))  # log phi(k_n) = -inf for masked n
    finite_min = torch.finfo(projected.dtype).min
    q_peak = log_q.amax(-1, keepdim=True).detach()  # per query: [B, h, 1]
    k_peak = (projected.detach().amax(-1, keepdim=True) - offset.detach()).amax(-2, keepdim=True)  # per example: [B, 1, 1]
    phi_q = torch.exp(log_q - q_peak)  # sqrt(m) phi(q) / exp(q_peak)
    phi_k = torch.exp(projected - (offset + k_peak.clamp_min(finite_min)))  # sqrt(m) phi(k_n) / exp(k_peak), 0 if masked
    products = torch.bmm(phi_q, phi_k.mT)  # phi(q) . phi(k_n): [B, h, m] @ [B, m, N] -> [B, h, N]
    total = products.sum(-1, keepdim=True)  # [B, h, 1]
    uniform = torch.ones_like(products[:, :1]) if mask is None else mask.unsqueeze(1).to(products.dtype)  # [B, 1, N]
    uniform = uniform / uniform.sum(-1, keepdim=True).clamp_min(1)
    safe = total > 0
    return torch.where(safe, products / torch.where(safe, total, torch.ones_like(total)), uniform)


@register
class PerformerAddressing(Addressing):
    """FAVOR+ estimate of scaled dot-product attention ``softmax_n(q . M[n] / sqrt(W))`` with m random features.

    P = W: each head's raw parameters are its query. ``bind`` draws omega ``[m, W]`` from a
    generator seeded with ``seed`` (so builds agree whatever torch's global seed) and keeps it as
    a buffer (saved in the state_dict). No learned parameters. See the module docstring for the
    cost of explicit weights and the linear-attention trick.

    Args:
        features: m, the number of random features; the estimate tends to softmax attention as m
            grows (error roughly proportional to ``1 / sqrt(m)``).
        redraw: while training, draw a fresh omega for every sequence and example (in
            ``initial_state``, from torch's global generator, kept in the addressing state
            ``[B, m, W]``), as the paper's redrawing of features; in eval mode, and when false,
            the fixed omega drawn from ``seed`` is used.
        seed: the seed of the fixed omega.
    """

    def __init__(self, features: int = 64, redraw: bool = False, seed: int = 0) -> None:
        super().__init__()
        check_positive_int("PerformerAddressing", "features", features)
        check_bool("PerformerAddressing", "redraw", redraw)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"PerformerAddressing: seed must be a non-negative integer, got {seed!r}; set seed to 0 or more.")
        self.features, self.redraw, self.seed = features, redraw, seed

    def bind(self, memory: Memory) -> None:
        W = memory.word_size
        if not self._bind_once(word_size=W):
            return
        generator = torch.Generator().manual_seed(self.seed)
        omega = orthogonal_gaussian(self.features, W, generator=generator, dtype=torch.float64)
        self.register_buffer("omega", omega.to(torch.get_default_dtype()))  # [m, W]

    def param_size(self, memory: Memory) -> int:
        return memory.word_size

    def initial_state(self, batch_size: int, heads: int, memory: Memory, device: torch.device, dtype: torch.dtype):  # noqa: ANN201
        """``()``, or with ``redraw`` while training a fresh omega per example, ``[B, m, W]``."""
        if not (self.redraw and self.training):
            return ()
        return orthogonal_gaussian(self.features, memory.word_size, batch=batch_size, device=device, dtype=dtype)

    def forward(self, params: Tensor, memory_state, state):  # noqa: ANN001
        """``params [B, h, W]`` (the queries), keys ``[B, N, W]`` -> ``(weights [B, h, N], state)``."""
        check_bound("PerformerAddressing", self)
        keys = memory_state.memory  # K, [B, N, W]
        B, _, W = keys.shape
        if W != self.omega.shape[-1]:
            raise ConfigError(
                f"PerformerAddressing was built for words of W={self.omega.shape[-1]} but the memory has W={W}; "
                "use a fresh addressing for this memory."
            )
        check_shape(params, (B, "h", W), "PerformerAddressing params", "each head's query is W numbers")
        omega = state if isinstance(state, Tensor) else self.omega  # [B, m, W] (redrawn) or [m, W]
        return performer_weights(params, keys, omega, slot_mask(memory_state)), state
