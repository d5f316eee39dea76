// The tensor-core GEMM problem descriptions of tc_gemm.h (kinds, layouts, extents, fused
// epilogue operands) as plain C++, free of CUDA and torch, so that the dispatch rules
// (../dispatch.h) compile into CPU builds too.
#pragma once

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

enum class TcEpilogue { kBiasSine, kGate };

struct TcFused {
  const float* bias = nullptr;  // kBiasSine: [batches][n] at batch_bias
  int64_t batch_bias = 0;
  const float* z_in = nullptr;  // kGate: [batches][m, ldz]
  int64_t ldz = 0, batch_z = 0;
  void* h = nullptr;  // [batches][m, ldh]: float (kTf32) or bf16 bits (kBf16)
  int64_t ldh = 0, batch_h = 0;
  void* d_lo = nullptr;  // kGate, kBf16: bf16 bits [batches][m, ld_lo]
  int64_t ld_lo = 0, batch_lo = 0;
};

}  // namespace strainer_fast::cuda
