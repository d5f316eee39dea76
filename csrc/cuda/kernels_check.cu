// Torch-free compile check of the elementwise kernels (mlp_elementwise.cuh) for every
// element/operand type the launcher uses. Built by `make cuda-check` together with
// tc_gemm_sm80.cu and tc_gemm_fused_sm80.cu (the CUTLASS GEMMs) and, when torch is
// importable, the launcher.
#include "mlp_elementwise.cuh"

namespace strainer_fast::cuda {

#define SF_CHECK_EW(T, Op)                                                                     \
  template cudaError_t launch_first_layer<T, Op>(const T*, int64_t, int, const T*, const T*,   \
                                                 Shape3, bool, Act<Op>, T*, cudaStream_t);     \
  template cudaError_t launch_bias_act<T, Op>(Act<const T>, const T*, Shape3, bool, Act<Op>,   \
                                              T*, cudaStream_t);                               \
  template cudaError_t launch_gate<T, Op>(Act<const T>, const T*, Shape3, Act<T>, Act<Op>,     \
                                          Act<Op>, cudaStream_t);                              \
  template cudaError_t launch_copy<T, Op>(Act<const T>, Shape3, Act<Op>, cudaStream_t);

SF_CHECK_EW(float, float)
SF_CHECK_EW(float, __nv_bfloat16)
SF_CHECK_EW(double, double)
SF_CHECK_EW(double, __nv_bfloat16)
#undef SF_CHECK_EW

}  // namespace strainer_fast::cuda
