// Torch-free sine/cosine kernels shared by the CPU (and later CUDA) epilogues.
//
// sincos_f32 evaluates sin and cos of one float with a single range reduction
// (Cody-Waite, three-part pi/2) and two short minimax polynomials on
// [-pi/4, pi/4]. It is branch-free so that loops over it vectorise. Accuracy is
// a few ulp for |z| <= kSincosF32MaxArg; callers route larger arguments (rare:
// SIREN pre-activations are tens of radians) to the libm path. The quadrant's
// swap and signs are applied with integer bit operations, not selects: GCC
// if-converts and vectorises the caller's loop then on AVX2 as well as AVX-512
// (with float selects it left the loop scalar and branchy on AVX2).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SF_HD __host__ __device__ __forceinline__
#else
#define SF_HD inline __attribute__((always_inline))
#endif

namespace strainer_fast::kernels {

// Beyond this the three-part reduction of q * pi/2 loses accuracy in float.
constexpr float kSincosF32MaxArg = 65536.0f;

SF_HD uint32_t f32_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

SF_HD float bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

SF_HD void sincos_f32(float z, float& s, float& c) {
  constexpr float kTwoOverPi = 0.636619772367581343f;
  constexpr float kPio2Hi = 1.5703125f;                 // 8 significant bits
  constexpr float kPio2Mid = 4.83751296997070312e-04f;  // next bits
  constexpr float kPio2Lo = 7.54978995489188216e-08f;   // remainder
  const float q = std::rint(z * kTwoOverPi);
  float r = std::fma(-q, kPio2Hi, z);
  r = std::fma(-q, kPio2Mid, r);
  r = std::fma(-q, kPio2Lo, r);
  const float r2 = r * r;
  // sin(r) and cos(r) on |r| <= pi/4 (Cephes single-precision coefficients).
  float ps = std::fma(r2, -1.9515295891e-4f, 8.3321608736e-3f);
  ps = std::fma(r2, ps, -1.6666654611e-1f);
  const float sr = std::fma(r * r2, ps, r);
  float pc = std::fma(r2, 2.443315711809948e-5f, -1.388731625493765e-3f);
  pc = std::fma(r2, pc, 4.166664568298827e-2f);
  const float cr = std::fma(r2 * r2, pc, std::fma(-0.5f, r2, 1.0f));
  // Quadrant k: odd k swaps sin and cos; bit 1 of k (of k + 1) flips sin's (cos's) sign.
  const uint32_t k = static_cast<uint32_t>(static_cast<int32_t>(q));
  const uint32_t swap = 0u - (k & 1u);
  const uint32_t sb = f32_bits(sr), cb = f32_bits(cr);
  s = bits_f32(((sb & ~swap) | (cb & swap)) ^ ((k & 2u) << 30));
  c = bits_f32(((cb & ~swap) | (sb & swap)) ^ (((k + 1u) & 2u) << 30));
}

}  // namespace strainer_fast::kernels
