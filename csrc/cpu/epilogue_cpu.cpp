// Instantiates the torch-free epilogues for the CPU. The float versions are
// cloned per ISA level (AVX-512, AVX2+FMA, baseline) so that the one sin/cos
// pass vectorises on whatever x86 CPU loads the library.
#include "epilogue_cpu.h"

#include "../kernels/epilogue.h"
#include "isa_clones.h"

namespace strainer_fast::cpu {
namespace k = strainer_fast::kernels;

namespace {

SF_ISA_CLONES void sine_f32(const float* z, int64_t ldz, const float* bias, int64_t rows,
                            int64_t cols, float* h, int64_t ldh, float* cosv, int64_t ldc) {
  k::sine_epilogue_rows<float>(z, ldz, bias, rows, cols, h, ldh, cosv, ldc);
}

SF_ISA_CLONES void bias_f32(const float* z, int64_t ldz, const float* bias, int64_t rows,
                            int64_t cols, float* out, int64_t ldo) {
  k::bias_epilogue_rows<float>(z, ldz, bias, rows, cols, out, ldo);
}

SF_ISA_CLONES void gate_f32(const float* g, int64_t ldg, const float* cosv, int64_t ldc,
                            int64_t rows, int64_t cols, float* dz, int64_t ldz, float* db) {
  k::gate_rows<float>(g, ldg, cosv, ldc, rows, cols, dz, ldz, db);
}

SF_ISA_CLONES void colsum_f32(const float* g, int64_t ldg, int64_t rows, int64_t cols,
                              float* db) {
  k::colsum_rows<float>(g, ldg, rows, cols, db);
}

}  // namespace

template <>
void sine_epilogue<float>(const float* z, int64_t ldz, const float* bias, int64_t rows,
                          int64_t cols, float* h, int64_t ldh, float* cosv, int64_t ldc) {
  sine_f32(z, ldz, bias, rows, cols, h, ldh, cosv, ldc);
}
template <>
void sine_epilogue<double>(const double* z, int64_t ldz, const double* bias, int64_t rows,
                           int64_t cols, double* h, int64_t ldh, double* cosv, int64_t ldc) {
  k::sine_epilogue_rows<double>(z, ldz, bias, rows, cols, h, ldh, cosv, ldc);
}

template <>
void bias_epilogue<float>(const float* z, int64_t ldz, const float* bias, int64_t rows,
                          int64_t cols, float* out, int64_t ldo) {
  bias_f32(z, ldz, bias, rows, cols, out, ldo);
}
template <>
void bias_epilogue<double>(const double* z, int64_t ldz, const double* bias, int64_t rows,
                           int64_t cols, double* out, int64_t ldo) {
  k::bias_epilogue_rows<double>(z, ldz, bias, rows, cols, out, ldo);
}

template <>
void gate<float>(const float* g, int64_t ldg, const float* cosv, int64_t ldc, int64_t rows,
                 int64_t cols, float* dz, int64_t ldz, float* db) {
  gate_f32(g, ldg, cosv, ldc, rows, cols, dz, ldz, db);
}
template <>
void gate<double>(const double* g, int64_t ldg, const double* cosv, int64_t ldc, int64_t rows,
                  int64_t cols, double* dz, int64_t ldz, double* db) {
  k::gate_rows<double>(g, ldg, cosv, ldc, rows, cols, dz, ldz, db);
}

template <>
void colsum<float>(const float* g, int64_t ldg, int64_t rows, int64_t cols, float* db) {
  colsum_f32(g, ldg, rows, cols, db);
}
template <>
void colsum<double>(const double* g, int64_t ldg, int64_t rows, int64_t cols, double* db) {
  k::colsum_rows<double>(g, ldg, rows, cols, db);
}

}  // namespace strainer_fast::cpu
