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
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../mlp_args.h"
#include "epilogue_cpu.h"
#include "gemm_cpu.h"

namespace strainer_fast::cpu {
namespace {

constexpr int64_t kTileRows = 128;

using TensorVec = std::vector<at::Tensor>;

// Weights or biases with w0 folded in (sine layers only), contiguous; with
// `transpose`, weights come as [S, in, out] (the forward GEMM's B operand).
TensorVec fold_omega(at::TensorList params, at::ArrayRef<double> omegas, const MlpGeometry& g,
                     bool last_linear, bool transpose = false) {
  TensorVec out;
  for (int64_t l = 0; l < g.layers; ++l) {
    at::Tensor p = transpose ? params[l].transpose(-1, -2) : params[l];
    out.push_back(g.sine(l, last_linear) ? (p * omegas[l]).contiguous() : p.contiguous());
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
std::tuple<at::Tensor, TensorVec, TensorVec> forward_impl(const at::Tensor& x_in,
                                                          at::TensorList weights,
                                                          at::TensorList biases,
                                                          at::ArrayRef<double> omegas,
                                                          bool last_linear, bool save,
                                                          const MlpGeometry& g) {
  const int64_t S = g.signals, N = g.points, L = g.layers;
  const auto& w = g.widths;
  const at::Tensor x = x_in.contiguous();
  TensorVec wt = fold_omega(weights, omegas, g, last_linear, /*transpose=*/true);
  if (g.shared_x) {  // [in, S * w1]: all signals' first layers side by side
    wt[0] = wt[0].permute({1, 0, 2}).reshape({w[0], S * w[1]});
  }
  const TensorVec bf = fold_omega(biases, omegas, g, last_linear);
  const auto opts = x.options();
  at::Tensor out = at::empty({S, N, w[L]}, opts);
  TensorVec hidden, cosines;
  if (save) {
    for (int64_t l = 0; l + 1 < L; ++l) hidden.push_back(at::empty({S, N, w[l + 1]}, opts));
    for (int64_t l = 0; l < L; ++l) {
      if (g.sine(l, last_linear)) cosines.push_back(at::empty({S, N, w[l + 1]}, opts));
    }
  }
  if (N == 0) return {out, hidden, cosines};

  const int64_t maxw = g.max_width();
  const int64_t zcat_cols = g.shared_x ? S * w[1] : 0;
  const T* xp = x.data_ptr<T>();
  const int64_t tiles = (N + kTileRows - 1) / kTileRows;
  for_each_chunk(tiles, [&](int64_t, int64_t t0, int64_t t1) {
    std::vector<T> zcat(kTileRows * zcat_cols), z(kTileRows * maxw);
    std::vector<T> ping(save ? 0 : 2 * kTileRows * maxw);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * kTileRows, rows = std::min(kTileRows, N - r0);
      if (g.shared_x) {  // first layer of every signal at once: [rows, in] x [in, S*w1]
        gemm<T>(false, false, rows, zcat_cols, w[0], xp + r0 * w[0], w[0], wt[0].data_ptr<T>(),
                zcat_cols, zcat.data(), zcat_cols, false);
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
            gemm<T>(false, false, rows, wo, w[l], in, ld_in, wt[l].data_ptr<T>() + s * w[l] * wo,
                    wo, z.data(), wo, false);
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
  return {out, hidden, cosines};
}

template <typename T>
std::tuple<at::Tensor, TensorVec, TensorVec> backward_impl(
    const at::Tensor& grad_in, const at::Tensor& x_in, at::TensorList weights,
    at::TensorList hidden, at::TensorList cosines, at::ArrayRef<double> omegas, bool last_linear,
    bool need_x_grad, const MlpGeometry& g) {
  const int64_t S = g.signals, N = g.points, L = g.layers;
  const auto& w = g.widths;
  const at::Tensor x = x_in.contiguous();
  const at::Tensor grad = grad_in.contiguous();
  const TensorVec wf = fold_omega(weights, omegas, g, last_linear);
  TensorVec hid, cs;
  for (const auto& h : hidden) hid.push_back(h.contiguous());
  for (const auto& c : cosines) cs.push_back(c.contiguous());
  // cos_of[l]: index into cosines of layer l's gate (-1 for the affine layer).
  std::vector<int64_t> cos_of(L, -1);
  for (int64_t l = 0, i = 0; l < L; ++l) {
    if (g.sine(l, last_linear)) cos_of[l] = i++;
  }
  const auto opts = x.options();
  at::Tensor grad_x = need_x_grad ? at::zeros(x.sizes(), opts) : at::empty({0}, opts);

  const int64_t tiles = (N + kTileRows - 1) / kTileRows;
  const int64_t chunks = num_chunks(tiles);
  TensorVec dw_part, db_part;
  for (int64_t l = 0; l < L; ++l) {
    dw_part.push_back(at::zeros({chunks, S, w[l + 1], w[l]}, opts));
    db_part.push_back(at::zeros({chunks, S, w[l + 1]}, opts));
  }
  if (N > 0) {
    const int64_t maxw = g.max_width();
    const int64_t zcat_cols = g.shared_x ? S * w[1] : 0;
    const T* xp = x.data_ptr<T>();
    const T* gp = grad.data_ptr<T>();
    for_each_chunk(tiles, [&](int64_t c, int64_t t0, int64_t t1) {
      std::vector<T> dzcat(kTileRows * zcat_cols), dz(kTileRows * maxw), din(kTileRows * maxw);
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
            // dW'_l += dz^T in
            gemm<T>(true, false, w[l + 1], w[l], rows, dzp, ldd, in, w[l], dw_at(l, s), w[l],
                    true);
            const T* wl = wf[l].data_ptr<T>() + s * w[l + 1] * w[l];
            if (l == 0) {
              if (need_x_grad) {
                gemm<T>(false, false, rows, w[0], w[1], dzp, ldd, wl, w[0],
                        grad_x.data_ptr<T>() + (s * N + r0) * w[0], w[0], false);
              }
              break;
            }
            // d(input of layer l) = dz W'_l, then the gate of layer l-1.
            gemm<T>(false, false, rows, w[l], w[l + 1], dzp, ldd, wl, w[l], din.data(), w[l],
                    false);
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
          gemm<T>(true, false, zcat_cols, w[0], rows, dzcat.data(), zcat_cols, xt, w[0],
                  dw_at(0, 0), w[0], true);
          if (need_x_grad) {
            gemm<T>(false, false, rows, w[0], zcat_cols, dzcat.data(), zcat_cols,
                    wf[0].data_ptr<T>(), w[0], grad_x.data_ptr<T>() + r0 * w[0], w[0], false);
          }
        }
      }
    });
  }
  TensorVec grad_w, grad_b;
  for (int64_t l = 0; l < L; ++l) {
    const double scale = g.sine(l, last_linear) ? omegas[l] : 1.0;
    grad_w.push_back(dw_part[l].sum(0).mul_(scale));
    grad_b.push_back(db_part[l].sum(0).mul_(scale));
  }
  return {grad_x, grad_w, grad_b};
}

void check_cpu(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), "strainer_fast: the CPU kernel got a tensor on ", x.device());
}

std::tuple<at::Tensor, TensorVec, TensorVec> fused_mlp_forward_cpu(
    const at::Tensor& x, at::TensorList weights, at::TensorList biases,
    at::ArrayRef<double> omegas, bool last_linear, bool save, int64_t precision) {
  const MlpGeometry g = check_mlp_args(x, weights, biases, omegas, precision);
  check_cpu(x);
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_mlp_forward_cpu", [&] {
    return forward_impl<scalar_t>(x, weights, biases, omegas, last_linear, save, g);
  });
}

std::tuple<at::Tensor, TensorVec, TensorVec> fused_mlp_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, at::TensorList weights, at::TensorList biases,
    at::TensorList hidden, at::TensorList cosines, at::ArrayRef<double> omegas, bool last_linear,
    bool need_x_grad, int64_t precision) {
  const MlpGeometry g = check_mlp_args(x, weights, biases, omegas, precision);
  check_cpu(x);
  const int64_t n_sine = last_linear ? g.layers - 1 : g.layers;
  TORCH_CHECK(static_cast<int64_t>(hidden.size()) == g.layers - 1 &&
                  static_cast<int64_t>(cosines.size()) == n_sine,
              "strainer_fast: backward got ", hidden.size(), " hidden and ", cosines.size(),
              " cosine tensors for ", g.layers, " layers");
  TORCH_CHECK(grad.sizes() == at::IntArrayRef({g.signals, g.points, g.widths.back()}) &&
                  grad.scalar_type() == x.scalar_type() && grad.device() == x.device(),
              "strainer_fast: grad_out must be [S, N, out] like the output, got ", grad.sizes());
  for (int64_t l = 0; l + 1 < g.layers; ++l) {
    TORCH_CHECK(hidden[l].sizes() == at::IntArrayRef({g.signals, g.points, g.widths[l + 1]}) &&
                    hidden[l].scalar_type() == x.scalar_type() && hidden[l].device() == x.device(),
                "strainer_fast: saved hidden[", l, "] has the wrong shape ", hidden[l].sizes());
  }
  for (int64_t l = 0, i = 0; l < g.layers; ++l) {
    if (!g.sine(l, last_linear)) continue;
    const at::Tensor& c = cosines[i++];
    TORCH_CHECK(c.sizes() == at::IntArrayRef({g.signals, g.points, g.widths[l + 1]}) &&
                    c.scalar_type() == x.scalar_type() && c.device() == x.device(),
                "strainer_fast: saved cosine of layer ", l, " has the wrong shape ", c.sizes());
  }
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_mlp_backward_cpu", [&] {
    return backward_impl<scalar_t>(grad, x, weights, hidden, cosines, omegas, last_linear,
                                   need_x_grad, g);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(strainer_fast, CPU, m) {
  m.impl("fused_mlp_forward", &fused_mlp_forward_cpu);
  m.impl("fused_mlp_backward", &fused_mlp_backward_cpu);
}

}  // namespace strainer_fast::cpu
