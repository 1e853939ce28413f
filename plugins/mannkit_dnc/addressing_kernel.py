"""The DNC's write and read addressing as C++ loops, forward and backward (CPU).

Shape letters: B batch, N memory slots, W word size, R read heads.

:func:`mannkit_dnc.fused.write_addressing` and :func:`mannkit_dnc.fused.read_addressing` are each
one autograd node, but their PyTorch forms are still 20-40 tensor calls on ``[B, N]`` and
``[B, R, N]`` tensors per step, each paying a call's overhead on a few thousand numbers: at N = 256
they were about 40 % of a DNC training step (issue 16). Here each batch element is one pass of plain
loops, with the same equations (see :mod:`mannkit_dnc.fused` and :mod:`mannkit_dnc.mechanisms`):

write, for one batch element::

    psi[n]  = prod_h (1 - f[h] w^r_{t-1}[h, n]);   u_t = (u + w^w - u w^w) psi
    phi     = stable ascending sort of eps + (1 - eps) u_t  (sorted values s)
    a[phi_j] = (1 - s_j) prod_{i<j} s_i
    c^w     = softmax(beta K(k, M_{t-1}))          K: cosine, eps 1e-6 under each norm's root
    w^w     = g^w (g^a a + (1 - g^a) c^w)

read, for one batch element and head h::

    c^r_h   = softmax(beta_h K(k_h, M_t));   w^r_h = pi_b b_h + pi_c c^r_h + pi_f f_h;   r_h = w^r_h M_t

and the write between them, ``M_t = M_{t-1} (1 - w^w e^T) + w^w v^T`` (one pass over M forward, one backward).

The backwards are the hand-written ones of :mod:`mannkit_dnc.fused` (the allocation's through the
suffix sums, which needs ``eps > 0``: with ``eps = 0`` the PyTorch form runs). Batch elements run in
parallel (``at::parallel_for``). Built like :mod:`mannkit_dnc.link_kernel` (same cache, same
fallback: one warning, then the PyTorch form); ``MANNKIT_DNC_ADDRESSING_KERNEL=0`` turns it off.
"""

from __future__ import annotations

from types import ModuleType

from mannkit_dnc import link_kernel
from mannkit_dnc.read_write_kernel import READ_WRITE_SOURCE

__all__ = ["ops", "SOURCE"]

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

