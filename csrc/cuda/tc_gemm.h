// Tensor-core GEMMs (TF32 or bf16 operands, fp32 accumulation and output) of the
// fused sine MLP's CUDA path. Plain C++ interface: the CUTLASS instantiations live
// in tc_gemm_sm80.cu, so neither torch nor CUTLASS headers meet here.
//
// D(m, n) = alpha * sum_k A(m, k) B(k, n), row-major D with leading dimension ldd.
// Layout kRC: A row-major [m, k], B column-major (B(k, n) = b[n * ldb + k]) -- forward;
//        kRR: A row-major, B row-major [k, n]                            -- dX;
//        kCR: A column-major (A(m, k) = a[k * lda + m]), B row-major      -- dW.
// Operands are float (kTf32*, read as TF32 by the tensor cores) or bf16 bits (kBf16).
// batches > 1: independent GEMMs at the given element strides. splits > 1 (with
// batches == 1): serial split-K over k; the k-slices add into D one after another in a
// fixed order (a semaphore per output tile), so results are deterministic.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace strainer_fast::cuda {

enum class TcKind { kTf32, kTf32Align1, kBf16 };
enum class TcLayout { kRC, kRR, kCR };

// Alignment (elements) a kind needs of m/n/k (per layout), leading dimensions and pointers.
constexpr int tc_alignment(TcKind kind) {
  return kind == TcKind::kBf16 ? 8 : kind == TcKind::kTf32 ? 4 : 1;
}

struct TcGemm {
  int m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0, batch_a = 0;
  const void* b = nullptr;
  int64_t ldb = 0, batch_b = 0;
  float* d = nullptr;
  int64_t ldd = 0, batch_d = 0;
  int batches = 1;
  int splits = 1;
  float alpha = 1.0f;
};

// Workspace bytes the GEMM needs (the serial split-K semaphores); 0 when none.
size_t tc_gemm_workspace_bytes(TcKind kind, TcLayout layout, const TcGemm& g);

// Runs the GEMM on `stream`. Returns nullptr on success, else a static error message
// (an unsupported problem, e.g. misaligned, or a failed launch).
const char* tc_gemm_run(TcKind kind, TcLayout layout, const TcGemm& g, void* workspace,
                        cudaStream_t stream);

}  // namespace strainer_fast::cuda
