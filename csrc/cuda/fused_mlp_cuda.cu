// CUDA implementations of strainer_fast::fused_mlp_forward / fused_mlp_backward: the
// torch glue around the torch-free kernels of mlp_elementwise.cuh and tc_gemm.h, on
// the current stream of x's device, without host synchronisation.
//
// Per layer l (w0 folded into W' = w0 W and b' = w0 b once per call):
//   forward   z = h_{l-1} W'^T + b'  (one GEMM, then an epilogue kernel: bias, sin,
//             the saved z; tensor-core layers with aligned widths do this in the GEMM's
//             fused epilogue); the first layer with <= 4 inputs is one small kernel.
//   backward  dh = dz_l W' (GEMM), then dz_{l-1} = dh * cos z_{l-1} and
//             h_{l-1} = sin z_{l-1} in one gate kernel (or the GEMM's fused epilogue);
//             [dW_l | db_l] = w0 dz_l^T [h_{l-1} | 1] (one GEMM).
// Bias gradients: the dW GEMM's activation operand (written by the backward anyway: the
// gate's sin z, or x's bf16 copy) carries a ones column after the activations (and zeros
// up to its padded leading dimension), so db = w0 * column sums of dz comes out of the
// same GEMM as column `in` of dW, deterministic, in every mode (ATen, sm80, sm90). Cost:
// one more output column, which is one more 128-wide tile column where the input width
// is a multiple of 128 (the dW GEMM then computes up to 1.5x its useful FLOPs at width
// 256). A layer-0 input x that the backward would not copy (fp32/fp64, not bf16) gets
// a ones-column copy only when that is narrow next to dz (2 in + 1 <= dW rows, e.g.
// coordinates into a wide first layer); otherwise db is one fixed-order ATen reduction.
// A shared input x [N, in] meets the S signals' first layers as ONE GEMM against
// their concatenated weights [S * out, in]; its gradients (dz in the concatenated
// layout [N, S * out]) are one GEMM each for dW and dX.
// Saved for backward: the pre-activation z of every sine layer (fp32/fp64).
//
// GEMMs: precision 0 (exact) and any layer whose input is narrower than
// kLowpMinInput: ATen (cuBLAS SGEMM/DGEMM) with TF32 disabled for these calls whatever
// the global setting. Precision 2 (tf32) / 1 (bf16), float32, sm_80+: CUTLASS
// tensor-core GEMMs (tc_gemm.h) with fp32 accumulation; bf16 operands live in
// buffers whose rows are padded to 8 elements with zeros, and a bf16 layer's dz exists
// only as that operand. On cc 9.0 devices (sm_90a kernels built, STRAINER_FAST_CUDA_SM90
// not "0") the fused forward, the dX GEMM with the gate and the bf16 dW GEMM run on the
// wgmma + TMA kernels where they take the problem, else on the sm80 kernels; tf32's dX
// reads a transposed copy of W' there (tf32 wgmma operands are K-major only).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "../mlp_args.h"
#include "mlp_elementwise.cuh"
#include "tc_gemm.h"

namespace strainer_fast::cuda {
namespace {

using TensorVec = std::vector<at::Tensor>;
using bf16 = __nv_bfloat16;

constexpr int64_t kLowpMinInput = 16;  // same threshold as the CPU bf16 mode
constexpr int64_t kSplitMinDepth = 2048;  // points per serial split-K slice, at least

enum class Gemm { kAten, kTf32, kBf16 };

int64_t round8(int64_t v) { return (v + 7) / 8 * 8; }
int64_t round4(int64_t v) { return (v + 3) / 4 * 4; }

// A function, not the macro: launcher calls carry template argument lists (commas).
void cuda_ok(cudaError_t err) { C10_CUDA_CHECK(err); }

int device_attribute(cudaDeviceAttr attr, int device) {
  int value = 0;
  cuda_ok(cudaDeviceGetAttribute(&value, attr, device));
  return value;
}

// GEMMs run by the sm_90a kernels, for tests (cuda_sm90_forward_launches: the fused
// forward; cuda_sm90_backward_launches: the dX-with-gate and bf16 dW GEMMs).
std::atomic<int64_t> g_sm90_forward_launches{0};
std::atomic<int64_t> g_sm90_backward_launches{0};

// The sm_90a kernels are in this binary and STRAINER_FAST_CUDA_SM90 is not "0" (which
// forces the sm80 kernels, e.g. to compare both).
bool sm90_enabled() {
  const char* env = std::getenv("STRAINER_FAST_CUDA_SM90");
  return tc_sm90_built() && !(env != nullptr && std::string_view(env) == "0");
}

// Everything both ops share: device checks, the GEMM engine per layer, folded weights.
template <typename T>
struct Plan {
  const MlpGeometry& g;
  bool last_linear;
  int device;
  cudaStream_t stream;
  int sms;
  bool sm90;  // the sm_90a kernels may run: cc 9.0, kernels built, not disabled
  std::vector<Gemm> gemm;  // per layer
  TensorVec wf;            // W' [S, out, in], contiguous, T
  TensorVec wlo;           // bf16 layers: W' as bf16, [S, round8(out), round8(in)] zero-padded
                           // (the concatenated first layer: [round8(S * out), round8(in)])