namespace {

// a 32-byte vector of T (GCC and Clang vector extensions), unaligned loads
template <typename T>
struct Lanes { typedef T vec __attribute__((vector_size(32))); };
template <typename T>
using vec_t = typename Lanes<T>::vec;
template <typename T>
inline vec_t<T> ld(const T* p) { vec_t<T> v; std::memcpy(&v, p, sizeof v); return v; }

// a . b over W entries, in vectors (a plain loop's float reduction is not vectorised without -ffast-math)
template <typename T>
inline T dot(const T* a, const T* b, int64_t W) {
  constexpr int64_t V = 32 / sizeof(T);
  vec_t<T> acc0{}, acc1{};
  int64_t k = 0;
  for (; k + 2 * V <= W; k += 2 * V) { acc0 += ld(a + k) * ld(b + k); acc1 += ld(a + k + V) * ld(b + k + V); }
  for (; k + V <= W; k += V) acc0 += ld(a + k) * ld(b + k);
  acc0 += acc1;
  T s = 0;
  for (int64_t i = 0; i < V; ++i) s += acc0[i];
  for (; k < W; ++k) s += a[k] * b[k];
  return s;
}

inline void st_(float* p, Lanes<float>::vec v) { std::memcpy(p, &v, sizeof v); }
inline void st_(double* p, Lanes<double>::vec v) { std::memcpy(p, &v, sizeof v); }

// y += a x over W entries, in vectors
template <typename T>
inline void axpy(T a, const T* x, T* y, int64_t W) {
  constexpr int64_t V = 32 / sizeof(T);
  int64_t k = 0;
  for (; k + V <= W; k += V) st_(y + k, ld(y + k) + a * ld(x + k));
  for (; k < W; ++k) y[k] += a * x[k];
}

// the scores of one key against every row: sims[n] = K(k, M[n]), scores[n] = beta sims[n] (softmaxed later, by
// ATen's vectorised softmax over the whole batch); mem_sq[n] = |M[n]|^2 + eps when fill_mem_sq; returns |k|^2 + eps
template <typename T>
T scores_one(const T* M, const T* k, T beta, int64_t N, int64_t W, bool fill_mem_sq, T* mem_sq, T* sims, T* scores) {
  const T eps = T(1e-6);
  const T key_sq = dot(k, k, W) + eps;
  const T key_inv = T(1) / std::sqrt(key_sq);
  for (int64_t n = 0; n < N; ++n) {
    const T* row = M + n * W;
    if (fill_mem_sq) mem_sq[n] = dot(row, row, W) + eps;
    sims[n] = dot(k, row, W) * (key_inv * (T(1) / std::sqrt(mem_sq[n])));
    scores[n] = beta * sims[n];
  }
  return key_sq;
}

// the gradient through c = softmax(beta K(k, M)) for dc: adds to dk [W] and dM [N, W]; returns d beta
template <typename T>
T content_one_backward(const T* M, const T* k, T beta, T key_sq, const T* mem_sq, const T* sims, const T* c,
                       const T* dc, int64_t N, int64_t W, T* dk, T* dM) {
  T dc_dot_c = 0;
  for (int64_t n = 0; n < N; ++n) dc_dot_c += dc[n] * c[n];
  const T key_inv = T(1) / std::sqrt(key_sq);
  T d_beta = 0, weighted_sum = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T ds = c[n] * (dc[n] - dc_dot_c);  // softmax backward
    d_beta += ds * sims[n];
    const T g = ds * beta;  // dL/dK[n]
    const T scaled = g * (key_inv * (T(1) / std::sqrt(mem_sq[n])));  // dL/d(k . M[n])
    const T weighted = g * sims[n];
    weighted_sum += weighted;
    const T* row = M + n * W;
    T* drow = dM + n * W;
    axpy(scaled, row, dk, W);  // dk += G[n] M[n]
    axpy(scaled, k, drow, W);  // dM[n] += G[n] k - M[n] weighted[n] / |M[n]|^2
    axpy(-weighted / mem_sq[n], row, drow, W);
  }
  const T key_coef = weighted_sum / key_sq;
  axpy(-key_coef, k, dk, W);
  return d_beta;
}

template <typename T>
inline bool before_in_sort(T a, T b) { return a < b || (!std::isnan(a) && std::isnan(b)); }  // NaN last, as torch.sort

}  // namespace

// memory [B, N, W], usage/prev_write [B, N], prev_read [B, R, N], key [B, W], strength/alloc_gate/write_gate [B],
// free [B, R]. Returns new_usage, weights, allocation [B, N] and what the backward needs: order (int64),
// sorted usage, prod_{i<j} of it, sims, content, mem_sq [B, N], key_sq [B]
std::vector<torch::Tensor> write_forward(torch::Tensor memory, torch::Tensor usage, torch::Tensor prev_write,
                                         torch::Tensor prev_read, torch::Tensor key, torch::Tensor strength,
                                         torch::Tensor free, torch::Tensor alloc_gate, torch::Tensor write_gate, double eps_) {
  const int64_t B = memory.size(0), N = memory.size(1), W = memory.size(2), R = prev_read.size(1);
  auto new_usage = torch::empty_like(usage), weights = torch::empty_like(usage), allocation = torch::empty_like(usage);
  auto order = torch::empty({B, N}, usage.options().dtype(torch::kLong));
  auto sorted = torch::empty_like(usage), before = torch::empty_like(usage), sims = torch::empty_like(usage);
  auto content = torch::empty_like(usage), mem_sq = torch::empty_like(usage), key_sq = torch::empty({B}, usage.options());
  AT_DISPATCH_FLOATING_TYPES(memory.scalar_type(), "write_forward", [&] {
    using T = scalar_t;
    const T eps = T(eps_);
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<T> floored(N);
      for (int64_t b = begin; b < end; ++b) {
        const T *u = usage.data_ptr<T>() + b * N, *ww = prev_write.data_ptr<T>() + b * N;
        const T *wr = prev_read.data_ptr<T>() + b * R * N, *f = free.data_ptr<T>() + b * R;
        T *nu = new_usage.data_ptr<T>() + b * N, *a = allocation.data_ptr<T>() + b * N;
        int64_t* phi = order.data_ptr<int64_t>() + b * N;
        T *s = sorted.data_ptr<T>() + b * N, *pre = before.data_ptr<T>() + b * N;
        for (int64_t n = 0; n < N; ++n) {
          T psi = 1;
          for (int64_t h = 0; h < R; ++h) psi *= T(1) - f[h] * wr[h * N + n];
          nu[n] = (u[n] + ww[n] - u[n] * ww[n]) * psi;
          floored[n] = nu[n] + eps * (T(1) - nu[n]);
        }
        std::iota(phi, phi + N, int64_t(0));
        std::stable_sort(phi, phi + N, [&](int64_t i, int64_t j) { return before_in_sort(floored[i], floored[j]); });
        T product = 1;
        for (int64_t j = 0; j < N; ++j) {
          s[j] = floored[phi[j]];
          pre[j] = product;
          a[phi[j]] = product - s[j] * product;
          product *= s[j];
        }
        key_sq.data_ptr<T>()[b] = scores_one<T>(memory.data_ptr<T>() + b * N * W, key.data_ptr<T>() + b * W,
                                                strength.data_ptr<T>()[b], N, W, true, mem_sq.data_ptr<T>() + b * N,
                                                sims.data_ptr<T>() + b * N, content.data_ptr<T>() + b * N);
      }
    });
    content = at::_softmax(content, -1, false);  // c^w = softmax(beta K)
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const T *a = allocation.data_ptr<T>() + b * N, *c = content.data_ptr<T>() + b * N;
        const T ga = alloc_gate.data_ptr<T>()[b], gw = write_gate.data_ptr<T>()[b];
        T* w = weights.data_ptr<T>() + b * N;
        for (int64_t n = 0; n < N; ++n) w[n] = gw * (c[n] + ga * (a[n] - c[n]));
      }
    });
  });
  return {new_usage, weights, allocation, order, sorted, before, sims, content, mem_sq, key_sq};
}

