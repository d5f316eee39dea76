// Fused sine-MLP forward and backward on the CPU.
//
// Points are cut into row tiles that travel through every layer while they are
// in cache: per tile and layer one GEMM on the calling thread, then one
// vectorised sin/cos epilogue. w0 is folded into the weights once per call.
// The forward saves each hidden activation (the next layer's GEMM input) and
// each sine layer's cosine (the backward gate) -- nothing else. The backward
// runs the same tiles top-down; weight/bias gradients go to one buffer per
// thread chunk (no atomics, fixed reduction order, so results are
// deterministic). A shared input x [N, in] is never copied per signal: its
// first layer is one GEMM against all signals' concatenated weights.
//
// precision = bf16: layers whose input is at least kBf16MinInput wide run
// their GEMMs on bf16 operands (activation tiles converted in cache, weights
// VNNI-packed once per call) with fp32 accumulation; epilogues, sin/cos, saved
// tensors and gradients stay fp32. Narrow inputs (coordinates) stay fp32: bf16
// would quantise pixel positions.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>
#include <torch/library.h>

#include "../kernels/bf16.h"
#include "../mlp_args.h"
#include "buffer_pool.h"
#include "convert_cpu.h"
#include "epilogue_cpu.h"
#include "gemm_cpu.h"

namespace strainer_fast::cpu {
namespace {

constexpr int64_t kTileRows = 128;
constexpr int64_t kBf16MinInput = 16;

using TensorVec = std::vector<at::Tensor>;
using kernels::round_up_even;

// C[M,N] (+)= A[M,K] B[K,N] on bf16 operands: A row-major with lda >= K rounded
// up to even, B VNNI-packed; fp32 accumulation.
void gemm_bf16(int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda,
               const uint16_t* b_vnni, float* c, int64_t ldc, bool accumulate) {
  at::native::cpublas::brgemm(m, n, round_up_even(k), lda, n, ldc, accumulate,
                              reinterpret_cast<const at::BFloat16*>(a),
                              reinterpret_cast<const at::BFloat16*>(b_vnni), c, true);
}

// VNNI-packs `blocks` consecutive row-major B matrices [k, n] from src into one bf16 tensor.
at::Tensor pack_weights(const at::Tensor& src, int64_t blocks, int64_t k, int64_t n) {
  const int64_t block = round_up_even(k) * n;
  at::Tensor out = at::empty({blocks * block}, src.options().dtype(at::kShort));
  const float* sp = src.data_ptr<float>();
  auto* dp = reinterpret_cast<uint16_t*>(out.data_ptr<int16_t>());
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      pack_vnni(sp + b * k * n, n, k, n, dp + b * block);
    }
  });
  return out;
}

std::vector<bool> bf16_layers(const MlpGeometry& g, int64_t precision) {
  std::vector<bool> lowp(g.layers);
  for (int64_t l = 0; l < g.layers; ++l) {
    lowp[l] = precision == static_cast<int64_t>(Precision::kBF16) && g.widths[l] >= kBf16MinInput;
  }
  return lowp;
}

const uint16_t* u16(const at::Tensor& t) {
  return reinterpret_cast<const uint16_t*>(t.data_ptr<int16_t>());
}

// Weights or biases with w0 folded in (sine layers only), contiguous.
TensorVec fold_omega(at::TensorList params, at::ArrayRef<double> omegas, const MlpGeometry& g,
                     bool last_linear) {
  TensorVec out;
  for (int64_t l = 0; l < g.layers; ++l) {
    const at::Tensor& p = params[l];
    out.push_back((g.sine(l, last_linear) ? p * omegas[l] : p).contiguous());
  }
  return out;
}

// Weights [S, out, in] as the forward GEMM's B operand [S, in, out], w0 folded in: one
// blocked transpose-and-scale pass per matrix.
template <typename T>
TensorVec fold_omega_transposed(at::TensorList weights, at::ArrayRef<double> omegas,
                                const MlpGeometry& g, bool last_linear) {
  TensorVec out;
  for (int64_t l = 0; l < g.layers; ++l) {
    const at::Tensor src = weights[l].contiguous();
    const int64_t S = src.size(0), rows = src.size(1), cols = src.size(2);
    at::Tensor dst = at::empty({S, cols, rows}, src.options());
    const T scale = g.sine(l, last_linear) ? static_cast<T>(omegas[l]) : T{1};
    const T* sp = src.data_ptr<T>();
    T* dp = dst.data_ptr<T>();
    for (int64_t s = 0; s < S; ++s) {
      if constexpr (std::is_same_v<T, float>) {
        transpose_f32(sp + s * rows * cols, cols, rows, cols, dp + s * rows * cols, rows, scale);
      } else {
        kernels::transpose_tile(sp + s * rows * cols, cols, rows, cols, dp + s * rows * cols, rows,
                                [scale](T v) { return v * scale; });
      }
    }
    out.push_back(dst);
  }
  return out;
}

