"""The temporal-link step as one C++ loop over the link matrix, forward and backward (CPU).

Shape letters: B batch, N memory slots, R read heads.

The PyTorch form of the link update (:class:`mannkit_dnc.fused_link._TemporalStep`) makes several
passes over ``[B, N, N]`` tensors per step (a lerp, an addcmul, two thin ``bmm`` for f and b) and
more in the backward (the gradient G, the products with ``L_{t-1}``, their row and column sums, two
more thin ``bmm``). At N = 256 these passes were most of a DNC training step (issue 16). Here each
row of the link is visited once, and everything that row contributes is done while it is in L1:

forward, row i of batch element b::

    L_t[i, j] = (1 - w[i] - w[j]) L_{t-1}[i, j] + w[i] p[j],   L_t[i, i] = 0
    f[h, i]   = sum_j L_t[i, j] r[h, j]                           (f = L_t w^r)
    b[h, j]  += L_t[i, j] r[h, i]                                 (b = L_t^T w^r)

backward, row i, with ``G = dL_t + df^T r + r^T db`` (diagonal dropped)::

    G[i, j]         = dL_t[i, j] + sum_h (df[h, i] r[h, j] + r[h, i] db[h, j]),   G[i, i] = 0
    dw[i]          += sum_j G[i, j] (p[j] - L_{t-1}[i, j])
    dw[j]          -= G[i, j] L_{t-1}[i, j]
    dp[j]          += w[i] G[i, j]
    dr[h, j]       += df[h, i] L_t[i, j];   dr[h, i] += sum_j db[h, j] L_t[i, j]
    dL_{t-1}[i, j]  = G[i, j] (1 - w[i] - w[j])

each row in one pass over j, in 32-byte vectors (8 floats or 4 doubles) with the diagonal column
split off and the loop over the R heads unrolled (R <= :data:`MAX_HEADS`; more heads use the
PyTorch form), where the backward recomputes the row of ``L_t`` from ``L_{t-1}`` instead of reading it. Main
memory sees one read of ``L_{t-1}`` and one write of ``L_t`` forward, and one read each of ``dL_t``
and ``L_{t-1}`` and one write of ``dL_{t-1}`` backward. Batch elements run in parallel
(``at::parallel_for``). ``dL_{t-1}`` may be written over ``dL_t`` (each entry is read before it is
written).

The extension is compiled on first use with :func:`torch.utils.cpp_extension.load_inline` and
cached under ``$MANNKIT_CACHE_DIR/torch_extensions`` (else ``$XDG_CACHE_HOME/mannkit`` or
``~/.cache/mannkit``), one build per CPU type. If it cannot be built, :func:`ops` warns once and
returns None, and the DNC runs the PyTorch form. ``MANNKIT_DNC_LINK_KERNEL=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Callable

__all__ = ["ops", "build_directory", "build_inline", "load_once", "SOURCE", "MAX_HEADS"]

#: the row loops are unrolled over the read heads, for R = 0 ... MAX_HEADS (more heads: the PyTorch form)
MAX_HEADS = 8

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cstring>
#include <vector>

namespace {

// a 32-byte vector of T (8 floats or 4 doubles; GCC and Clang vector extensions), unaligned loads and stores
template <typename T>
struct Lanes {
  typedef T vec __attribute__((vector_size(32)));
  static constexpr int64_t n = 32 / sizeof(T);
};
template <typename T>
using vec_t = typename Lanes<T>::vec;
template <typename T>
inline vec_t<T> ld(const T* p) { vec_t<T> v; std::memcpy(&v, p, sizeof v); return v; }
template <typename T>
inline void st(T* p, vec_t<T> v) { std::memcpy(p, &v, sizeof v); }
template <typename T>
inline T hsum(vec_t<T> v) { T s = 0; for (int64_t k = 0; k < Lanes<T>::n; ++k) s += v[k]; return s; }

// One row i of the forward: L_t[i, :] into out, f[:, i], and b += L_t[i, :]^T r[:, i]
template <typename T, int R>
struct ForwardRow {
  static constexpr int RR = R > 0 ? R : 1;
  const T *l, *w, *p, *r;
  T *o, *b;
  int64_t N;
  T wi, keep, c[RR];
  vec_t<T> acc[RR];
  T tail[RR];

  inline void run(int64_t j0, int64_t j1) {
    constexpr int64_t V = Lanes<T>::n;
    int64_t j = j0;
    for (; j + V <= j1; j += V) {
      const vec_t<T> v = (keep - ld(w + j)) * ld(l + j) + wi * ld(p + j);  // L_t[i, j]
      st(o + j, v);
      for (int h = 0; h < R; ++h) {
        acc[h] += v * ld(r + h * N + j);  // f[h, i] += L_t[i, j] r[h, j]
        st(b + h * N + j, ld(b + h * N + j) + c[h] * v);  // b[h, j] += L_t[i, j] r[h, i]
      }
    }
    for (; j < j1; ++j) {
      const T v = (keep - w[j]) * l[j] + wi * p[j];
      o[j] = v;
      for (int h = 0; h < R; ++h) {
        tail[h] += v * r[h * N + j];
        b[h * N + j] += c[h] * v;
      }
    }
  }
};

// One row i of the backward: G[i, :] and what it contributes (see the module docstring)
template <typename T, int R>
struct BackwardRow {
  static constexpr int RR = R > 0 ? R : 1;
  const T *dl, *l, *w, *p, *r, *db;
  T *out, *dw, *dp, *dr;
  int64_t N;
  T wi, keep, a[RR], c[RR];
  vec_t<T> own, racc[RR];
  T own_tail, rtail[RR];

  inline void run(int64_t j0, int64_t j1) {
    constexpr int64_t V = Lanes<T>::n;
    int64_t j = j0;
    for (; j + V <= j1; j += V) {
      vec_t<T> g = ld(dl + j);  // G[i, j] = dL_t[i, j] + sum_h df[h, i] r[h, j] + r[h, i] db[h, j]
      for (int h = 0; h < R; ++h) g += a[h] * ld(r + h * N + j) + c[h] * ld(db + h * N + j);
      const vec_t<T> lv = ld(l + j), wv = ld(w + j), pv = ld(p + j);
      own += g * (pv - lv);  // dw[i] += G[i, j] (p[j] - L[i, j])
      st(dw + j, ld(dw + j) - g * lv);  // dw[j] -= G[i, j] L[i, j]
      st(dp + j, ld(dp + j) + wi * g);  // dp[j] += w[i] G[i, j]
      const vec_t<T> lt = (keep - wv) * lv + wi * pv;  // L_t[i, j]
      for (int h = 0; h < R; ++h) {
        st(dr + h * N + j, ld(dr + h * N + j) + a[h] * lt);  // dr[h, j] += df[h, i] L_t[i, j]
        racc[h] += ld(db + h * N + j) * lt;  // dr[h, i] += db[h, j] L_t[i, j]
      }
      st(out + j, g * (keep - wv));  // dL_{t-1}[i, j]
    }
    for (; j < j1; ++j) {
      T g = dl[j];
      for (int h = 0; h < R; ++h) g += a[h] * r[h * N + j] + c[h] * db[h * N + j];
      const T lv = l[j], wv = w[j], pv = p[j];
      own_tail += g * (pv - lv);
      dw[j] -= g * lv;
      dp[j] += wi * g;
      const T lt = (keep - wv) * lv + wi * pv;
      for (int h = 0; h < R; ++h) {
        dr[h * N + j] += a[h] * lt;
        rtail[h] += db[h * N + j] * lt;
      }
      out[j] = g * (keep - wv);
    }
  }
};
template <typename T, int R>
void forward_one(const T* link, int64_t link_stride, const T* w, const T* p, const T* r, int64_t N,
                 T* out, T* f, T* b) {
  std::fill(b, b + R * N, T(0));
  ForwardRow<T, R> row;
  row.w = w; row.p = p; row.r = r; row.b = b; row.N = N;
  for (int64_t i = 0; i < N; ++i) {
    row.l = link + i * link_stride;
    row.o = out + i * N;
    row.wi = w[i];
    row.keep = T(1) - w[i];
    for (int h = 0; h < R; ++h) { row.c[h] = r[h * N + i]; row.acc[h] = vec_t<T>{}; row.tail[h] = T(0); }
    row.run(0, i);
    row.o[i] = T(0);  // L_t[i, i] = 0
    row.run(i + 1, N);
    for (int h = 0; h < R; ++h) f[h * N + i] = hsum<T>(row.acc[h]) + row.tail[h];
  }
}

// strides: a row stride of 0 repeats one row (a zero row for an absent link or link gradient)
template <typename T, int R>
void backward_one(const T* d_link, int64_t dl_stride, const T* df, const T* db, const T* r, const T* w, const T* p,
                  const T* link, int64_t link_stride, int64_t N, T* d_link_prev, int64_t out_stride,
                  T* dw, T* dp, T* dr) {
  std::fill(dw, dw + N, T(0));
  std::fill(dp, dp + N, T(0));
  std::fill(dr, dr + R * N, T(0));
  BackwardRow<T, R> row;
  row.w = w; row.p = p; row.r = r; row.db = db; row.dw = dw; row.dp = dp; row.dr = dr; row.N = N;
  for (int64_t i = 0; i < N; ++i) {
    row.dl = d_link + i * dl_stride;
    row.l = link + i * link_stride;
    row.out = d_link_prev + i * out_stride;
    row.wi = w[i];
    row.keep = T(1) - w[i];
    row.own = vec_t<T>{};
    row.own_tail = T(0);
    for (int h = 0; h < R; ++h) {
      row.a[h] = df[h * N + i]; row.c[h] = r[h * N + i];
      row.racc[h] = vec_t<T>{}; row.rtail[h] = T(0);
    }
    row.run(0, i);
    row.out[i] = T(0);  // L_t[i, i] is fixed at 0: G[i, i] is dropped
    row.run(i + 1, N);
    dw[i] += hsum<T>(row.own) + row.own_tail;
    for (int h = 0; h < R; ++h) dr[h * N + i] += hsum<T>(row.racc[h]) + row.rtail[h];
  }
}

// calls fn.template operator()<R>() for the run-time R in 0 ... 8 (the row loops unroll over the heads)
template <typename F>
void with_heads(int64_t R, F&& fn) {
  switch (R) {
    case 0: return fn(std::integral_constant<int, 0>{});
    case 1: return fn(std::integral_constant<int, 1>{});
    case 2: return fn(std::integral_constant<int, 2>{});
    case 3: return fn(std::integral_constant<int, 3>{});
    case 4: return fn(std::integral_constant<int, 4>{});
    case 5: return fn(std::integral_constant<int, 5>{});
    case 6: return fn(std::integral_constant<int, 6>{});
    case 7: return fn(std::integral_constant<int, 7>{});
    case 8: return fn(std::integral_constant<int, 8>{});
    default: TORCH_CHECK(false, "link kernel: at most 8 read heads, got ", R);
  }
}

}  // namespace

// link [B, N, N] (an absent one, has_link false, is all zeros), write, precedence [B, N], read [B, R, N];
// fills out [B, N, N], forward and backward [B, R, N]
void link_forward(torch::Tensor link, bool has_link, torch::Tensor write, torch::Tensor precedence,
                  torch::Tensor read, torch::Tensor out, torch::Tensor forward, torch::Tensor backward) {
  const int64_t B = write.size(0), N = write.size(1), R = read.size(1);
  AT_DISPATCH_FLOATING_TYPES(write.scalar_type(), "link_forward", [&] {
    using T = scalar_t;
    with_heads(R, [&](auto heads) {
      at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
        std::vector<T> zeros(has_link ? 0 : N, T(0));  // the row of an absent L_{t-1}
        for (int64_t b = begin; b < end; ++b)
          forward_one<T, decltype(heads)::value>(
              has_link ? link.data_ptr<T>() + b * N * N : zeros.data(), has_link ? N : 0,
              write.data_ptr<T>() + b * N, precedence.data_ptr<T>() + b * N, read.data_ptr<T>() + b * R * N, N,
              out.data_ptr<T>() + b * N * N, forward.data_ptr<T>() + b * R * N, backward.data_ptr<T>() + b * R * N);
      });
    });
  });
}

// the gradients of link_forward: fills d_write, d_precedence [B, N], d_read [B, R, N] (if need_read) and
// d_link_prev [B, N, N] (if need_link; it may be d_link itself); an absent d_link or link is all zeros
void link_backward(torch::Tensor d_link, bool has_d_link, torch::Tensor d_forward, torch::Tensor d_backward,
                   torch::Tensor read, torch::Tensor write, torch::Tensor precedence, torch::Tensor link,
                   bool has_link, torch::Tensor d_link_prev, bool need_link, torch::Tensor d_write,
                   torch::Tensor d_precedence, torch::Tensor d_read, bool need_read) {
  const int64_t B = write.size(0), N = write.size(1), R = read.size(1);
  AT_DISPATCH_FLOATING_TYPES(write.scalar_type(), "link_backward", [&] {
    using T = scalar_t;
    with_heads(R, [&](auto heads) {
      at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
        // a zero row for an absent link or dL_t; a discarded row and [R, N] for outputs not needed
        std::vector<T> spare(2 * N + R * N, T(0));
        T* zeros = spare.data();
        T* discard = spare.data() + N;
        for (int64_t b = begin; b < end; ++b)
          backward_one<T, decltype(heads)::value>(
              has_d_link ? d_link.data_ptr<T>() + b * N * N : zeros, has_d_link ? N : 0,
              d_forward.data_ptr<T>() + b * R * N, d_backward.data_ptr<T>() + b * R * N,
              read.data_ptr<T>() + b * R * N, write.data_ptr<T>() + b * N, precedence.data_ptr<T>() + b * N,
              has_link ? link.data_ptr<T>() + b * N * N : zeros, has_link ? N : 0, N,
              need_link ? d_link_prev.data_ptr<T>() + b * N * N : discard, need_link ? N : 0,
              d_write.data_ptr<T>() + b * N, d_precedence.data_ptr<T>() + b * N,
              need_read ? d_read.data_ptr<T>() + b * R * N : discard + N);
      });
    });
  });
}
"""

