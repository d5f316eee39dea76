// CPU entry points of the tile epilogues (csrc/kernels/epilogue.h), compiled
// once per x86 ISA level and dispatched at load time.
#pragma once

#include <cstdint>

namespace strainer_fast::cpu {

template <typename T>
void sine_epilogue(const T* z, int64_t ldz, const T* bias, int64_t rows, int64_t cols, T* h,
                   int64_t ldh, T* cosv, int64_t ldc);

template <typename T>
void bias_epilogue(const T* z, int64_t ldz, const T* bias, int64_t rows, int64_t cols, T* out,
                   int64_t ldo);

template <typename T>
void gate(const T* g, int64_t ldg, const T* cosv, int64_t ldc, int64_t rows, int64_t cols, T* dz,
          int64_t ldz, T* db);

template <typename T>
void colsum(const T* g, int64_t ldg, int64_t rows, int64_t cols, T* db);

}  // namespace strainer_fast::cpu
