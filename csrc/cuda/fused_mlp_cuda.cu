// CUDA implementations of strainer_fast::fused_mlp_forward / fused_mlp_backward:
// thin torch glue around the torch-free kernels of sine_mlp_kernels.cuh, one
// signal-batched GEMM launch per layer and pass, on the current stream. Same
// semantics as csrc/cpu/fused_mlp_cpu.cpp (w0 folded into weights and biases,
// hidden activations and cosines saved for backward, deterministic dW/db).
// precision=1 (float32 only, sm_80+): as on the CPU, layers whose input is at
// least kBf16MinInput wide run their GEMMs (forward, dX, dW) on bf16 tensor cores
// with fp32 accumulation; narrow inputs (coordinates) stay fp32.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../mlp_args.h"
#include "sine_mlp_kernels.cuh"

namespace strainer_fast::cuda {
namespace {

using TensorVec = std::vector<at::Tensor>;

constexpr int64_t kBf16MinInput = 16;  // same threshold as csrc/cpu/fused_mlp_cpu.cpp

// Weights [S, out, in] or biases [S, out] with w0 folded in (sine layers), contiguous.
TensorVec fold_omega(at::TensorList params, at::ArrayRef<double> omegas, const MlpGeometry& g,
                     bool last_linear) {
  TensorVec out;
  for (int64_t l = 0; l < g.layers; ++l) {
    out.push_back(g.sine(l, last_linear) ? (params[l] * omegas[l]).contiguous()
                                         : params[l].contiguous());
  }
  return out;
}

int device_attribute(cudaDeviceAttr attr, const at::Tensor& x) {
  int value = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&value, attr, x.device().index()));
  return value;
}

// Device checks shared by both ops; returns whether bf16 mode is on.
template <typename T>
bool check_cuda(const at::Tensor& x, const MlpGeometry& g, int64_t precision) {
  TORCH_CHECK(x.is_cuda(), "strainer_fast: the CUDA kernel got a tensor on ", x.device());
  TORCH_CHECK(g.signals <= 65535, "strainer_fast: at most 65535 signals per CUDA call, got ",
              g.signals);
  TORCH_CHECK(precision == 0 || x.scalar_type() == at::kFloat,
              "strainer_fast: precision='bf16' needs float32 tensors, got ", x.scalar_type());
  const bool bf16 = std::is_same_v<T, float> && precision == 1;
  if (bf16) {
    TORCH_CHECK(device_attribute(cudaDevAttrComputeCapabilityMajor, x) >= 8,
                "strainer_fast: precision='bf16' needs a GPU of compute capability 8.0 or newer");
  }
  return bf16;
}

template <typename T>
std::tuple<at::Tensor, TensorVec, TensorVec> forward_impl(const at::Tensor& x_in,
                                                          at::TensorList weights,
                                                          at::TensorList biases,
                                                          at::ArrayRef<double> omegas,
                                                          bool last_linear, bool save,
                                                          int64_t precision,
                                                          const MlpGeometry& g) {
  const bool bf16 = check_cuda<T>(x_in, g, precision);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t S = g.signals, N = g.points, L = g.layers;
  const auto& w = g.widths;
  const at::Tensor x = x_in.contiguous();
  const TensorVec wf = fold_omega(weights, omegas, g, last_linear);
  const TensorVec bf = fold_omega(biases, omegas, g, last_linear);
  const auto opts = x.options();
  at::Tensor out = at::empty({S, N, w[L]}, opts);
  TensorVec hidden, cosines, ping;
  if (save) {
    for (int64_t l = 0; l + 1 < L; ++l) hidden.push_back(at::empty({S, N, w[l + 1]}, opts));
    for (int64_t l = 0; l < L; ++l) {
      if (g.sine(l, last_linear)) cosines.push_back(at::empty({S, N, w[l + 1]}, opts));
    }
  } else if (L > 1 && N > 0) {  // two [S, N, <=maxw] scratch activations, used alternately
    for (int i = 0; i < 2; ++i) ping.push_back(at::empty({S, N, g.max_width()}, opts));
  }
  if (N == 0) return {out, hidden, cosines};

  const T* in = x.data_ptr<T>();
  int64_t in_batch = g.shared_x ? 0 : N * w[0];  // shared x: every signal reads the same rows
  for (int64_t l = 0, ci = 0; l < L; ++l) {
    const int64_t wo = w[l + 1];
    const bool sine = g.sine(l, last_linear);
    const bool lowp = bf16 && w[l] >= kBf16MinInput;
    T* dst = l == L - 1 ? out.data_ptr<T>()
             : save     ? hidden[l].data_ptr<T>()
                        : ping[l % 2].data_ptr<T>();
    GemmArgs<T> p;  // [N, w_l] x [w_l, wo] per signal
    p.a = in;
    p.lda = w[l];
    p.a_batch = in_batch;
    p.b = wf[l].data_ptr<T>();
    p.ldb = w[l];
    p.b_batch = wo * w[l];
    p.c = dst;
    p.ldc = wo;
    p.c_batch = N * wo;
    p.bias = bf[l].data_ptr<T>();
    p.bias_batch = wo;
    p.cos_out = save && sine ? cosines[ci++].data_ptr<T>() : nullptr;
    p.rows = N;
    p.cols = wo;
    p.depth = p.k_per_split = w[l];
    C10_CUDA_CHECK((sine ? launch_gemm<T, false, true, Epi::kSine>(p, S, lowp, stream)
                         : launch_gemm<T, false, true, Epi::kAffine>(p, S, lowp, stream)));
    in = dst;
    in_batch = N * wo;
  }
  return {out, hidden, cosines};
}