_FLAGS = ["-O3", "-ffp-contract=fast"]
_state: dict[str, ModuleType | None] = {}


def _cpu_signature() -> str:
    """What the build depends on besides the source: the machine, its CPU's model and flags (``-march=native``)."""
    text = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features")):
                    text += line
                    if line.startswith(("flags", "Features")):
                        break
    except OSError:
        pass
    return text


def _native_flag() -> list[str]:
    """``-march=native`` on x86-64 and arm64 with gcc/clang (the link loops gain from AVX2/FMA)."""
    return ["-march=native"] if platform.machine() in ("x86_64", "AMD64", "aarch64", "arm64") else []


def build_directory() -> Path | None:
    """Where the compiled extension is cached: ``<mannkit cache>/torch_extensions`` (None: torch's default)."""
    root = os.environ.get("MANNKIT_CACHE_DIR", "")
    if root.lower() == "none":
        return None
    base = Path(root).expanduser() if root else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mannkit"
    return base / "torch_extensions"


def build_inline(prefix: str, source: str, functions: list[str], what: str, skip_hint: str) -> ModuleType:
    """Compile (or load from the cache) a C++ extension of ``source`` exporting ``functions``.

    Cached under :func:`build_directory` in ``<prefix>_<hash>``, the hash covering the source, the
    flags, the CPU (``-march=native``) and the torch version; ``what`` and ``skip_hint`` name it in the
    one line printed before the slow first build.
    """
    import torch
    from torch.utils.cpp_extension import load_inline

    flags = _FLAGS + _native_flag()
    key = hashlib.sha256("\0".join([source, *flags, _cpu_signature(), torch.__version__]).encode()).hexdigest()[:16]
    name = f"{prefix}_{key}"
    directory = build_directory()
    if directory is not None:
        directory = directory / name
        directory.mkdir(parents=True, exist_ok=True)
        if not (directory / f"{name}.so").exists():  # the one slow first use: say what the pause is
            print(f"mannkit_dnc: building {what} once (about a minute) into {directory}; "
                  f"{skip_hint} skips it.", file=sys.stderr, flush=True)
    return load_inline(
        name=name, cpp_sources=[source], functions=functions,
        extra_cflags=flags, build_directory=None if directory is None else str(directory), verbose=False,
    )  # fmt: skip


