// The one binding file: declares the op schemas (TORCH_LIBRARY) and the small
// pybind11 module `strainer_fast._C` whose import loads every kernel.
#include <cpuinfo.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/library.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/buffer_pool.h"
#include "dispatch.h"

TORCH_LIBRARY(strainer_fast, m) {
  // A stack of S sine MLPs of one shape. x: [N, in] (shared) or [S, N, in];
  // weights[l]: [S, out_l, in_l]; biases[l]: [S, out_l]; precision: 0 exact, 1 bf16,
  // 2 tf32. Returns the output [S, N, out] plus what backward needs, which depends on
  // the device: CPU: the hidden activations then the sine layers' cosines; CUDA: the
  // sine layers' pre-activations z (sin and cos are recomputed from them).
  m.def(
      "fused_mlp_forward(Tensor x, Tensor[] weights, Tensor[] biases, float[] omegas, "
      "bool last_linear, bool save_for_backward, int precision) -> (Tensor out, Tensor[] saved)");
  // Returns (grad_x or an empty tensor, grad_weights, grad_biases).
  m.def(
      "fused_mlp_backward(Tensor grad_out, Tensor x, Tensor[] weights, Tensor[] biases, "
      "Tensor[] saved, float[] omegas, bool last_linear, bool need_x_grad, int precision) -> "
      "(Tensor grad_x_or_empty, Tensor[] grad_weights, Tensor[] grad_biases)");
}

#ifdef STRAINER_FAST_WITH_CUDA
namespace strainer_fast::cuda {
std::vector<int64_t> branch_counts();  // fused_mlp_cuda.cu
bool sm90_built();                     // fused_mlp_cuda.cu
}  // namespace strainer_fast::cuda
#endif

namespace {
namespace dispatch = strainer_fast::dispatch;

// {branch name: launches so far} of the CUDA launcher; empty without the CUDA kernels.
std::map<std::string, int64_t> cuda_branch_counts() {
  std::map<std::string, int64_t> out;
#ifdef STRAINER_FAST_WITH_CUDA
  const std::vector<int64_t> counts = strainer_fast::cuda::branch_counts();
  for (int id = 0; id < dispatch::kBranches; ++id) {
    if (counts[id] != 0) out[dispatch::branch_name(id)] = counts[id];
  }
#endif
  return out;
}

// Launches so far of branches whose name starts with one of `prefixes`; -1 without the
// sm_90a kernels.
int64_t sm90_launches(std::initializer_list<const char*> prefixes) {
#ifdef STRAINER_FAST_WITH_CUDA
  if (!strainer_fast::cuda::sm90_built()) return -1;
  int64_t total = 0;
  for (const auto& [name, n] : cuda_branch_counts()) {
    for (const char* prefix : prefixes) {
      if (name.rfind(prefix, 0) == 0) total += n;
    }
  }
  return total;
#else
  return -1;
#endif
}
int64_t cuda_sm90_forward_launches() { return sm90_launches({"fwd.fused.sm90"}); }
int64_t cuda_sm90_backward_launches() { return sm90_launches({"bwd.gate.sm90", "bwd.dw.sm90"}); }

// (backward, layer, branch name) of every launch the CUDA launcher makes for a problem.
std::vector<std::tuple<bool, int64_t, std::string>> dispatch_plan(
    int64_t signals, int64_t points, std::vector<int64_t> widths, bool shared_x,
    bool last_linear, bool need_x_grad, int64_t precision, int64_t elem_bytes, int64_t sms,
    bool sm90) {
  dispatch::Problem q;
  q.signals = signals;
  q.points = points;
  q.widths = std::move(widths);
  q.shared_x = shared_x;
  q.last_linear = last_linear;
  q.need_x_grad = need_x_grad;
  q.precision = precision;
  q.elem_bytes = elem_bytes;
  q.sms = sms;
  q.sm90 = sm90;
  std::vector<std::tuple<bool, int64_t, std::string>> out;
  for (const auto& l : dispatch::plan_launches(q)) {
    out.emplace_back(l.backward, l.layer, dispatch::branch_name(l.branch));
  }
  return out;
}

std::vector<std::string> dispatch_branches() {
  std::vector<std::string> out;
  for (int id = 0; id < dispatch::kBranches; ++id) out.push_back(dispatch::branch_name(id));
  return out;
}

bool built_with_cuda() {
#ifdef STRAINER_FAST_WITH_CUDA
  return true;
#else
  return false;
#endif
}
bool cpu_has_native_bf16() {
  return cpuinfo_initialize() && (cpuinfo_has_x86_avx512bf16() || cpuinfo_has_x86_amx_bf16());
}
}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "strainer_fast compiled kernels (ops are under torch.ops.strainer_fast)";
  m.def("built_with_cuda", &built_with_cuda, "True when the CUDA kernels were compiled in.");
  m.def("cuda_sm90_forward_launches", &cuda_sm90_forward_launches,
        "Fused forward GEMMs run by the sm_90a (wgmma + TMA) kernel so far; -1 when this "
        "build lacks it.");
  m.def("cuda_sm90_backward_launches", &cuda_sm90_backward_launches,
        "Backward GEMMs (dX with the cos gate, bf16 dW) run by the sm_90a kernels so far; -1 "
        "when this build lacks them.");
  m.def("cuda_branch_counts", &cuda_branch_counts,
        "{branch name: launches so far} of the CUDA launcher (branches with none left out); "
        "empty without the CUDA kernels.");
  m.def("dispatch_branches", &dispatch_branches,
        "Every branch name of the CUDA launcher (a site, and a kernel kind where it has one).");
  m.def("dispatch_plan", &dispatch_plan, pybind11::arg("signals"), pybind11::arg("points"),
        pybind11::arg("widths"), pybind11::arg("shared_x"), pybind11::arg("last_linear"),
        pybind11::arg("need_x_grad"), pybind11::arg("precision"), pybind11::arg("elem_bytes"),
        pybind11::arg("sms"), pybind11::arg("sm90"),
        "(backward, layer, branch name) of every launch the CUDA launcher makes for one "
        "forward + backward of this problem (host-side rules of csrc/dispatch.h; no GPU).");
  m.def("cpu_has_native_bf16", &cpu_has_native_bf16,
        "True when this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX).");
  m.def("cpu_cache_bytes", &strainer_fast::cpu::cached_bytes,
        "Bytes of freed CPU buffers the fused ops keep for reuse.");
  m.def("empty_cpu_cache", &strainer_fast::cpu::empty_cache,
        "Returns the fused ops' cached CPU buffers to the system.");
}
