// The one binding file: declares the op schemas (TORCH_LIBRARY) and the small
// pybind11 module `strainer_fast._C` whose import loads every kernel.
#include <cpuinfo.h>
#include <cstdint>
#include <pybind11/pybind11.h>
#include <torch/library.h>

#include "cpu/buffer_pool.h"

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
int64_t sm90_forward_launches();   // fused_mlp_cuda.cu
int64_t sm90_backward_launches();  // fused_mlp_cuda.cu
}  // namespace strainer_fast::cuda
#endif

namespace {
int64_t cuda_sm90_forward_launches() {
#ifdef STRAINER_FAST_WITH_CUDA
  return strainer_fast::cuda::sm90_forward_launches();
#else
  return -1;
#endif
}
int64_t cuda_sm90_backward_launches() {
#ifdef STRAINER_FAST_WITH_CUDA
  return strainer_fast::cuda::sm90_backward_launches();
#else
  return -1;
#endif
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
  m.def("cpu_has_native_bf16", &cpu_has_native_bf16,
        "True when this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX).");
  m.def("cpu_cache_bytes", &strainer_fast::cpu::cached_bytes,
        "Bytes of freed CPU buffers the fused ops keep for reuse.");
  m.def("empty_cpu_cache", &strainer_fast::cpu::empty_cache,
        "Returns the fused ops' cached CPU buffers to the system.");
}