template <typename T>
std::tuple<at::Tensor, TensorVec, TensorVec> backward_impl(
    const at::Tensor& grad_in, const at::Tensor& x_in, at::TensorList weights,
    at::TensorList hidden, at::TensorList cosines, at::ArrayRef<double> omegas, bool last_linear,
    bool need_x_grad, int64_t precision, const MlpGeometry& g) {
  const bool bf16 = check_cuda<T>(x_in, g, precision);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t sms = device_attribute(cudaDevAttrMultiProcessorCount, x_in);
  const int64_t S = g.signals, N = g.points, L = g.layers;
  const auto& w = g.widths;
  const at::Tensor x = x_in.contiguous();
  const TensorVec wf = fold_omega(weights, omegas, g, last_linear);
  TensorVec hid, cs;
  for (const auto& h : hidden) hid.push_back(h.contiguous());
  for (const auto& c : cosines) cs.push_back(c.contiguous());
  std::vector<int64_t> cos_of(L, -1);  // index into cosines of layer l's gate
  for (int64_t l = 0, i = 0; l < L; ++l) {
    if (g.sine(l, last_linear)) cos_of[l] = i++;
  }
  const auto opts = x.options();
  at::Tensor grad_x = need_x_grad ? at::empty(x.sizes(), opts) : at::empty({0}, opts);
  TensorVec grad_w(L), grad_b(L);

  // dz: gradient w.r.t. the folded pre-activation of layer l, [S, N, w_{l+1}].
  at::Tensor dz = grad_in.contiguous();
  if (g.sine(L - 1, last_linear)) dz = dz * cs[cos_of[L - 1]];
  for (int64_t l = L - 1; l >= 0; --l) {
    const int64_t wi = w[l], wo = w[l + 1];
    const T* in = l == 0 ? x.data_ptr<T>() : hid[l - 1].data_ptr<T>();
    const int64_t in_batch = l == 0 && g.shared_x ? 0 : N * wi;
    const T scale = static_cast<T>(g.sine(l, last_linear) ? omegas[l] : 1.0);
    const bool lowp = bf16 && wi >= kBf16MinInput;

    // dW'[s] = dz[s]^T in[s] and db'[s] = column sums of dz[s], split over points.
    GemmArgs<T> pw;
    pw.rows = wo;
    pw.cols = wi;
    pw.depth = N;
    plan_splits(pw, S, lowp, 4 * sms);
    at::Tensor dw_part = at::empty({S, pw.splits, wo, wi}, opts);
    at::Tensor db_part = at::empty({S, pw.splits, wo}, opts);
    pw.a = dz.data_ptr<T>();
    pw.lda = wo;
    pw.a_batch = N * wo;
    pw.b = in;
    pw.ldb = wi;
    pw.b_batch = in_batch;
    pw.c = dw_part.data_ptr<T>();
    pw.ldc = wi;
    pw.c_split = wo * wi;
    pw.c_batch = pw.splits * pw.c_split;
    pw.rowsum = db_part.data_ptr<T>();
    pw.rowsum_split = wo;
    pw.rowsum_batch = pw.splits * wo;
    C10_CUDA_CHECK((launch_gemm<T, true, false, Epi::kStore>(pw, S, lowp, stream)));
    grad_w[l] = at::empty({S, wo, wi}, opts);
    grad_b[l] = at::empty({S, wo}, opts);
    C10_CUDA_CHECK(launch_reduce<T>(dw_part.data_ptr<T>(), grad_w[l].data_ptr<T>(), S,
                                   pw.splits, wo * wi, scale, stream));
    C10_CUDA_CHECK(launch_reduce<T>(db_part.data_ptr<T>(), grad_b[l].data_ptr<T>(), S,
                                   pw.splits, wo, scale, stream));
    if (l == 0 && !need_x_grad) break;

    // d(input)[s] = dz[s] W'[s]: gated by layer l-1's cosine, or grad_x at l = 0.
    const bool sum_signals = l == 0 && g.shared_x && S > 1;
    at::Tensor dst = l > 0 ? at::empty({S, N, wi}, opts)
                     : sum_signals ? at::empty({S, N, wi}, opts)
                                   : grad_x;
    GemmArgs<T> px;
    px.a = dz.data_ptr<T>();
    px.lda = wo;
    px.a_batch = N * wo;
    px.b = wf[l].data_ptr<T>();
    px.ldb = wi;
    px.b_batch = wo * wi;
    px.c = dst.data_ptr<T>();
    px.ldc = wi;
    px.c_batch = N * wi;
    px.rows = N;
    px.cols = wi;
    px.depth = px.k_per_split = wo;
    if (l > 0) {
      px.cos_in = cs[cos_of[l - 1]].data_ptr<T>();
      C10_CUDA_CHECK((launch_gemm<T, false, false, Epi::kGate>(px, S, lowp, stream)));
      dz = dst;
    } else {
      C10_CUDA_CHECK((launch_gemm<T, false, false, Epi::kStore>(px, S, lowp, stream)));
      if (sum_signals) {  // shared x: grad_x = sum over signals, fixed order
        C10_CUDA_CHECK(launch_reduce<T>(dst.data_ptr<T>(), grad_x.data_ptr<T>(), 1,
                                       static_cast<int>(S), N * wi, T(1), stream));
      }
    }
  }
  return {grad_x, grad_w, grad_b};
}

