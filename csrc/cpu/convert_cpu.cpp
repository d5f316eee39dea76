#include "convert_cpu.h"

#include "../kernels/bf16.h"
#include "isa_clones.h"

namespace strainer_fast::cpu {
namespace k = strainer_fast::kernels;

SF_ISA_CLONES void to_bf16_rows(const float* src, int64_t lds, int64_t rows, int64_t cols,
                                uint16_t* dst, int64_t ldd) {
  k::to_bf16_rows(src, lds, rows, cols, dst, ldd);
}

SF_ISA_CLONES void to_bf16_transposed(const float* src, int64_t lds, int64_t rows, int64_t cols,
                                      uint16_t* dst, int64_t ldd) {
  k::to_bf16_transposed(src, lds, rows, cols, dst, ldd);
}

SF_ISA_CLONES void transpose_f32(const float* src, int64_t lds, int64_t rows, int64_t cols,
                                 float* dst, int64_t ldd, float scale) {
  k::transpose_tile(src, lds, rows, cols, dst, ldd, [scale](float v) { return v * scale; });
}

SF_ISA_CLONES void pack_vnni(const float* src, int64_t lds, bool transposed, int64_t k_rows,
                             int64_t n, uint16_t* dst) {
  k::pack_vnni(src, lds, transposed, k_rows, n, dst);
}

}  // namespace strainer_fast::cpu
