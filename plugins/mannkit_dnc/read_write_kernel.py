"""C++ source of the DNC's read addressing and erase/add, compiled into :mod:`mannkit_dnc.addressing_kernel`'s extension.

Shape letters: B batch, N memory slots, W word size, R read heads. The equations are in that module's
docstring; the helpers used here (``dot``, ``axpy``, ``scores_one``, ``content_one_backward``, the
32-byte vectors ``vec_t``, ``ld``, ``st_``) are defined at the top of its source, which this text follows.

read, for one batch element and head h::

    c^r_h = softmax(beta_h K(k_h, M_t));   w^r_h = pi_b b_h + pi_c c^r_h + pi_f f_h;   r_h = w^r_h M_t

write of the memory, for one batch element::

    M_t = M_{t-1} (1 - w^w e^T) + w^w v^T
"""

__all__ = ["READ_WRITE_SOURCE"]

READ_WRITE_SOURCE = r"""
// memory [B, N, W], keys [B, R, W], strengths [B, R], modes [B, R, 3] (backward, content, forward),
// forward/backward [B, R, N]. Returns reads [B, R, W], weights, sims, content [B, R, N], mem_sq [B, N], key_sq [B, R]
std::vector<torch::Tensor> read_forward(torch::Tensor memory, torch::Tensor keys, torch::Tensor strengths,
                                        torch::Tensor modes, torch::Tensor forward, torch::Tensor backward) {
  const int64_t B = memory.size(0), N = memory.size(1), W = memory.size(2), R = keys.size(1);
  auto reads = torch::zeros_like(keys), weights = torch::empty_like(forward), sims = torch::empty_like(forward);
  auto content = torch::empty_like(forward), mem_sq = torch::empty({B, N}, memory.options());
  auto key_sq = torch::empty({B, R}, memory.options());
  AT_DISPATCH_FLOATING_TYPES(memory.scalar_type(), "read_forward", [&] {
    using T = scalar_t;
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b)
        for (int64_t h = 0; h < R; ++h) {
          const int64_t bh = b * R + h;
          key_sq.data_ptr<T>()[bh] = scores_one<T>(memory.data_ptr<T>() + b * N * W, keys.data_ptr<T>() + bh * W,
                                                   strengths.data_ptr<T>()[bh], N, W, h == 0, mem_sq.data_ptr<T>() + b * N,
                                                   sims.data_ptr<T>() + bh * N, content.data_ptr<T>() + bh * N);
        }
    });
    content = at::_softmax(content, -1, false);  // c^r = softmax(beta K), [B, R, N]
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const T* M = memory.data_ptr<T>() + b * N * W;
        for (int64_t h = 0; h < R; ++h) {
          const int64_t bh = b * R + h;
          const T *pi = modes.data_ptr<T>() + bh * 3, *c = content.data_ptr<T>() + bh * N;
          const T *fw = forward.data_ptr<T>() + bh * N, *bw = backward.data_ptr<T>() + bh * N;
          T* w = weights.data_ptr<T>() + bh * N;
          T* r = reads.data_ptr<T>() + bh * W;
          for (int64_t n = 0; n < N; ++n) {
            w[n] = pi[0] * bw[n] + pi[1] * c[n] + pi[2] * fw[n];
            axpy(w[n], M + n * W, r, W);  // r_h = w^r_h M
          }
        }
      }
    });
  });
  return {reads, weights, sims, content, mem_sq, key_sq};
}

// the gradients of read_forward for d_reads [B, R, W] and d_weights [B, R, N] (absent ones all zeros);
// returns d_memory [B, N, W], d_keys [B, R, W], d_strengths [B, R], d_modes [B, R, 3], d_forward, d_backward [B, R, N]
std::vector<torch::Tensor> read_backward(torch::Tensor d_reads, bool has_reads, torch::Tensor d_weights, bool has_weights,
                                         torch::Tensor memory, torch::Tensor keys, torch::Tensor strengths,
                                         torch::Tensor modes, torch::Tensor forward, torch::Tensor backward,
                                         torch::Tensor weights, torch::Tensor sims, torch::Tensor content,
                                         torch::Tensor mem_sq, torch::Tensor key_sq) {
  const int64_t B = memory.size(0), N = memory.size(1), W = memory.size(2), R = keys.size(1);
  auto d_memory = torch::zeros_like(memory), d_keys = torch::zeros_like(keys);
  auto d_strengths = torch::empty_like(strengths), d_modes = torch::empty_like(modes);
  auto d_forward = torch::empty_like(forward), d_backward = torch::empty_like(backward);
  AT_DISPATCH_FLOATING_TYPES(memory.scalar_type(), "read_backward", [&] {
    using T = scalar_t;
    const T* d_weights_ = d_weights.data_ptr<T>();  // (data_ptr checks the dtype: not in the loops)
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<T> dw(N), dc(N);
      for (int64_t b = begin; b < end; ++b) {
        const T* M = memory.data_ptr<T>() + b * N * W;
        T* dM = d_memory.data_ptr<T>() + b * N * W;
        for (int64_t h = 0; h < R; ++h) {
          const int64_t bh = b * R + h;
          const T* w = weights.data_ptr<T>() + bh * N;
          if (has_weights) std::copy(d_weights_ + bh * N, d_weights_ + (bh + 1) * N, dw.begin());
          else std::fill(dw.begin(), dw.end(), T(0));
          if (has_reads) {  // r = w M: dw[n] += dr . M[n], dM[n] += w[n] dr
            const T* dr = d_reads.data_ptr<T>() + bh * W;
            for (int64_t n = 0; n < N; ++n) {
              const T* row = M + n * W;
              T* drow = dM + n * W;
              axpy(w[n], dr, drow, W);
              dw[n] += dot(dr, row, W);
            }
          }
          const T* pi = modes.data_ptr<T>() + bh * 3;
          const T *c = content.data_ptr<T>() + bh * N, *fw = forward.data_ptr<T>() + bh * N, *bw = backward.data_ptr<T>() + bh * N;
          T *dfw = d_forward.data_ptr<T>() + bh * N, *dbw = d_backward.data_ptr<T>() + bh * N;
          T m0 = 0, m1 = 0, m2 = 0;
          for (int64_t n = 0; n < N; ++n) {
            m0 += dw[n] * bw[n]; m1 += dw[n] * c[n]; m2 += dw[n] * fw[n];
            dc[n] = dw[n] * pi[1];
            dfw[n] = dw[n] * pi[2];
            dbw[n] = dw[n] * pi[0];
          }
          T* dm = d_modes.data_ptr<T>() + bh * 3;
          dm[0] = m0; dm[1] = m1; dm[2] = m2;
          d_strengths.data_ptr<T>()[bh] = content_one_backward<T>(
              M, keys.data_ptr<T>() + bh * W, strengths.data_ptr<T>()[bh], key_sq.data_ptr<T>()[bh],
              mem_sq.data_ptr<T>() + b * N, sims.data_ptr<T>() + bh * N, c, dc.data(), N, W,
              d_keys.data_ptr<T>() + bh * W, dM);
        }
      }
    });
  });
  return {d_memory, d_keys, d_strengths, d_modes, d_forward, d_backward};
}

// the DNC's write, M_t = M (1 - w e^T) + w a^T = M + w^T (a - e * M): memory [B, N, W], weights [B, N], erase/add [B, W]
torch::Tensor erase_add_forward(torch::Tensor memory, torch::Tensor weights, torch::Tensor erase, torch::Tensor add) {
  const int64_t B = memory.size(0), N = memory.size(1), W = memory.size(2);
  auto out = torch::empty_like(memory);
  AT_DISPATCH_FLOATING_TYPES(memory.scalar_type(), "erase_add_forward", [&] {
    using T = scalar_t;
    constexpr int64_t V = 32 / sizeof(T);
    const T *M_ = memory.data_ptr<T>(), *w_ = weights.data_ptr<T>(), *e_ = erase.data_ptr<T>(), *a_ = add.data_ptr<T>();
    T* O_ = out.data_ptr<T>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const T *e = e_ + b * W, *a = a_ + b * W;
        for (int64_t n = 0; n < N; ++n) {
          const T wn = w_[b * N + n];
          const T* m = M_ + (b * N + n) * W;
          T* o = O_ + (b * N + n) * W;
          int64_t k = 0;
          for (; k + V <= W; k += V) { const auto mv = ld(m + k); st_(o + k, mv + wn * (ld(a + k) - ld(e + k) * mv)); }
          for (; k < W; ++k) o[k] = m[k] + wn * (a[k] - e[k] * m[k]);
        }
      }
    });
  });
  return out;
}

// its gradients for G = dL/dM_t: dM = G (1 - w e^T) (if need_memory), dw[n] = G[n] . (a - e * M[n]),
// de = -sum_n w[n] G[n] * M[n], da = sum_n w[n] G[n]
std::vector<torch::Tensor> erase_add_backward(torch::Tensor grad, torch::Tensor memory, torch::Tensor weights,
                                              torch::Tensor erase, torch::Tensor add, bool need_memory) {
  const int64_t B = memory.size(0), N = memory.size(1), W = memory.size(2);
  auto d_memory = need_memory ? torch::empty_like(memory) : memory;
  auto d_weights = torch::empty_like(weights), d_erase = torch::zeros_like(erase), d_add = torch::zeros_like(add);
  AT_DISPATCH_FLOATING_TYPES(memory.scalar_type(), "erase_add_backward", [&] {
    using T = scalar_t;
    constexpr int64_t V = 32 / sizeof(T);
    const T *G_ = grad.data_ptr<T>(), *M_ = memory.data_ptr<T>(), *w_ = weights.data_ptr<T>();
    const T *e_ = erase.data_ptr<T>(), *a_ = add.data_ptr<T>();
    T *dM_ = d_memory.data_ptr<T>(), *dw_ = d_weights.data_ptr<T>(), *de_ = d_erase.data_ptr<T>(), *da_ = d_add.data_ptr<T>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const T *e = e_ + b * W, *a = a_ + b * W;
        T *de = de_ + b * W, *da = da_ + b * W;
        for (int64_t n = 0; n < N; ++n) {
          const T wn = w_[b * N + n];
          const T *g = G_ + (b * N + n) * W, *m = M_ + (b * N + n) * W;
          T* dm = dM_ + (b * N + n) * W;
          vec_t<T> acc{};
          T tail = 0;
          int64_t k = 0;
          for (; k + V <= W; k += V) {
            const auto gv = ld(g + k), mv = ld(m + k), ev = ld(e + k);
            if (need_memory) st_(dm + k, gv - wn * (gv * ev));
            acc += gv * (ld(a + k) - ev * mv);
            st_(de + k, ld(de + k) - wn * (gv * mv));
            st_(da + k, ld(da + k) + wn * gv);
          }
          for (; k < W; ++k) {
            if (need_memory) dm[k] = g[k] - wn * (g[k] * e[k]);
            tail += g[k] * (a[k] - e[k] * m[k]);
            de[k] -= wn * (g[k] * m[k]);
            da[k] += wn * g[k];
          }
          for (int64_t i = 0; i < V; ++i) tail += acc[i];
          dw_[b * N + n] = tail;
        }
      }
    });
  });
  return {need_memory ? d_memory : torch::Tensor(), d_weights, d_erase, d_add};
}
"""