// Splits `tiles` row tiles into at most one chunk per thread and runs
// fn(chunk, first_tile, end_tile) on each chunk in parallel.
template <typename Fn>
int64_t for_each_chunk(int64_t tiles, const Fn& fn) {
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(tiles, at::get_num_threads()));
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) fn(c, c * tiles / chunks, (c + 1) * tiles / chunks);
  });
  return chunks;
}

int64_t num_chunks(int64_t tiles) {
  return std::max<int64_t>(1, std::min<int64_t>(tiles, at::get_num_threads()));
}

template <typename T>
std::tuple<at::Tensor, TensorVec> forward_impl(const at::Tensor& x_in,
                                                          at::TensorList weights,
                                                          at::TensorList biases,
                                                          at::ArrayRef<double> omegas,
                                                          bool last_linear, bool save,
                                                          int64_t precision,
                                                          const MlpGeometry& g) {
  const int64_t S = g.signals, N = g.points, L = g.layers;
  const auto& w = g.widths;
  const at::Tensor x = x_in.contiguous();
  TensorVec wt = fold_omega_transposed<T>(weights, omegas, g, last_linear);
  if (g.shared_x) {  // [in, S * w1]: all signals' first layers side by side
    wt[0] = wt[0].permute({1, 0, 2}).reshape({w[0], S * w[1]}).contiguous();
  }
  const TensorVec bf = fold_omega(biases, omegas, g, last_linear);
  const std::vector<bool> lowp = bf16_layers(g, precision);
  TensorVec packed(L);  // bf16 layers: VNNI-packed forward weights
  for (int64_t l = 0; l < L; ++l) {
    if (!lowp[l]) continue;
    if constexpr (std::is_same_v<T, float>) {
      const bool cat = l == 0 && g.shared_x;
      packed[l] = pack_weights(wt[l], cat ? 1 : S, w[l], cat ? S * w[1] : w[l + 1]);
    }
  }
  const auto opts = x.options();
  at::Tensor out = pooled_empty({S, N, w[L]}, opts);
  TensorVec hidden, cosines;
  if (save) {
    for (int64_t l = 0; l + 1 < L; ++l) hidden.push_back(pooled_empty({S, N, w[l + 1]}, opts));
    for (int64_t l = 0; l < L; ++l) {
      if (g.sine(l, last_linear)) cosines.push_back(pooled_empty({S, N, w[l + 1]}, opts));
    }
  }
  // saved = hidden activations, then cosines (the backward's layout).
  auto result = [&] {
    TensorVec saved = hidden;
    saved.insert(saved.end(), cosines.begin(), cosines.end());
    return std::make_tuple(out, saved);
  };
  if (N == 0) return result();

  const int64_t maxw = g.max_width();
  const int64_t zcat_cols = g.shared_x ? S * w[1] : 0;
  const T* xp = x.data_ptr<T>();
  const int64_t tiles = (N + kTileRows - 1) / kTileRows;
  for_each_chunk(tiles, [&](int64_t, int64_t t0, int64_t t1) {
    std::vector<T> zcat(kTileRows * zcat_cols), z(kTileRows * maxw);
    std::vector<T> ping(save ? 0 : 2 * kTileRows * maxw);
    std::vector<uint16_t> abuf(kTileRows * round_up_even(maxw));
    // c[rows, n] = a[rows, k] @ B[k, n] for layer l; b: fp32 row-major or packed block offset.
    auto layer_gemm = [&](int64_t l, int64_t rows, int64_t n, int64_t k, const T* a, int64_t lda,
                          int64_t block, T* c) {
      if constexpr (std::is_same_v<T, float>) {
        if (lowp[l]) {
          to_bf16_rows(a, lda, rows, k, abuf.data(), round_up_even(k));
          gemm_bf16(rows, n, k, abuf.data(), round_up_even(k),
                    u16(packed[l]) + block * round_up_even(k) * n, c, n, false);
          return;
        }
      }
      gemm<T>(false, false, rows, n, k, a, lda, wt[l].data_ptr<T>() + block * k * n, n, c, n,
              false);
    };
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * kTileRows, rows = std::min(kTileRows, N - r0);
      if (g.shared_x) {  // first layer of every signal at once: [rows, in] x [in, S*w1]
        layer_gemm(0, rows, zcat_cols, w[0], xp + r0 * w[0], w[0], 0, zcat.data());
      }
      for (int64_t s = 0; s < S; ++s) {
        const T* in = g.shared_x ? xp + r0 * w[0] : xp + (s * N + r0) * w[0];
        int64_t ld_in = w[0];
        int64_t cos_idx = 0;
        for (int64_t l = 0; l < L; ++l) {
          const int64_t wo = w[l + 1];
          const T* zp;
          int64_t ldz;
          if (l == 0 && g.shared_x) {
            zp = zcat.data() + s * wo;
            ldz = zcat_cols;
          } else {
            layer_gemm(l, rows, wo, w[l], in, ld_in, s, z.data());
            zp = z.data();
            ldz = wo;
          }
          const T* bias = bf[l].data_ptr<T>() + s * wo;
          T* dst;
          if (l == L - 1) {
            dst = out.data_ptr<T>() + (s * N + r0) * wo;
          } else if (save) {
            dst = hidden[l].data_ptr<T>() + (s * N + r0) * wo;
          } else {
            dst = ping.data() + (l % 2) * kTileRows * maxw;
          }
          if (g.sine(l, last_linear)) {
            T* cp = save ? cosines[cos_idx++].data_ptr<T>() + (s * N + r0) * wo : nullptr;
            sine_epilogue<T>(zp, ldz, bias, rows, wo, dst, wo, cp, wo);
          } else {
            bias_epilogue<T>(zp, ldz, bias, rows, wo, dst, wo);
          }
          in = dst;
          ld_in = wo;
        }
      }
    }
  });
  return result();
}

