// CPU entry points of the tile transposes and bf16 conversions
// (csrc/kernels/bf16.h), compiled once per x86 ISA level.
#pragma once

#include <cstdint>

namespace strainer_fast::cpu {

// dst[r, c] = bf16(src[r, c]); columns cols..ldd-1 zeroed.
void to_bf16_rows(const float* src, int64_t lds, int64_t rows, int64_t cols, uint16_t* dst,
                  int64_t ldd);
// dst[c, r] = bf16(src[r, c]); rows..ldd-1 zeroed.
void to_bf16_transposed(const float* src, int64_t lds, int64_t rows, int64_t cols, uint16_t* dst,
                        int64_t ldd);
// dst[c, r] = scale * src[r, c]; rows..ldd-1 zeroed.
void transpose_f32(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                   int64_t ldd, float scale = 1.0f);
// VNNI-packs a [k_rows, n] B operand (see kernels::pack_vnni).
void pack_vnni(const float* src, int64_t lds, int64_t k_rows, int64_t n, uint16_t* dst);

}  // namespace strainer_fast::cpu
