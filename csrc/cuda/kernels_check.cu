// Torch-free compile check: instantiates every kernel (and host launcher) of
// sine_mlp_kernels.cuh for every precision. Built only by the CMake option
// STRAINER_FAST_CUDA_CHECK_ONLY (target strainer_cuda_kernels_check).
#include "sine_mlp_kernels.cuh"

namespace strainer_fast::cuda {

// GEMM shapes used by the launcher: forward (A, B^T), dX (A, B), dW (A^T, B).
#define SF_CHECK_GEMMS(T)                                                                 \
  template cudaError_t launch_gemm<T, false, true, Epi::kSine>(const GemmArgs<T>&, int64_t, \
                                                                bool, cudaStream_t);        \
  template cudaError_t launch_gemm<T, false, true, Epi::kAffine>(const GemmArgs<T>&,        \
                                                                  int64_t, bool, cudaStream_t); \
  template cudaError_t launch_gemm<T, false, false, Epi::kGate>(const GemmArgs<T>&, int64_t, \
                                                                 bool, cudaStream_t);       \
  template cudaError_t launch_gemm<T, false, false, Epi::kStore>(const GemmArgs<T>&,        \
                                                                  int64_t, bool, cudaStream_t); \
  template cudaError_t launch_gemm<T, true, false, Epi::kStore>(const GemmArgs<T>&, int64_t, \
                                                                 bool, cudaStream_t);       \
  template cudaError_t launch_reduce<T>(const T*, T*, int64_t, int, int64_t, T, cudaStream_t); \
  template void plan_splits<T>(GemmArgs<T>&, int64_t, bool, int64_t);

SF_CHECK_GEMMS(float)
SF_CHECK_GEMMS(double)
#undef SF_CHECK_GEMMS

// Every kernel template, all epilogues and operand layouts (exact fp32/fp64, bf16).
#define SF_CHECK_KERNELS(AT, BT, E)                                                        \
  template __global__ void gemm_simt_kernel<float, SimtTile<float>, AT, BT, E>(           \
      GemmArgs<float>);                                                                    \
  template __global__ void gemm_simt_kernel<double, SimtTile<double>, AT, BT, E>(         \
      GemmArgs<double>);                                                                   \
  template __global__ void gemm_bf16_kernel<AT, BT, E>(GemmArgs<float>);

#define SF_CHECK_EPILOGUES(AT, BT)            \
  SF_CHECK_KERNELS(AT, BT, Epi::kSine)        \
  SF_CHECK_KERNELS(AT, BT, Epi::kAffine)      \
  SF_CHECK_KERNELS(AT, BT, Epi::kGate)        \
  SF_CHECK_KERNELS(AT, BT, Epi::kStore)

SF_CHECK_EPILOGUES(false, false)
SF_CHECK_EPILOGUES(false, true)
SF_CHECK_EPILOGUES(true, false)
SF_CHECK_EPILOGUES(true, true)
#undef SF_CHECK_EPILOGUES
#undef SF_CHECK_KERNELS

template __global__ void reduce_splits_kernel<float>(const float*, float*, int64_t, int, int64_t,
                                                     float);
template __global__ void reduce_splits_kernel<double>(const double*, double*, int64_t, int,
                                                      int64_t, double);

}  // namespace strainer_fast::cuda