  Plan(const at::Tensor& x, const MlpGeometry& geo, at::TensorList weights,
       at::ArrayRef<double> omegas, bool last, int64_t precision)
      : g(geo), last_linear(last) {
    TORCH_CHECK(x.is_cuda(), "strainer_fast: the CUDA kernel got a tensor on ", x.device());
    TORCH_CHECK(g.signals <= 65535, "strainer_fast: at most 65535 signals per CUDA call, got ",
                g.signals);
    TORCH_CHECK(g.points <= INT_MAX / 2, "strainer_fast: at most ", INT_MAX / 2,
                " points per CUDA call, got ", g.points);
    TORCH_CHECK(precision == 0 || x.scalar_type() == at::kFloat, "strainer_fast: precision='",
                precision == 1 ? "bf16" : "tf32", "' needs float32 tensors, got ",
                x.scalar_type());
    device = x.device().index();
    stream = c10::cuda::getCurrentCUDAStream(device);
    sms = device_attribute(cudaDevAttrMultiProcessorCount, device);
    sm90 = sm90_enabled() && device_attribute(cudaDevAttrComputeCapabilityMajor, device) == 9 &&
           device_attribute(cudaDevAttrComputeCapabilityMinor, device) == 0;
    if (precision != 0) {
      TORCH_CHECK(device_attribute(cudaDevAttrComputeCapabilityMajor, device) >= 8,
                  "strainer_fast: precision='", precision == 1 ? "bf16" : "tf32",
                  "' needs a GPU of compute capability 8.0 or newer");
    }
    const Gemm lowp = precision == 1 ? Gemm::kBf16 : precision == 2 ? Gemm::kTf32 : Gemm::kAten;
    for (int64_t l = 0; l < g.layers; ++l) {
      gemm.push_back(g.widths[l] >= kLowpMinInput ? lowp : Gemm::kAten);
      wf.push_back(g.sine(l, last_linear) ? (weights[l] * omegas[l]).contiguous()
                                          : weights[l].contiguous());
    }
    wlo.resize(g.layers);
    for (int64_t l = 0; l < g.layers; ++l) {
      if (gemm[l] != Gemm::kBf16) continue;
      const int64_t S = g.signals, wo = g.widths[l + 1], wi = g.widths[l];
      if (concat(l)) {
        wlo[l] = at::zeros({round8(S * wo), round8(wi)}, x.options().dtype(at::kBFloat16));
        wlo[l].narrow(0, 0, S * wo).narrow(1, 0, wi).copy_(wf[l].view({S * wo, wi}));
      } else {
        wlo[l] = at::zeros({S, round8(wo), round8(wi)}, x.options().dtype(at::kBFloat16));
        wlo[l].narrow(1, 0, wo).narrow(2, 0, wi).copy_(wf[l]);
      }
    }
  }

  // Layer l's GEMMs see a shared input through the concatenated weights.
  bool concat(int64_t l) const { return l == 0 && g.shared_x; }
  bool first_layer_kernel() const { return g.widths[0] <= kFirstLayerMaxIn; }
  double scale(int64_t l, at::ArrayRef<double> omegas) const {
    return g.sine(l, last_linear) ? omegas[l] : 1.0;
  }
};

const void* ptr(const at::Tensor& t) { return t.data_ptr(); }

void check_tc(const char* err) { TORCH_CHECK(err == nullptr, err); }

// TF32 GEMM kind: 4-element (16-byte) vector accesses when every extent, leading
// dimension, batch stride and pointer allows, else scalar accesses.
TcKind tf32_kind(std::initializer_list<int64_t> extents, std::initializer_list<const void*> ptrs) {
  for (int64_t e : extents) {
    if (e % 4 != 0) return TcKind::kTf32Align1;
  }
  for (const void* p : ptrs) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return TcKind::kTf32Align1;
  }
  return TcKind::kTf32;
}

// The kernel kind of GEMM `p`: bf16 if `lo`, else tf32 when every extent, leading dimension,
// batch stride and pointer is 16-byte aligned (`a_inner`: A's contiguous extent).
TcKind gemm_kind(bool lo, const TcGemm& p, int64_t a_inner) {
  if (lo) return TcKind::kBf16;
  return tf32_kind({a_inner, p.n, p.lda, p.ldb, p.ldd, p.batch_a, p.batch_b, p.batch_d},
                   {p.a, p.b, p.d});
}

// Runs a tensor-core GEMM, on the sm_90a kernel where plan.sm90 and it takes the problem
// (bf16 dW), else on the sm80 one; `split` allows deterministic split-K (single-batch
// problems only; both kernels' tiles are 128 x 128).
template <typename T>
void run_tc(TcKind kind, TcLayout layout, TcGemm p, bool split, const at::Tensor& like,
            const Plan<T>& plan) {
  if (split && p.batches == 1) {
    const int64_t tiles = ((p.m + 127) / 128) * ((p.n + 127) / 128);
    const int64_t want = (2 * plan.sms + tiles - 1) / tiles;
    const int64_t most = std::max<int64_t>(1, p.k / kSplitMinDepth);
    p.splits = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({want, most, 32})));
  }
  const bool sm90 = plan.sm90 && tc_gemm_sm90_can_run(kind, layout, p);
  const size_t bytes = sm90 ? tc_gemm_sm90_workspace_bytes(kind, layout, p)
                            : tc_gemm_workspace_bytes(kind, layout, p);
  at::Tensor workspace;
  if (bytes > 0) {
    workspace = at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
  }
  void* ws = bytes > 0 ? workspace.data_ptr() : nullptr;
  if (sm90) {
    check_tc(tc_gemm_sm90_run(kind, layout, p, ws, plan.stream));
    g_sm90_backward_launches.fetch_add(1, std::memory_order_relaxed);
  } else {
    check_tc(tc_gemm_run(kind, layout, p, ws, plan.stream));
  }
}

