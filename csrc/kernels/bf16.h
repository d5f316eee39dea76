// Torch-free tile transposes, bfloat16 conversion and packing for the GEMM operands.
//
// "VNNI" is the layout bf16 dot-product instructions read a GEMM's B operand
// [K, N] in: pairs of consecutive K rows interleaved,
// dst[(k / 2) * 2N + 2j + (k % 2)] = B(k, j), with K padded to even by zeros.
#pragma once

#include <cstdint>
#include <cstring>

namespace strainer_fast::kernels {

// Round-to-nearest-even float -> bf16 bits (finite inputs; NaN stays NaN).
inline uint16_t to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  const uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(nan ? ((u >> 16) | 0x40u) : (rounded >> 16));
}

inline int64_t round_up_even(int64_t k) { return (k + 1) & ~int64_t{1}; }

// dst[r, c] = bf16(src[r, c]) for c < cols; zero for cols <= c < ldd.
inline void to_bf16_rows(const float* src, int64_t lds, int64_t rows, int64_t cols, uint16_t* dst,
                         int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * lds;
    uint16_t* d = dst + r * ldd;
    for (int64_t c = 0; c < cols; ++c) d[c] = to_bf16_bits(s[c]);
    for (int64_t c = cols; c < ldd; ++c) d[c] = 0;
  }
}

// dst[c, r] = convert(src[r, c]) (a blocked transpose) for r < rows; zero for rows <= r < ldd.
template <typename In, typename Out, typename Convert>
inline void transpose_tile(const In* src, int64_t lds, int64_t rows, int64_t cols, Out* dst,
                           int64_t ldd, Convert convert) {
  constexpr int64_t kBlock = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t r1 = r0 + kBlock < rows ? r0 + kBlock : rows;
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      const int64_t c1 = c0 + kBlock < cols ? c0 + kBlock : cols;
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t r = r0; r < r1; ++r) dst[c * ldd + r] = convert(src[r * lds + c]);
      }
    }
  }
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t r = rows; r < ldd; ++r) dst[c * ldd + r] = Out{0};
  }
}

inline void to_bf16_transposed(const float* src, int64_t lds, int64_t rows, int64_t cols,
                               uint16_t* dst, int64_t ldd) {
  transpose_tile(src, lds, rows, cols, dst, ldd, to_bf16_bits);
}

// VNNI-packs B(k, j) = src[k * lds + j], k < K, j < N. Rows are taken in pairs so the
// inner loop writes contiguous (even, odd) bf16 pairs; an odd last row pairs with zeros.
inline void pack_vnni(const float* src, int64_t lds, int64_t k_rows, int64_t n, uint16_t* dst) {
  for (int64_t k = 0; k < k_rows; k += 2) {
    uint16_t* d = dst + k * n;
    const float* s0 = src + k * lds;
    if (k + 1 < k_rows) {
      const float* s1 = s0 + lds;
      for (int64_t j = 0; j < n; ++j) {
        d[2 * j] = to_bf16_bits(s0[j]);
        d[2 * j + 1] = to_bf16_bits(s1[j]);
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        d[2 * j] = to_bf16_bits(s0[j]);
        d[2 * j + 1] = 0;
      }
    }
  }
}

}  // namespace strainer_fast::kernels