template <typename T>
std::tuple<at::Tensor, TensorVec, TensorVec> backward_impl(
    const at::Tensor& grad_in, const at::Tensor& x_in, at::TensorList weights,
    at::TensorList saved, at::ArrayRef<double> omegas, bool last_linear, bool need_x_grad,
    int64_t precision, const MlpGeometry& g) {
  const at::TensorList hidden = saved.slice(0, g.layers - 1);
  const at::TensorList cosines = saved.slice(g.layers - 1);
  const int64_t S = g.signals, N = g.points, L = g.layers;
  const auto& w = g.widths;
  const at::Tensor x = x_in.contiguous();
  const at::Tensor grad = grad_in.contiguous();
  const TensorVec wf = fold_omega(weights, omegas, g, last_linear);
  const std::vector<bool> lowp = bf16_layers(g, precision);
  TensorVec packed(L);  // bf16 layers: VNNI-packed W' [out, in] (the dX GEMM's B)
  for (int64_t l = 0; l < L; ++l) {
    if (!lowp[l]) continue;
    if constexpr (std::is_same_v<T, float>) {
      const bool cat = l == 0 && g.shared_x;
      packed[l] = pack_weights(wf[l], cat ? 1 : S, cat ? S * w[1] : w[l + 1], w[l]);
    }
  }
  TensorVec hid, cs;
  for (const auto& h : hidden) hid.push_back(h.contiguous());
  for (const auto& c : cosines) cs.push_back(c.contiguous());
  // cos_of[l]: index into cosines of layer l's gate (-1 for the affine layer).
  std::vector<int64_t> cos_of(L, -1);
  for (int64_t l = 0, i = 0; l < L; ++l) {
    if (g.sine(l, last_linear)) cos_of[l] = i++;
  }
  const auto opts = x.options();
  // Every row of grad_x is written by a layer-0 dX GEMM below.
  at::Tensor grad_x = need_x_grad ? pooled_empty(x.sizes(), opts) : at::empty({0}, opts);

  const int64_t tiles = (N + kTileRows - 1) / kTileRows;
  const int64_t chunks = num_chunks(tiles);
  TensorVec dw_part, db_part;
  for (int64_t l = 0; l < L; ++l) {
    dw_part.push_back(pooled_empty({chunks, S, w[l + 1], w[l]}, opts).zero_());
    db_part.push_back(pooled_empty({chunks, S, w[l + 1]}, opts).zero_());
  }
  if (N > 0) {
    const int64_t maxw = g.max_width();
    const int64_t zcat_cols = g.shared_x ? S * w[1] : 0;
    const T* xp = x.data_ptr<T>();
    const T* gp = grad.data_ptr<T>();
    for_each_chunk(tiles, [&](int64_t c, int64_t t0, int64_t t1) {
      std::vector<T> dzcat(kTileRows * zcat_cols), dz(kTileRows * maxw), din(kTileRows * maxw);
      const int64_t kmax = round_up_even(std::max(maxw, zcat_cols));
      std::vector<uint16_t> dz_lo(kTileRows * kmax), dzt_lo(round_up_even(kTileRows) * kmax),
          in_lo(round_up_even(kTileRows) * maxw);
      std::vector<T> dzt(kTileRows * kmax);
      // dW (+)= dz^T in: [m, n] over the tile's rows.
      auto dw_gemm = [&](int64_t l, int64_t rows, int64_t m, int64_t n, const T* dzp,
                         int64_t ldd, const T* in, int64_t ld_in, T* dw) {
        if constexpr (std::is_same_v<T, float>) {
          if (lowp[l]) {
            const int64_t kp = round_up_even(rows);
            to_bf16_transposed(dzp, ldd, rows, m, dzt_lo.data(), kp);
            pack_vnni(in, ld_in, rows, n, in_lo.data());
            gemm_bf16(m, n, rows, dzt_lo.data(), kp, in_lo.data(), dw, n, true);
            return;
          }
          if (n >= kBf16MinInput) {  // transposing dz in cache beats BLAS's own packing
            transpose_f32(dzp, ldd, rows, m, dzt.data(), rows);
            gemm<T>(false, false, m, n, rows, dzt.data(), rows, in, ld_in, dw, n, true);
            return;
          }
        }
        gemm<T>(true, false, m, n, rows, dzp, ldd, in, ld_in, dw, n, true);
      };
      // d(input)[rows, n] = dz[rows, k] @ W'[k, n] (W' block `block` of layer l).
      auto dx_gemm = [&](int64_t l, int64_t rows, int64_t n, int64_t k, const T* dzp,
                         int64_t ldd, int64_t block, T* dst) {
        if constexpr (std::is_same_v<T, float>) {
          if (lowp[l]) {
            to_bf16_rows(dzp, ldd, rows, k, dz_lo.data(), round_up_even(k));
            gemm_bf16(rows, n, k, dz_lo.data(), round_up_even(k),
                      u16(packed[l]) + block * round_up_even(k) * n, dst, n, false);
            return;
          }
        }
        gemm<T>(false, false, rows, n, k, dzp, ldd, wf[l].data_ptr<T>() + block * k * n, n, dst,
                n, false);
      };
      auto dw_at = [&](int64_t l, int64_t s) {
        return dw_part[l].data_ptr<T>() + (c * S + s) * w[l + 1] * w[l];
      };
      auto db_at = [&](int64_t l, int64_t s) {
        return db_part[l].data_ptr<T>() + (c * S + s) * w[l + 1];
      };
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t r0 = t * kTileRows, rows = std::min(kTileRows, N - r0);
        for (int64_t s = 0; s < S; ++s) {
          // Gradient w.r.t. the top layer's pre-activation.
          const T* g_top = gp + (s * N + r0) * w[L];
          const T* dzp;
          int64_t ldd;
          auto dz_dest = [&](int64_t l, T*& p, int64_t& ld) {
            if (l == 0 && g.shared_x) {
              p = dzcat.data() + s * w[1];
              ld = zcat_cols;
            } else {
              p = dz.data();
              ld = w[l + 1];
            }
          };
          {
            T* p;
            int64_t ld;
            dz_dest(L - 1, p, ld);
            if (cos_of[L - 1] >= 0) {
              const T* cp = cs[cos_of[L - 1]].data_ptr<T>() + (s * N + r0) * w[L];
              gate<T>(g_top, w[L], cp, w[L], rows, w[L], p, ld, db_at(L - 1, s));
              dzp = p;
              ldd = ld;
            } else {
              colsum<T>(g_top, w[L], rows, w[L], db_at(L - 1, s));
              if (L == 1 && g.shared_x) {
                for (int64_t r = 0; r < rows; ++r) {
                  std::copy(g_top + r * w[L], g_top + (r + 1) * w[L], p + r * ld);
                }
                dzp = p;
                ldd = ld;
              } else {
                dzp = g_top;
                ldd = w[L];
              }
            }
          }
          for (int64_t l = L - 1; l >= 0; --l) {
            if (l == 0 && g.shared_x) break;  // done for all signals at once below
            const T* in = l == 0 ? xp + (s * N + r0) * w[0]
                                 : hid[l - 1].data_ptr<T>() + (s * N + r0) * w[l];
            dw_gemm(l, rows, w[l + 1], w[l], dzp, ldd, in, w[l], dw_at(l, s));
            if (l == 0) {
              if (need_x_grad) {
                dx_gemm(0, rows, w[0], w[1], dzp, ldd, s,
                        grad_x.data_ptr<T>() + (s * N + r0) * w[0]);
              }
              break;
            }
            // d(input of layer l) = dz W'_l, then the gate of layer l-1.
            dx_gemm(l, rows, w[l], w[l + 1], dzp, ldd, s, din.data());
            T* p;
            int64_t ld;
            dz_dest(l - 1, p, ld);
            const T* cp = cs[cos_of[l - 1]].data_ptr<T>() + (s * N + r0) * w[l];
            gate<T>(din.data(), w[l], cp, w[l], rows, w[l], p, ld, db_at(l - 1, s));
            dzp = p;
            ldd = ld;
          }
        }
        if (g.shared_x) {
          const T* xt = xp + r0 * w[0];
          dw_gemm(0, rows, zcat_cols, w[0], dzcat.data(), zcat_cols, xt, w[0], dw_at(0, 0));
          if (need_x_grad) {
            dx_gemm(0, rows, w[0], zcat_cols, dzcat.data(), zcat_cols, 0,
                    grad_x.data_ptr<T>() + r0 * w[0]);
          }
        }
      }
    });
  }
  // Sum the per-chunk partials (a view when there is one chunk), times w0 of sine layers.
  auto reduce = [&](const at::Tensor& part, double scale) {
    at::Tensor total = chunks == 1 ? part.select(0, 0) : part.sum(0);
    return scale == 1.0 ? total : total.mul_(scale);
  };
  TensorVec grad_w, grad_b;
  for (int64_t l = 0; l < L; ++l) {
    const double scale = g.sine(l, last_linear) ? omegas[l] : 1.0;
    grad_w.push_back(reduce(dw_part[l], scale));
    grad_b.push_back(reduce(db_part[l], scale));
  }
  return {grad_x, grad_w, grad_b};
}