// the gradients of write_forward for d_usage and d_weights [B, N] (has_weights false: d_weights is all zeros);
// returns d_memory [B, N, W], d_usage, d_prev_write [B, N], d_prev_read [B, R, N], d_key [B, W],
// d_strength, d_alloc_gate, d_write_gate [B], d_free [B, R]
std::vector<torch::Tensor> write_backward(torch::Tensor d_usage, torch::Tensor d_weights, bool has_weights,
                                          torch::Tensor memory, torch::Tensor usage, torch::Tensor prev_write,
                                          torch::Tensor prev_read, torch::Tensor key, torch::Tensor strength,
                                          torch::Tensor free, torch::Tensor alloc_gate, torch::Tensor write_gate,
                                          torch::Tensor allocation, torch::Tensor order, torch::Tensor sorted,
                                          torch::Tensor before, torch::Tensor sims, torch::Tensor content,
                                          torch::Tensor mem_sq, torch::Tensor key_sq, double eps_) {
  const int64_t B = memory.size(0), N = memory.size(1), W = memory.size(2), R = prev_read.size(1);
  auto d_memory = torch::zeros_like(memory), d_key = torch::zeros_like(key);
  auto d_u = torch::empty_like(usage), d_ww = torch::empty_like(usage), d_wr = torch::empty_like(prev_read);
  auto d_free = torch::empty_like(free), d_strength = torch::zeros_like(strength);
  auto d_ga = torch::zeros_like(alloc_gate), d_gw = torch::zeros_like(write_gate);
  AT_DISPATCH_FLOATING_TYPES(memory.scalar_type(), "write_backward", [&] {
    using T = scalar_t;
    const T eps = T(eps_);
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<T> dnu(N), dc(N), tail(N), prefix(R + 1), suffix(R + 1);
      for (int64_t b = begin; b < end; ++b) {
        const T *u = usage.data_ptr<T>() + b * N, *ww = prev_write.data_ptr<T>() + b * N;
        const T *wr = prev_read.data_ptr<T>() + b * R * N, *f = free.data_ptr<T>() + b * R;
        std::copy(d_usage.data_ptr<T>() + b * N, d_usage.data_ptr<T>() + (b + 1) * N, dnu.begin());
        if (has_weights) {
          const T *dw = d_weights.data_ptr<T>() + b * N, *a = allocation.data_ptr<T>() + b * N;
          const T *c = content.data_ptr<T>() + b * N;
          const T ga = alloc_gate.data_ptr<T>()[b], gw = write_gate.data_ptr<T>()[b];
          T dgw = 0, dga = 0;
          std::vector<T>& da = tail;  // d a in slot order, then reused for the suffix sums
          for (int64_t n = 0; n < N; ++n) {
            const T mixed = c[n] + ga * (a[n] - c[n]);
            dgw += dw[n] * mixed;
            const T dmix = dw[n] * gw;
            dga += dmix * (a[n] - c[n]);
            da[n] = dmix * ga;
            dc[n] = dmix - da[n];
          }
          d_gw.data_ptr<T>()[b] = dgw;
          d_ga.data_ptr<T>()[b] = dga;
          d_strength.data_ptr<T>()[b] = content_one_backward<T>(
              memory.data_ptr<T>() + b * N * W, key.data_ptr<T>() + b * W, strength.data_ptr<T>()[b],
              key_sq.data_ptr<T>()[b], mem_sq.data_ptr<T>() + b * N, sims.data_ptr<T>() + b * N, c, dc.data(), N, W,
              d_key.data_ptr<T>() + b * W, d_memory.data_ptr<T>() + b * N * W);
          // a[phi_j] = (1 - s_j) prod_{i<j} s_i:  ds_k = sum_{j>k} da[phi_j] a[phi_j] / s_k - da[phi_k] prod_{i<k} s_i
          const int64_t* phi = order.data_ptr<int64_t>() + b * N;
          const T *s = sorted.data_ptr<T>() + b * N, *pre = before.data_ptr<T>() + b * N;
          std::vector<T> ds(N);
          T later = 0;
          for (int64_t k = N - 1; k >= 0; --k) {
            const T g = da[phi[k]];
            ds[k] = later / s[k] - g * pre[k];
            later += g * (pre[k] - s[k] * pre[k]);
          }
          for (int64_t k = 0; k < N; ++k) dnu[phi[k]] += ds[k] * (T(1) - eps);
        }
        T* du = d_u.data_ptr<T>() + b * N;
        T* dww = d_ww.data_ptr<T>() + b * N;
        T* dwr = d_wr.data_ptr<T>() + b * R * N;
        T* df = d_free.data_ptr<T>() + b * R;
        for (int64_t h = 0; h < R; ++h) df[h] = 0;
        for (int64_t n = 0; n < N; ++n) {
          prefix[0] = 1;  // prefix[h] = prod_{h' < h} keep, suffix[h] = prod_{h' >= h} keep
          for (int64_t h = 0; h < R; ++h) prefix[h + 1] = prefix[h] * (T(1) - f[h] * wr[h * N + n]);
          suffix[R] = 1;
          for (int64_t h = R - 1; h >= 0; --h) suffix[h] = suffix[h + 1] * (T(1) - f[h] * wr[h * N + n]);
          const T psi = prefix[R], kept = u[n] + ww[n] - u[n] * ww[n];
          const T d_kept = dnu[n] * psi;
          du[n] = d_kept - d_kept * ww[n];
          dww[n] = d_kept - d_kept * u[n];
          const T base = dnu[n] * kept;
          for (int64_t h = 0; h < R; ++h) {
            const T d_keep = base * prefix[h] * suffix[h + 1];
            df[h] -= d_keep * wr[h * N + n];
            dwr[h * N + n] = -d_keep * f[h];
          }
        }
      }
    });
  });
  return {d_memory, d_u, d_ww, d_wr, d_key, d_strength, d_free, d_ga, d_gw};
}

"""

SOURCE = SOURCE + READ_WRITE_SOURCE  # one extension: the read addressing and erase/add use the helpers above

_state: dict[str, ModuleType | None] = {}


def ops() -> ModuleType | None:
    """The compiled write/read addressing and erase/add functions, built on first call; None where unavailable.

    None when ``MANNKIT_DNC_ADDRESSING_KERNEL=0`` or when the build fails (one warning, naming the
    error; the DNC then runs the PyTorch form, which gives the same numbers, more slowly).
    """
    functions = ["write_forward", "write_backward", "read_forward", "read_backward", "erase_add_forward", "erase_add_backward"]
    return link_kernel.load_once(
        _state, "MANNKIT_DNC_ADDRESSING_KERNEL",
        lambda: link_kernel.build_inline(
            "mannkit_dnc_addressing", SOURCE, functions, "the DNC's C++ addressing kernel", "MANNKIT_DNC_ADDRESSING_KERNEL=0"
        ),
        "the C++ addressing kernel", "its PyTorch addressing instead (same results, slower)",
    )  # fmt: skip