template <typename T>
Act<T> act_of(const at::Tensor& t, int64_t points, int64_t ld) {
  return act_contiguous(static_cast<T*>(t.data_ptr()), points, ld);
}
template <typename T>
Act<const T> cact_of(const at::Tensor& t, int64_t points, int64_t ld) {
  return act_contiguous(static_cast<const T*>(t.data_ptr()), points, ld);
}

// A GEMM operand of activations [S, N, width]: T (ld = width) or bf16 (ld = round8(width),
// zero-padded columns), in the contiguous or the concatenated [N, ld] layout.
struct Operand {
  at::Tensor t;
  int64_t ld = 0;
  bool lo = false;    // bf16
  bool ones = false;  // column `width` holds ones (new_dw_operand)
};

Operand new_operand(const at::Tensor& like, int64_t S, int64_t N, int64_t width, bool lo,
                    bool cat) {
  Operand o;
  o.lo = lo;
  if (cat) {
    o.ld = lo ? round8(S * width) : S * width;
    const auto opts = lo ? like.options().dtype(at::kBFloat16) : like.options();
    o.t = o.ld != S * width ? at::zeros({N, o.ld}, opts) : at::empty({N, o.ld}, opts);
  } else {
    o.ld = lo ? round8(width) : width;
    const auto opts = lo ? like.options().dtype(at::kBFloat16) : like.options();
    o.t = o.ld != width ? at::zeros({S, N, o.ld}, opts) : at::empty({S, N, o.ld}, opts);
  }
  return o;
}

// The dW GEMM's activation operand [S, N, ld]: columns [0, width) for the activations
// (written by the caller), column `width` ones, the rest zeros, so that dW_ext = dz^T [h, 1]
// carries db = column sums of dz as its column `width`. ld = width + 1 rounded up to 8
// (bf16) or 4 (fp32/fp64) elements.
Operand new_dw_operand(const at::Tensor& like, int64_t S, int64_t N, int64_t width, bool lo) {
  Operand o;
  o.lo = lo;
  o.ones = true;
  o.ld = lo ? round8(width + 1) : round4(width + 1);
  o.t = at::empty({S, N, o.ld}, lo ? like.options().dtype(at::kBFloat16) : like.options());
  o.t.select(2, width).fill_(1);
  if (o.ld > width + 1) o.t.narrow(2, width + 1, o.ld - width - 1).zero_();
  return o;
}

template <typename Op>
Act<Op> operand_act(const Operand& o, int64_t N, int64_t width, bool cat) {
  Op* p = static_cast<Op*>(o.t.data_ptr());
  return cat ? Act<Op>{p, width, o.ld} : act_contiguous(p, N, o.ld);
}

