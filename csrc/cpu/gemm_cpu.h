// Row-major GEMM on raw tile pointers, run on the calling thread:
// C[M,N] (+)= op(A) op(B), op(A) = A or A^T. Untransposed float tiles go to
// ATen's oneDNN micro-kernel (brgemm: no packing, fastest for in-cache tiles);
// the rest to ATen's BLAS (MKL/OpenBLAS), which packs transposed operands.
#pragma once

#include <ATen/ATen.h>
#include <ATen/native/CPUBlas.h>
#include <type_traits>

namespace strainer_fast::cpu {

template <typename T>
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a,
                 int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  if constexpr (std::is_same_v<T, float>) {
    if (!trans_a && !trans_b) {
      at::native::cpublas::brgemm(m, n, k, lda, ldb, ldc, accumulate, a, b, c, false);
      return;
    }
  }
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto view = [&](const T* p, bool trans, int64_t rows, int64_t cols, int64_t ld) {
    auto* q = const_cast<T*>(p);
    return trans ? at::from_blob(q, {cols, rows}, {ld, 1}, opts).t()
                 : at::from_blob(q, {rows, cols}, {ld, 1}, opts);
  };
  at::Tensor av = view(a, trans_a, m, k, lda);
  at::Tensor bv = view(b, trans_b, k, n, ldb);
  at::Tensor cv = at::from_blob(c, {m, n}, {ldc, 1}, opts);
  if (accumulate) {
    at::addmm_out(cv, cv, av, bv);
  } else {
    at::mm_out(cv, av, bv);
  }
}

}  // namespace strainer_fast::cpu
