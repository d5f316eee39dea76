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

#include <array>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "../dispatch.h"
#include "../mlp_args.h"
#include "mlp_elementwise.cuh"
#include "tc_gemm.h"

namespace strainer_fast::cuda {
namespace {

using TensorVec = std::vector<at::Tensor>;
using bf16 = __nv_bfloat16;
// The dispatch rules (engines, GEMM problems, kinds, split-K, batching, alignment) live in
// ../dispatch.h, shared with dispatch::plan_launches, which replays this file's control
// flow on host data; keep the two in step (python_tests/test_dispatch.py, and on a GPU
// test_cuda.py::test_branch_counters_match_the_plan, compare them).
using dispatch::Engine;
using dispatch::Role;
using dispatch::Site;
using dispatch::round4;
using dispatch::round8;
using Gemm = Engine;

// A function, not the macro: launcher calls carry template argument lists (commas).
void cuda_ok(cudaError_t err) { C10_CUDA_CHECK(err); }

int device_attribute(cudaDeviceAttr attr, int device) {
  int value = 0;
  cuda_ok(cudaDeviceGetAttribute(&value, attr, device));
  return value;
}

// Launches per branch (dispatch::branch_id) in this process, for tests and the self-check.
std::array<std::atomic<int64_t>, dispatch::kBranches> g_branch_counts{};

void count(int branch) { g_branch_counts[branch].fetch_add(1, std::memory_order_relaxed); }

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
    dispatch::check_limits(g.signals, g.points);
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
    for (int64_t l = 0; l < g.layers; ++l) {
      gemm.push_back(dispatch::layer_engine(precision, g.widths[l]));
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
  bool first_layer_kernel() const { return dispatch::first_layer_kernel(g.widths[0]); }
  double scale(int64_t l, at::ArrayRef<double> omegas) const {
    return g.sine(l, last_linear) ? omegas[l] : 1.0;
  }
};

const void* ptr(const at::Tensor& t) { return t.data_ptr(); }

void check_tc(const char* err) { TORCH_CHECK(err == nullptr, err); }

using dispatch::gemm_kind;

// Runs a tensor-core GEMM at `site`, on the sm_90a kernel where plan.sm90 and it takes the
// problem (bf16 dW), else on the sm80 one; `split` allows deterministic split-K
// (single-batch problems only; both kernels' tiles are 128 x 128).
template <typename T>
void run_tc(TcKind kind, TcLayout layout, TcGemm p, bool split, Site site,
            const at::Tensor& like, const Plan<T>& plan) {
  dispatch::set_splits(p, split, plan.sms);
  const bool sm90 = plan.sm90 && tc_gemm_sm90_can_run(kind, layout, p);
  count(dispatch::branch_id(dispatch::gemm_role(site, sm90, p), kind));
  const size_t bytes = sm90 ? tc_gemm_sm90_workspace_bytes(kind, layout, p)
                            : tc_gemm_workspace_bytes(kind, layout, p);
  at::Tensor workspace;
  if (bytes > 0) {
    workspace = at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
  }
  void* ws = bytes > 0 ? workspace.data_ptr() : nullptr;
  if (sm90) {
    check_tc(tc_gemm_sm90_run(kind, layout, p, ws, plan.stream));
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
      count(dispatch::branch_id(Role::kFwdFirstLayer));
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
        count(dispatch::branch_id(Role::kFwdAten));
        zbuf = cat ? at::mm(x, plan.wf[0].view({S * wo, wi}).t())
                   : at::bmm(in.t.view({S, N, wi}), plan.wf[l].transpose(1, 2));
      } else {
        zbuf = cat ? at::empty({N, S * wo}, opts) : at::empty({S, N, wo}, opts);
        const bool lo = plan.gemm[l] == Gemm::kBf16;
        TcGemm p = dispatch::forward_gemm(S, N, wi, wo, lo, cat, in.ld);
        p.a = ptr(in.t);
        p.b = lo ? ptr(plan.wlo[l]) : ptr(plan.wf[l]);
        p.d = zbuf.template data_ptr<float>();
        const TcKind kind = gemm_kind(lo, p, p.k);
        // A sine layer feeding a GEMM of the same kind: bias + sine in the GEMM's epilogue
        // (z -> zbuf, sin z -> the next operand), when the fused kernel takes the problem.
        if (sine && !cat && l < L - 1 && next.lo == lo) {
          TcFused f = dispatch::forward_fused(N, wo, next.ld);
          f.bias = bfold.template data_ptr<float>();
          f.h = next.t.data_ptr();
          if (plan.sm90 && tc_gemm_fused_sm90_can_run(kind, p, f)) {
            count(dispatch::branch_id(Role::kFwdFusedSm90, kind));
            check_tc(tc_gemm_fused_sm90_run(kind, p, f, plan.stream));
            fused = true;
          } else if (tc_gemm_fused_can_run(kind, TcEpilogue::kBiasSine, p, f)) {
            count(dispatch::branch_id(Role::kFwdFusedSm80, kind));
            check_tc(tc_gemm_fused_run(kind, TcEpilogue::kBiasSine, p, f, plan.stream));
            fused = true;
          }
        }
        if (!fused) run_tc(kind, TcLayout::kRC, p, false, cat ? Site::kFwdCat : Site::kFwd, x, plan);
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
    if (cat) {
      count(plan.gemm[l] == Gemm::kBf16 ? dispatch::branch_id(Role::kBwdDzCat, TcKind::kBf16)
                                        : dispatch::branch_id(Role::kBwdDzCat));
    }
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
        TcGemm p = dispatch::dx_gemm(S, N, wi, wo, lo, lo ? dz_lo.ld : wo, wi);
        p.a = lo ? ptr(dz_lo.t) : ptr(dz);
        p.b = lo ? ptr(plan.wlo[l]) : ptr(plan.wf[l]);
        p.d = lo ? nullptr : dz_prev.template data_ptr<float>();
        TcFused f = dispatch::gate_fused(N, wi, in.ld, lo ? dz_prev_lo.ld : 0);
        f.z_in = z[l - 1].template data_ptr<float>();
        f.h = in.t.data_ptr();
        if (lo) f.d_lo = dz_prev_lo.t.data_ptr();
        const TcKind kind = gemm_kind(lo, p, p.k);
        if (plan.sm90 && kind != TcKind::kTf32Align1) {
          // tf32 wgmma reads B K-major only: B = W'^T, a [S, wi, wo] copy made here (once
          // per layer and backward call; width x width per signal). bf16 reads W' itself.
          TcGemm q = p;
          const TcLayout layout = dispatch::gate_sm90_problem(lo, wi, wo, q);
          at::Tensor wt;
          if (!lo) {
            wt = plan.wf[l].transpose(1, 2).contiguous();
            q.b = ptr(wt);
          }
          if (tc_gemm_gate_sm90_can_run(kind, layout, q, f)) {
            count(dispatch::branch_id(Role::kBwdGateSm90, kind));
            check_tc(tc_gemm_gate_sm90_run(kind, layout, q, f, plan.stream));
            gated = true;
          }
        }
        if (!gated && tc_gemm_fused_can_run(kind, TcEpilogue::kGate, p, f)) {
          count(dispatch::branch_id(Role::kBwdGateSm80, kind));
          check_tc(tc_gemm_fused_run(kind, TcEpilogue::kGate, p, f, plan.stream));
          gated = true;
        }
      }
      if (!gated) {
        // dh = dz_l W'_l: [S, N, ld_dh]
        at::Tensor dh;
        int64_t ld_dh = wi;
        if (eng == Gemm::kAten) {
          count(dispatch::branch_id(Role::kBwdDxAten));
          dh = at::bmm(dz.view({S, N, wo}), plan.wf[l]);
        } else {
          ld_dh = lo ? round8(wi) : wi;
          dh = at::empty({S, N, ld_dh}, opts);
          TcGemm p = dispatch::dx_gemm(S, N, wi, wo, lo, lo ? dz_lo.ld : wo, ld_dh);
          p.a = lo ? ptr(dz_lo.t) : ptr(dz);
          p.b = lo ? ptr(plan.wlo[l]) : ptr(plan.wf[l]);
          p.d = dh.template data_ptr<float>();
          const TcKind kind = gemm_kind(lo, p, p.k);
          run_tc(kind, TcLayout::kRR, p, false, Site::kDx, x, plan);
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
        if (cat_prev) {
          count(lo_prev ? dispatch::branch_id(Role::kBwdDzCat, TcKind::kBf16)
                        : dispatch::branch_id(Role::kBwdDzCat));
        }
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
    } else if (dispatch::dw_ones_copy(lo, wi, rows)) {
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
      count(dispatch::branch_id(Role::kBwdDwAten));
      dw = cat ? at::mm(dz.t(), in.t.view({N, in.ld})).unsqueeze(0)
               : at::bmm(dz.view({S, N, wo}).transpose(1, 2), in.t.view({S, N, in.ld}));
      if (scale != 1.0) dw.mul_(scale);
    } else {
      const int64_t m = lo ? (cat ? dz_lo.ld : round8(wo)) : rows;
      const int64_t lda = lo ? dz_lo.ld : rows;
      dw = at::empty({cat ? 1 : S, m, in.ld}, opts);
      // Signals as one batched launch when they fill the GPU, else one launch per signal
      // with serial split-K over the points (fixed-order, deterministic).
      const int64_t per_signal = cat ? 1 : S;
      const bool batched = dispatch::dw_batched(per_signal, m, in.ld, plan.sms);
      auto launch_dw = [&](int64_t s, int64_t batches) {
        // l == 0 with a shared x is concatenated (s = 0 only)
        const dispatch::DwLaunch d = dispatch::dw_launch(N, m, lda, in.ld, s, batches);
        TcGemm p = d.p;
        p.alpha = static_cast<float>(scale);
        p.a = lo ? static_cast<const void*>(static_cast<const bf16*>(ptr(dz_lo.t)) + d.a_off)
                 : static_cast<const void*>(dz.template data_ptr<T>() + d.a_off);
        p.b = lo ? static_cast<const void*>(static_cast<const bf16*>(ptr(in.t)) + d.b_off)
                 : static_cast<const void*>(static_cast<const T*>(ptr(in.t)) + d.b_off);
        p.d = dw.template data_ptr<float>() + d.d_off;
        const TcKind kind = gemm_kind(lo, p, p.m);
        run_tc(kind, TcLayout::kCR, p, batches == 1, cat ? Site::kDwCat : Site::kDw, x, plan);
      };
      if (batched) {
        launch_dw(0, per_signal);
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
      count(dispatch::branch_id(Role::kBwdDbAten));
      grad_b[l] = cat ? dz.sum(0).view({S, wo}) : dz.view({S, N, wo}).sum(1);
      if (scale != 1.0) grad_b[l].mul_(scale);
    }

    if (l == 0) {
      if (need_x_grad) {
        // grad_x = dz_0 W'_0: one GEMM over the concatenated weights for a shared x.
        if (eng == Gemm::kAten) {
          count(dispatch::branch_id(Role::kBwdDx0Aten));
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
          TcGemm p = dispatch::dx0_gemm(S, N, wi, wo, lo, cat, lo ? dz_lo.ld : rows, ld);
          p.a = lo ? ptr(dz_lo.t) : ptr(dz);
          p.b = lo ? ptr(plan.wlo[0]) : ptr(plan.wf[0]);
          p.d = dst.template data_ptr<float>();
          const TcKind kind = gemm_kind(lo, p, p.k);
          run_tc(kind, TcLayout::kRR, p, false, cat ? Site::kDx0Cat : Site::kDx0, x, plan);
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

// Launches per branch (dispatch::branch_id) in this process. Declared in bindings.cpp.
std::vector<int64_t> branch_counts() {
  std::vector<int64_t> out;
  for (const auto& c : g_branch_counts) out.push_back(c.load(std::memory_order_relaxed));
  return out;
}
bool sm90_built() { return tc_sm90_built(); }

TORCH_LIBRARY_IMPL(strainer_fast, CUDA, m) {
  m.impl("fused_mlp_forward", &fused_mlp_forward_cuda);
  m.impl("fused_mlp_backward", &fused_mlp_backward_cuda);
}

}  // namespace strainer_fast::cuda