// tf32 (code 2) runs the exact path here: CPUs have no TF32.
void check_cpu(const at::Tensor& x, int64_t precision) {
  TORCH_CHECK(x.device().is_cpu(), "strainer_fast: the CPU kernel got a tensor on ", x.device());
  TORCH_CHECK(precision == 0 || x.scalar_type() == at::kFloat,
              "strainer_fast: precision='", precision == 1 ? "bf16" : "tf32",
              "' needs float32 tensors, got ", x.scalar_type());
}

std::tuple<at::Tensor, TensorVec> fused_mlp_forward_cpu(
    const at::Tensor& x, at::TensorList weights, at::TensorList biases,
    at::ArrayRef<double> omegas, bool last_linear, bool save, int64_t precision) {
  const MlpGeometry g = check_mlp_args(x, weights, biases, omegas, precision);
  check_cpu(x, precision);
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_mlp_forward_cpu", [&] {
    return forward_impl<scalar_t>(x, weights, biases, omegas, last_linear, save, precision, g);
  });
}

std::tuple<at::Tensor, TensorVec, TensorVec> fused_mlp_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, at::TensorList weights, at::TensorList biases,
    at::TensorList saved, at::ArrayRef<double> omegas, bool last_linear, bool need_x_grad,
    int64_t precision) {
  const MlpGeometry g = check_mlp_args(x, weights, biases, omegas, precision);
  check_cpu(x, precision);
  check_saved_hidden_cosines(grad, x, saved, last_linear, g);
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_mlp_backward_cpu", [&] {
    return backward_impl<scalar_t>(grad, x, weights, saved, omegas, last_linear, need_x_grad,
                                   precision, g);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(strainer_fast, CPU, m) {
  m.impl("fused_mlp_forward", &fused_mlp_forward_cpu);
  m.impl("fused_mlp_backward", &fused_mlp_backward_cpu);
}

}  // namespace strainer_fast::cpu