template <typename T>
std::tuple<at::Tensor, TensorVec> forward_impl(const at::Tensor& x_in, at::TensorList weights,
                                               at::TensorList biases, at::ArrayRef<double> omegas,
                                               bool last_linear, bool save, int64_t precision,
                                               const MlpGeometry& g) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::NoTF32Guard exact_aten_gemms;  // TF32 only where precision asks, via CUTLASS
  const Plan<T> plan(x_in, g, weights, omegas, last_linear, precision);
  const int64_t S = g.signals, N = g.points, L = g.layers;
  const auto& w = g.widths;
  const at::Tensor x = x_in.contiguous();
  const auto opts = x.options();
  at::Tensor out = at::empty({S, N, w[L]}, opts);
  TensorVec saved;
  if (N == 0) {
    if (save) {
      for (int64_t l = 0; l < L; ++l) {
        if (g.sine(l, last_linear)) saved.push_back(at::empty({S, N, w[l + 1]}, opts));
      }
    }
    return {out, saved};
  }
  const int64_t xs = g.shared_x ? 0 : N * w[0];

  // Layer 0's input as a GEMM operand (a bf16 copy for a bf16 layer).
  Operand in;
  if (plan.gemm[0] == Gemm::kBf16) {
    const int64_t sx = g.shared_x ? 1 : S;
    in = new_operand(x, sx, N, w[0], true, false);
    cuda_ok(launch_copy(cact_of<T>(x, N, w[0]), Shape3{sx, N, w[0]},
                               operand_act<bf16>(in, N, w[0], false), plan.stream));
  } else {
    in.t = x;
    in.ld = w[0];
  }

  for (int64_t l = 0; l < L; ++l) {
    const int64_t wi = w[l], wo = w[l + 1];
    const bool sine = g.sine(l, last_linear);
    const bool cat = plan.concat(l);
    const at::Tensor bfold = (sine ? biases[l] * omegas[l] : biases[l]).contiguous();
    // Destination of h: the output, or the next layer's GEMM operand.
    Operand next;
    if (l == L - 1) {
      next.t = out;
      next.ld = wo;
    } else {
      next = new_operand(x, S, N, wo, plan.gemm[l + 1] == Gemm::kBf16, false);
    }
    const Shape3 sh{S, N, wo};
    const T* bp = bfold.template data_ptr<T>();
    at::Tensor z_save;  // the saved pre-activation (sine layers, when saving)
    auto z_out = [&](const at::Tensor& zbuf) -> T* {
      if (!save || !sine) return nullptr;
      // The contiguous GEMM output becomes z itself (bias added in place).
      z_save = zbuf.defined() ? zbuf : at::empty({S, N, wo}, opts);
      return z_save.template data_ptr<T>();
    };
    auto epilogue = [&](Act<const T> z_in, T* zo) {
      if (next.lo) {
        cuda_ok(launch_bias_act<T, bf16>(z_in, bp, sh, sine, operand_act<bf16>(next, N, wo, false),
                                         zo, plan.stream));
      } else {
        cuda_ok(launch_bias_act<T, T>(z_in, bp, sh, sine, operand_act<T>(next, N, wo, false), zo,
                                      plan.stream));
      }
    };

    if (l == 0 && plan.first_layer_kernel()) {
      const T* wp = plan.wf[0].template data_ptr<T>();
      const T* xp = x.template data_ptr<T>();
      T* zo = z_out(at::Tensor());
      if (next.lo) {
        cuda_ok(launch_first_layer<T, bf16>(xp, xs, static_cast<int>(wi), wp, bp, sh, sine,
                                            operand_act<bf16>(next, N, wo, false), zo,
                                            plan.stream));
      } else {
        cuda_ok(launch_first_layer<T, T>(xp, xs, static_cast<int>(wi), wp, bp, sh, sine,
                                         operand_act<T>(next, N, wo, false), zo, plan.stream));
      }
    } else {
      // z (without bias) = in @ W'^T: [N, S * wo] (concatenated) or [S, N, wo].
      at::Tensor zbuf;
      bool fused = false;  // the GEMM's epilogue wrote z + b' and sin(z + b') itself
      if (plan.gemm[l] == Gemm::kAten) {
        zbuf = cat ? at::mm(x, plan.wf[0].view({S * wo, wi}).t())
                   : at::bmm(in.t.view({S, N, wi}), plan.wf[l].transpose(1, 2));
      } else {
        zbuf = cat ? at::empty({N, S * wo}, opts) : at::empty({S, N, wo}, opts);
        const bool lo = plan.gemm[l] == Gemm::kBf16;
        TcGemm p;
        p.m = static_cast<int>(N);
        p.n = static_cast<int>(cat ? S * wo : wo);
        p.k = static_cast<int>(lo ? round8(wi) : wi);
        p.a = ptr(in.t);
        p.lda = in.ld;
        p.batch_a = cat ? 0 : N * in.ld;
        p.b = lo ? ptr(plan.wlo[l]) : ptr(plan.wf[l]);
        p.ldb = lo ? round8(wi) : wi;
        p.batch_b = cat ? 0 : lo ? round8(wo) * round8(wi) : wo * wi;
        p.d = zbuf.template data_ptr<float>();
        p.ldd = p.n;
        p.batch_d = cat ? 0 : N * wo;
        p.batches = cat ? 1 : static_cast<int>(S);
        const TcKind kind = gemm_kind(lo, p, p.k);
        // A sine layer feeding a GEMM of the same kind: bias + sine in the GEMM's epilogue
        // (z -> zbuf, sin z -> the next operand), when the fused kernel takes the problem.
        if (sine && !cat && l < L - 1 && next.lo == lo) {
          TcFused f;
          f.bias = bfold.template data_ptr<float>();
          f.batch_bias = wo;
          f.h = next.t.data_ptr();
          f.ldh = next.ld;
          f.batch_h = N * next.ld;
          if (plan.sm90 && tc_gemm_fused_sm90_can_run(kind, p, f)) {
            check_tc(tc_gemm_fused_sm90_run(kind, p, f, plan.stream));
            g_sm90_forward_launches.fetch_add(1, std::memory_order_relaxed);
            fused = true;
          } else if (tc_gemm_fused_can_run(kind, TcEpilogue::kBiasSine, p, f)) {
            check_tc(tc_gemm_fused_run(kind, TcEpilogue::kBiasSine, p, f, plan.stream));
            fused = true;
          }
        }
        if (!fused) run_tc(kind, TcLayout::kRC, p, false, x, plan);
      }
      if (fused) {
        if (save) z_save = zbuf;
      } else {
        const T* zp = zbuf.template data_ptr<T>();
        T* zo = z_out(cat ? at::Tensor() : zbuf);
        epilogue(cat ? Act<const T>{zp, wo, S * wo} : act_contiguous(zp, N, wo), zo);
      }
    }
    if (z_save.defined()) saved.push_back(z_save);
    in = next;
  }
  return {out, saved};
}

