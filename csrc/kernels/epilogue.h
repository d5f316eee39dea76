// Torch-free row-tile epilogues of the fused sine MLP, templated on precision.
//
// A tile is `rows` x `cols` with independent leading dimensions. Weights and
// biases arrive with w0 already folded in, so the sine layer's epilogue is
// h = sin(z + b), and its cosine (the backward gate) comes from the same
// range reduction.
#pragma once

#include <cmath>
#include <cstdint>

#include "sincos.h"

namespace strainer_fast::kernels {

template <typename T>
SF_HD void sincos_any(T z, T& s, T& c) {
  s = std::sin(z);
  c = std::cos(z);
}

template <>
SF_HD void sincos_any<float>(float z, float& s, float& c) {
  sincos_f32(z, s, c);
}

// z[rows, cols] (+ bias) -> h = sin(z + bias), cosv = cos(z + bias) (cosv may be null).
// Rows holding an argument beyond the polynomial's range are redone with libm.
template <typename T>
SF_HD void sine_epilogue_rows(const T* z, int64_t ldz, const T* bias, int64_t rows, int64_t cols,
                              T* h, int64_t ldh, T* cosv, int64_t ldc) {
  T cos_sink[1];
  for (int64_t r = 0; r < rows; ++r) {
    const T* zr = z + r * ldz;
    T* hr = h + r * ldh;
    T* cr = cosv != nullptr ? cosv + r * ldc : cos_sink;
    const int64_t cstep = cosv != nullptr ? 1 : 0;
    int big = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const T v = zr[j] + bias[j];
      T s, c;
      sincos_any(v, s, c);
      hr[j] = s;
      cr[j * cstep] = c;
      big |= !(std::fabs(v) <= static_cast<T>(kSincosF32MaxArg));
    }
    if (big) {
      for (int64_t j = 0; j < cols; ++j) {
        const T v = zr[j] + bias[j];
        hr[j] = std::sin(v);
        cr[j * cstep] = std::cos(v);
      }
    }
  }
}

// out = z + bias (the plain affine last layer).
template <typename T>
SF_HD void bias_epilogue_rows(const T* z, int64_t ldz, const T* bias, int64_t rows, int64_t cols,
                              T* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* zr = z + r * ldz;
    T* orow = out + r * ldo;
    for (int64_t j = 0; j < cols; ++j) orow[j] = zr[j] + bias[j];
  }
}

// dz = g * cosv (the sine layer's gate, g may alias dz); db += column sums of dz.
template <typename T>
SF_HD void gate_rows(const T* g, int64_t ldg, const T* cosv, int64_t ldc, int64_t rows,
                     int64_t cols, T* dz, int64_t ldz, T* db) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* gr = g + r * ldg;
    const T* cr = cosv + r * ldc;
    T* dr = dz + r * ldz;
    for (int64_t j = 0; j < cols; ++j) {
      const T v = gr[j] * cr[j];
      dr[j] = v;
      db[j] += v;
    }
  }
}

// db += column sums of g (the affine layer's bias gradient).
template <typename T>
SF_HD void colsum_rows(const T* g, int64_t ldg, int64_t rows, int64_t cols, T* db) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* gr = g + r * ldg;
    for (int64_t j = 0; j < cols; ++j) db[j] += gr[j];
  }
}

}  // namespace strainer_fast::kernels
