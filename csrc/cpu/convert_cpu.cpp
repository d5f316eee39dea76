#include "convert_cpu.h"

#include "../kernels/bf16.h"
#include "isa_clones.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <cpuinfo.h>
#include <immintrin.h>
#define SF_NATIVE_BF16 1
#endif

namespace strainer_fast::cpu {
namespace k = strainer_fast::kernels;

namespace {

#ifdef SF_NATIVE_BF16
// AVX512-BF16 conversions (VCVTNE2PS2BF16: round to nearest even, like to_bf16_bits),
// used when the CPU has them; the portable loops below are the fallback.
#define SF_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

bool has_native_bf16() {
  static const bool ok = cpuinfo_initialize() && cpuinfo_has_x86_avx512bf16();
  return ok;
}

SF_TARGET_BF16 void rows_native(const float* src, int64_t lds, int64_t rows, int64_t cols,
                                uint16_t* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * lds;
    uint16_t* d = dst + r * ldd;
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32) {
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + c + 16), _mm512_loadu_ps(s + c));
      _mm512_storeu_si512(d + c, reinterpret_cast<const __m512i&>(v));
    }
    for (; c < cols; ++c) d[c] = k::to_bf16_bits(s[c]);
    for (; c < ldd; ++c) d[c] = 0;
  }
}

// d[2j] = bf16(s0[j]), d[2j + 1] = bf16(s1[j]) for j < n: one VNNI row pair.
SF_TARGET_BF16 void pair_native(const float* s0, const float* s1, int64_t n, uint16_t* d) {
  alignas(64) static constexpr uint16_t kInterleave[32] = {
      0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
      8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i idx = _mm512_load_si512(kInterleave);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s1 + j), _mm512_loadu_ps(s0 + j));
    _mm512_storeu_si512(d + 2 * j,
                        _mm512_permutexvar_epi16(idx, reinterpret_cast<const __m512i&>(v)));
  }
  for (; j < n; ++j) {
    d[2 * j] = k::to_bf16_bits(s0[j]);
    d[2 * j + 1] = k::to_bf16_bits(s1[j]);
  }
}
#endif

SF_ISA_CLONES void to_bf16_rows_portable(const float* src, int64_t lds, int64_t rows,
                                         int64_t cols, uint16_t* dst, int64_t ldd) {
  k::to_bf16_rows(src, lds, rows, cols, dst, ldd);
}

SF_ISA_CLONES void pack_vnni_portable(const float* src, int64_t lds, int64_t k_rows, int64_t n,
                                      uint16_t* dst) {
  k::pack_vnni(src, lds, k_rows, n, dst);
}

}  // namespace

void to_bf16_rows(const float* src, int64_t lds, int64_t rows, int64_t cols, uint16_t* dst,
                  int64_t ldd) {
#ifdef SF_NATIVE_BF16
  if (has_native_bf16()) return rows_native(src, lds, rows, cols, dst, ldd);
#endif
  to_bf16_rows_portable(src, lds, rows, cols, dst, ldd);
}

SF_ISA_CLONES void to_bf16_transposed(const float* src, int64_t lds, int64_t rows, int64_t cols,
                                      uint16_t* dst, int64_t ldd) {
  k::to_bf16_transposed(src, lds, rows, cols, dst, ldd);
}

SF_ISA_CLONES void transpose_f32(const float* src, int64_t lds, int64_t rows, int64_t cols,
                                 float* dst, int64_t ldd, float scale) {
  k::transpose_tile(src, lds, rows, cols, dst, ldd, [scale](float v) { return v * scale; });
}

void pack_vnni(const float* src, int64_t lds, int64_t k_rows, int64_t n, uint16_t* dst) {
#ifdef SF_NATIVE_BF16
  if (has_native_bf16()) {
    const int64_t pairs = k_rows / 2;
    for (int64_t p = 0; p < pairs; ++p) {
      pair_native(src + 2 * p * lds, src + (2 * p + 1) * lds, n, dst + 2 * p * n);
    }
    if (k_rows % 2) {  // the last row pairs with zeros
      pack_vnni_portable(src + (k_rows - 1) * lds, lds, 1, n, dst + (k_rows - 1) * n);
    }
    return;
  }
#endif
  pack_vnni_portable(src, lds, k_rows, n, dst);
}

}  // namespace strainer_fast::cpu