template <typename T>
std::tuple<at::Tensor, TensorVec, TensorVec> backward_impl(
    const at::Tensor& grad_in, const at::Tensor& x_in, at::TensorList weights,
    at::TensorList saved_in, at::ArrayRef<double> omegas, bool last_linear, bool need_x_grad,
    int64_t precision, const MlpGeometry& g) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::NoTF32Guard exact_aten_gemms;
  const Plan<T> plan(x_in, g, weights, omegas, last_linear, precision);
  const int64_t S = g.signals, N = g.points, L = g.layers;
  const auto& w = g.widths;
  const at::Tensor x = x_in.contiguous();
  const auto opts = x.options();
  TensorVec grad_w(L), grad_b(L);
  at::Tensor grad_x = need_x_grad ? at::empty(x.sizes(), opts) : at::empty({0}, opts);
  if (N == 0) {
    for (int64_t l = 0; l < L; ++l) {
      grad_w[l] = at::zeros({S, w[l + 1], w[l]}, opts);
      grad_b[l] = at::zeros({S, w[l + 1]}, opts);
    }
    return {grad_x, grad_w, grad_b};
  }
  TensorVec z;
  for (const auto& t : saved_in) z.push_back(t.contiguous());
  const at::Tensor grad = grad_in.contiguous();

  // dz of the current layer as its GEMMs' operand: T (contiguous [S, N, wo] or
  // concatenated [N, S * wo]) for ATen and tf32 layers; bf16 (dz_lo) for bf16 layers,
  // which need no T copy (their db comes out of the dW GEMM too).
  at::Tensor dz;
  Operand dz_lo;
  auto make_dz_lo = [&](int64_t l) {
    return new_operand(x, S, N, w[l + 1], true, plan.concat(l));
  };
  {
    const int64_t l = L - 1, wo = w[L];
    const bool cat = plan.concat(l);
    const bool sine = g.sine(l, last_linear);
    const Shape3 sh{S, N, wo};
    const Act<const T> grad_act = cact_of<T>(grad, N, wo);
    if (plan.gemm[l] == Gemm::kBf16) {
      dz_lo = make_dz_lo(l);
      const Act<bf16> lo_act = operand_act<bf16>(dz_lo, N, wo, cat);
      if (sine) {
        cuda_ok(launch_gate<T, bf16>(grad_act, z[l].template data_ptr<T>(), sh, Act<T>{}, lo_act,
                                     Act<bf16>{}, plan.stream));
      } else {
        cuda_ok(launch_copy<T, bf16>(grad_act, sh, lo_act, plan.stream));
      }
    } else if (sine || cat) {
      dz = cat ? at::empty({N, S * wo}, opts) : at::empty({S, N, wo}, opts);
      T* dp = dz.template data_ptr<T>();
      const Act<T> dz_act = cat ? Act<T>{dp, wo, S * wo} : act_contiguous(dp, N, wo);
      if (sine) {
        cuda_ok(launch_gate<T, T>(grad_act, z[l].template data_ptr<T>(), sh, dz_act, Act<T>{},
                                  Act<T>{}, plan.stream));
      } else {
        cuda_ok(launch_copy<T, T>(grad_act, sh, dz_act, plan.stream));
      }
    } else {
      dz = grad;
    }
  }

  for (int64_t l = L - 1; l >= 0; --l) {
    const int64_t wi = w[l], wo = w[l + 1];
    const bool cat = plan.concat(l);
    const Gemm eng = plan.gemm[l];
    const bool lo = eng == Gemm::kBf16;
    const double scale = plan.scale(l, omegas);
    const int64_t rows = cat ? S * wo : wo;  // dW rows of one GEMM

    // Input of layer l as the dW GEMM's operand, with the ones column (new_dw_operand):
    // sin z_{l-1} written by the gate (fused into the dX GEMM, or a separate kernel) below;
    // for l = 0 a copy of x (or x itself, see there).
    Operand in;
    at::Tensor dz_prev;
    Operand dz_prev_lo;
    if (l > 0) {
      const bool cat_prev = plan.concat(l - 1);
      const bool lo_prev = plan.gemm[l - 1] == Gemm::kBf16;
      in = new_dw_operand(x, S, N, wi, lo);
      if (lo_prev) dz_prev_lo = make_dz_lo(l - 1);
      bool gated = false;  // the dX GEMM's epilogue did the gate below itself
      if (eng != Gemm::kAten && !cat_prev && lo == lo_prev) {
        // dz_{l-1} = (dz_l W'_l) * cos z_{l-1} -> dz_prev (tf32) or its bf16 operand,
        // sin z_{l-1} -> layer l's dW operand, in the GEMM's epilogue.
        if (!lo) dz_prev = at::empty({S, N, wi}, opts);
        TcGemm p;
        p.m = static_cast<int>(N);
        p.n = static_cast<int>(wi);
        p.k = static_cast<int>(lo ? dz_lo.ld : wo);
        p.a = lo ? ptr(dz_lo.t) : ptr(dz);
        p.lda = lo ? dz_lo.ld : wo;
        p.batch_a = N * p.lda;
        p.b = lo ? ptr(plan.wlo[l]) : ptr(plan.wf[l]);
        p.ldb = lo ? round8(wi) : wi;
        p.batch_b = lo ? round8(wo) * round8(wi) : wo * wi;
        p.d = lo ? nullptr : dz_prev.template data_ptr<float>();
        p.ldd = wi;
        p.batch_d = N * wi;
        p.batches = static_cast<int>(S);
        TcFused f;
        f.z_in = z[l - 1].template data_ptr<float>();
        f.ldz = wi;
        f.batch_z = N * wi;
        f.h = in.t.data_ptr();
        f.ldh = in.ld;
        f.batch_h = N * in.ld;
        if (lo) {
          f.d_lo = dz_prev_lo.t.data_ptr();
          f.ld_lo = dz_prev_lo.ld;
          f.batch_lo = N * dz_prev_lo.ld;
        }
        const TcKind kind = gemm_kind(lo, p, p.k);
        if (plan.sm90 && kind != TcKind::kTf32Align1) {
          // tf32 wgmma reads B K-major only: B = W'^T, a [S, wi, wo] copy made here (once
          // per layer and backward call; width x width per signal). bf16 reads W' itself.
          TcGemm q = p;
          TcLayout layout = TcLayout::kRR;
          at::Tensor wt;
          if (!lo) {
            wt = plan.wf[l].transpose(1, 2).contiguous();
            q.b = ptr(wt);
            q.ldb = wo;
            q.batch_b = wi * wo;
            layout = TcLayout::kRC;
          }
          if (tc_gemm_gate_sm90_can_run(kind, layout, q, f)) {
            check_tc(tc_gemm_gate_sm90_run(kind, layout, q, f, plan.stream));
            g_sm90_backward_launches.fetch_add(1, std::memory_order_relaxed);
            gated = true;
          }
        }
        if (!gated && tc_gemm_fused_can_run(kind, TcEpilogue::kGate, p, f)) {
          check_tc(tc_gemm_fused_run(kind, TcEpilogue::kGate, p, f, plan.stream));
          gated = true;
        }
      }
      if (!gated) {
        // dh = dz_l W'_l: [S, N, ld_dh]
        at::Tensor dh;
        int64_t ld_dh = wi;
        if (eng == Gemm::kAten) {
          dh = at::bmm(dz.view({S, N, wo}), plan.wf[l]);
        } else {
          ld_dh = lo ? round8(wi) : wi;
          dh = at::empty({S, N, ld_dh}, opts);
          TcGemm p;
          p.m = static_cast<int>(N);
          p.n = static_cast<int>(ld_dh);
          p.k = static_cast<int>(lo ? dz_lo.ld : wo);
          p.a = lo ? ptr(dz_lo.t) : ptr(dz);
          p.lda = lo ? dz_lo.ld : wo;
          p.batch_a = N * p.lda;
          p.b = lo ? ptr(plan.wlo[l]) : ptr(plan.wf[l]);
          p.ldb = ld_dh;
          p.batch_b = lo ? round8(wo) * round8(wi) : wo * wi;
          p.d = dh.template data_ptr<float>();
          p.ldd = ld_dh;
          p.batch_d = N * ld_dh;
          p.batches = static_cast<int>(S);
          const TcKind kind = gemm_kind(lo, p, p.k);
          run_tc(kind, TcLayout::kRR, p, false, x, plan);
        }
        // Gate: dz_{l-1} = dh * cos z_{l-1}; h_{l-1} = sin z_{l-1} as layer l's dW operand.
        // dz_{l-1} in T unless layer l-1 is bf16 and layer l writes bf16 (then only its
        // bf16 operand); a T gate above a bf16 layer writes T, then copies it to bf16.
        const Shape3 sh{S, N, wi};
        Act<T> dz_act{};
        if (!lo_prev || !lo) {
          dz_prev = cat_prev ? at::empty({N, S * wi}, opts)
                    : ld_dh == wi ? dh  // in place
                                  : at::empty({S, N, wi}, opts);
          T* dp = dz_prev.template data_ptr<T>();
          dz_act = cat_prev ? Act<T>{dp, wi, S * wi} : act_contiguous(dp, N, wi);
        }
        const T* zp = z[l - 1].template data_ptr<T>();
        if (lo) {  // bf16 h operand (and a bf16 dz operand for a bf16 layer below)
          cuda_ok(launch_gate<T, bf16>(
              cact_of<T>(dh, N, ld_dh), zp, sh, dz_act,
              lo_prev ? operand_act<bf16>(dz_prev_lo, N, wi, cat_prev) : Act<bf16>{},
              operand_act<bf16>(in, N, wi, false), plan.stream));
        } else {
          cuda_ok(launch_gate<T, T>(cact_of<T>(dh, N, ld_dh), zp, sh, dz_act, Act<T>{},
                                    operand_act<T>(in, N, wi, false), plan.stream));
          if (lo_prev) {
            cuda_ok(launch_copy<T, bf16>(
                Act<const T>{dz_act.p, dz_act.s_stride, dz_act.n_stride}, sh,
                operand_act<bf16>(dz_prev_lo, N, wi, cat_prev), plan.stream));
          }
        }
        if (lo_prev) dz_prev = at::Tensor();
      }
    } else if (lo || 2 * wi + 1 <= rows) {
      // x into a ones-column operand: bf16 layers convert x anyway; otherwise only when
      // writing the copy costs less than reading dz once more for db (x narrow next to dz,
      // e.g. coordinates into a wide first layer).
      const int64_t sx = g.shared_x ? 1 : S;
      in = new_dw_operand(x, sx, N, wi, lo);
      const Shape3 sh{sx, N, wi};
      if (lo) {
        cuda_ok(launch_copy(cact_of<T>(x, N, wi), sh, operand_act<bf16>(in, N, wi, false),
                            plan.stream));
      } else {
        cuda_ok(launch_copy(cact_of<T>(x, N, wi), sh, operand_act<T>(in, N, wi, false),
                            plan.stream));
      }
    } else {
      in.t = x;
      in.ld = wi;
    }

    // dW_l = scale * dz_l^T in_l -> dw [B, M, in.ld] (B = 1 for the concatenated layout,
    // M >= rows for bf16's padded rows). With the ones column, the same GEMM gives
    // db_l = scale * column sums of dz_l as column wi.
    at::Tensor dw;
    if (eng == Gemm::kAten) {
      dw = cat ? at::mm(dz.t(), in.t.view({N, in.ld})).unsqueeze(0)
               : at::bmm(dz.view({S, N, wo}).transpose(1, 2), in.t.view({S, N, in.ld}));
      if (scale != 1.0) dw.mul_(scale);
    } else {
      TcGemm p;
      p.m = static_cast<int>(lo ? (cat ? dz_lo.ld : round8(wo)) : rows);
      p.n = static_cast<int>(in.ld);
      p.k = static_cast<int>(N);
      p.lda = lo ? dz_lo.ld : rows;
      p.ldb = in.ld;
      p.ldd = in.ld;
      p.alpha = static_cast<float>(scale);
      dw = at::empty({cat ? 1 : S, p.m, p.n}, opts);
      // Signals as one batched launch when they fill the GPU, else one launch per signal
      // with serial split-K over the points (fixed-order, deterministic).
      const int64_t per_signal = cat ? 1 : S;
      const int64_t tiles = ((p.m + 127) / 128) * ((p.n + 127) / 128);
      const bool batched = per_signal > 1 && per_signal * tiles >= plan.sms;
      auto launch_dw = [&](int64_t s, int batches) {
        const int64_t a_off = s * N * p.lda;
        const int64_t b_off = s * N * in.ld;  // l == 0 with a shared x is concatenated (s = 0)
        p.a = lo ? static_cast<const void*>(static_cast<const bf16*>(ptr(dz_lo.t)) + a_off)
                 : static_cast<const void*>(dz.template data_ptr<T>() + a_off);
        p.b = lo ? static_cast<const void*>(static_cast<const bf16*>(ptr(in.t)) + b_off)
                 : static_cast<const void*>(static_cast<const T*>(ptr(in.t)) + b_off);
        p.d = dw.template data_ptr<float>() + s * p.m * p.n;
        p.batches = batches;
        p.batch_a = batches > 1 ? N * p.lda : 0;
        p.batch_b = batches > 1 ? N * in.ld : 0;
        p.batch_d = batches > 1 ? int64_t{p.m} * p.n : 0;
        const TcKind kind = gemm_kind(lo, p, p.m);
        run_tc(kind, TcLayout::kCR, p, batches == 1, x, plan);
      };
      if (batched) {
        launch_dw(0, static_cast<int>(per_signal));
      } else {
        for (int64_t s = 0; s < per_signal; ++s) launch_dw(s, 1);
      }
    }
    const at::Tensor dw3 = cat ? dw.view({dw.size(1), in.ld}).narrow(0, 0, S * wo)
                                     .view({S, wo, in.ld})
                               : dw.narrow(1, 0, wo);  // [S, wo, in.ld]
    grad_w[l] = dw3.narrow(2, 0, wi).contiguous();
    if (in.ones) {
      grad_b[l] = dw3.select(2, wi).contiguous();
    } else {  // x used in place: one fixed-order ATen reduction (no atomics)
      grad_b[l] = cat ? dz.sum(0).view({S, wo}) : dz.view({S, N, wo}).sum(1);
      if (scale != 1.0) grad_b[l].mul_(scale);
    }

    if (l == 0) {
      if (need_x_grad) {
        // grad_x = dz_0 W'_0: one GEMM over the concatenated weights for a shared x.
        if (eng == Gemm::kAten) {
          if (cat) {
            at::mm_out(grad_x, dz, plan.wf[0].view({S * wo, wi}));
          } else {
            at::bmm_out(grad_x, dz.view({S, N, wo}), plan.wf[0]);
          }
        } else {
          const int64_t ld = lo ? round8(wi) : wi;
          at::Tensor dst = ld == wi ? grad_x
                           : cat  ? at::empty({N, ld}, opts)
                                  : at::empty({S, N, ld}, opts);
          TcGemm p;
          p.m = static_cast<int>(N);
          p.n = static_cast<int>(ld);
          p.k = static_cast<int>(lo ? dz_lo.ld : rows);
          p.a = lo ? ptr(dz_lo.t) : ptr(dz);
          p.lda = lo ? dz_lo.ld : rows;
          p.batch_a = cat ? 0 : N * p.lda;
          p.b = lo ? ptr(plan.wlo[0]) : ptr(plan.wf[0]);
          p.ldb = ld;
          p.batch_b = cat ? 0 : lo ? round8(wo) * ld : wo * wi;
          p.d = dst.template data_ptr<float>();
          p.ldd = ld;
          p.batch_d = cat ? 0 : N * ld;
          p.batches = cat ? 1 : static_cast<int>(S);
          const TcKind kind = gemm_kind(lo, p, p.k);
          run_tc(kind, TcLayout::kRR, p, false, x, plan);
          if (ld != wi) grad_x.copy_(dst.narrow(-1, 0, wi));
        }
      }
      break;
    }
    dz = dz_prev;
    dz_lo = dz_prev_lo;
  }
  return {grad_x, grad_w, grad_b};
}

