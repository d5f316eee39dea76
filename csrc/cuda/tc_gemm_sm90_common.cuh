// Pieces shared by the sm_90a translation units (tc_gemm_sm90.cu: fused forward;
// tc_gemm_sm90_backward.cu: dX with the cos gate, bf16 dW). Only included where
// STRAINER_FAST_SM90_KERNELS is defined (compiled for sm_90a alone). Torch-free.
#pragma once

#include <cutlass/cutlass.h>
#include <cutlass/kernel_hardware_info.h>
#include <cutlass/numeric_types.h>

#include <cstdint>

#include "tc_gemm.h"

namespace strainer_fast::cuda::sm90 {

using namespace cute;

// Operand element and CTA tile (M x N x K) per kind: 128 bytes of K per stage row.
template <TcKind K>
struct Kind;
template <>
struct Kind<TcKind::kTf32> {
  using Element = float;  // read as TF32 by wgmma (K-major operands only)
  using Tile = Shape<_128, _128, _32>;
};
template <>
struct Kind<TcKind::kBf16> {
  using Element = cutlass::bfloat16_t;
  using Tile = Shape<_128, _128, _64>;
};

// The current device and its SM count, for the persistent tile schedulers.
inline cutlass::KernelHardwareInfo hardware_info() {
  cutlass::KernelHardwareInfo hw{};
  int device = 0;
  int sms = 0;
  if (cudaGetDevice(&device) == cudaSuccess &&
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) == cudaSuccess) {
    hw.device_id = device;
    hw.sm_count = sms;
  }
  return hw;
}

// Runs a GemmUniversalAdapter on `stream`; nullptr on success.
template <class Op>
const char* run_op(const typename Op::Arguments& args, void* workspace, cudaStream_t stream) {
  Op op;
  cutlass::Status status = op.initialize(args, workspace, stream);
  if (status == cutlass::Status::kSuccess) status = op.run(stream);
  return status == cutlass::Status::kSuccess ? nullptr : cutlassGetStatusString(status);
}

}  // namespace strainer_fast::cuda::sm90