std::tuple<at::Tensor, TensorVec, TensorVec> fused_mlp_forward_cuda(
    const at::Tensor& x, at::TensorList weights, at::TensorList biases,
    at::ArrayRef<double> omegas, bool last_linear, bool save, int64_t precision) {
  const MlpGeometry g = check_mlp_args(x, weights, biases, omegas, precision);
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_mlp_forward_cuda", [&] {
    return forward_impl<scalar_t>(x, weights, biases, omegas, last_linear, save, precision, g);
  });
}

// Saved tensors (hidden [S, N, w_{l+1}] for l < L-1, one cosine per sine layer) and
// grad_out [S, N, out] must match the geometry before any kernel reads them.
std::tuple<at::Tensor, TensorVec, TensorVec> fused_mlp_backward_cuda(
    const at::Tensor& grad, const at::Tensor& x, at::TensorList weights, at::TensorList biases,
    at::TensorList hidden, at::TensorList cosines, at::ArrayRef<double> omegas, bool last_linear,
    bool need_x_grad, int64_t precision) {
  const MlpGeometry g = check_mlp_args(x, weights, biases, omegas, precision);
  check_saved_tensors(grad, x, hidden, cosines, last_linear, g);
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_mlp_backward_cuda", [&] {
    return backward_impl<scalar_t>(grad, x, weights, hidden, cosines, omegas, last_linear,
                                   need_x_grad, precision, g);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(strainer_fast, CUDA, m) {
  m.impl("fused_mlp_forward", &fused_mlp_forward_cuda);
  m.impl("fused_mlp_backward", &fused_mlp_backward_cuda);
}

}  // namespace strainer_fast::cuda