std::tuple<at::Tensor, TensorVec> fused_mlp_forward_cuda(const at::Tensor& x,
                                                         at::TensorList weights,
                                                         at::TensorList biases,
                                                         at::ArrayRef<double> omegas,
                                                         bool last_linear, bool save,
                                                         int64_t precision) {
  const MlpGeometry g = check_mlp_args(x, weights, biases, omegas, precision);
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_mlp_forward_cuda", [&] {
    return forward_impl<scalar_t>(x, weights, biases, omegas, last_linear, save, precision, g);
  });
}

// saved: the pre-activation z [S, N, w_{l+1}] of every sine layer; grad_out [S, N, out].
std::tuple<at::Tensor, TensorVec, TensorVec> fused_mlp_backward_cuda(
    const at::Tensor& grad, const at::Tensor& x, at::TensorList weights, at::TensorList biases,
    at::TensorList saved, at::ArrayRef<double> omegas, bool last_linear, bool need_x_grad,
    int64_t precision) {
  const MlpGeometry g = check_mlp_args(x, weights, biases, omegas, precision);
  check_saved_preactivations(grad, x, saved, last_linear, g);
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_mlp_backward_cuda", [&] {
    return backward_impl<scalar_t>(grad, x, weights, saved, omegas, last_linear, need_x_grad,
                                   precision, g);
  });
}

}  // namespace

// GEMMs the sm_90a kernels have run in this process (fused forward; backward: dX with
// the gate, bf16 dW); -1 when this binary lacks the sm_90a kernels. Declared in bindings.cpp.
int64_t sm90_forward_launches() {
  return tc_sm90_built() ? g_sm90_forward_launches.load(std::memory_order_relaxed) : -1;
}
int64_t sm90_backward_launches() {
  return tc_sm90_built() ? g_sm90_backward_launches.load(std::memory_order_relaxed) : -1;
}

TORCH_LIBRARY_IMPL(strainer_fast, CUDA, m) {
  m.impl("fused_mlp_forward", &fused_mlp_forward_cuda);
  m.impl("fused_mlp_backward", &fused_mlp_backward_cuda);
}

}  // namespace strainer_fast::cuda