def _build() -> ModuleType:
    return build_inline("mannkit_dnc_link", SOURCE, ["link_forward", "link_backward"], "the DNC's C++ link kernel", "MANNKIT_DNC_LINK_KERNEL=0")


def load_once(state: dict, switch: str, build: Callable[[], ModuleType], what: str, fallback: str) -> ModuleType | None:
    """``state["module"]``: ``build()``'s module, built on the first call; None where unavailable.

    None when the environment variable ``switch`` is 0/false/no/off, or when the build fails: one
    RuntimeWarning naming ``what`` and the error and saying that ``fallback`` runs instead; the result,
    None included, is kept in ``state``, so there is no second attempt and no second warning.
    """
    if "module" in state:
        return state["module"]
    if os.environ.get(switch, "1").strip().lower() in ("0", "false", "no", "off"):
        state["module"] = None
        return None
    try:
        state["module"] = build()
    except Exception as error:  # noqa: BLE001  (any build or load failure: fall back, once)
        state["module"] = None
        first = str(error).strip().splitlines()[:1]
        warnings.warn(
            f"mannkit_dnc: {what} could not be built or loaded ({type(error).__name__}: {first[0] if first else ''}); "
            f"the DNC runs {fallback}. Needs a C++ compiler and ninja; set {switch}=0 to skip the attempt.",
            RuntimeWarning,
            stacklevel=3,
        )
    return state["module"]


def ops() -> ModuleType | None:
    """The compiled ``link_forward`` / ``link_backward``, built on first call; None where unavailable.

    None when ``MANNKIT_DNC_LINK_KERNEL=0`` or when the build fails (one warning, naming the
    error; the DNC then runs the PyTorch form, which gives the same numbers, more slowly).
    """
    return load_once(
        _state, "MANNKIT_DNC_LINK_KERNEL", lambda: _build(), "the C++ link kernel",
        "its PyTorch link update instead (same results, slower at N >= 256)",
    )  # fmt: skip
