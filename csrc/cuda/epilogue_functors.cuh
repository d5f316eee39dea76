// Elementwise functors of the CUTLASS fused epilogues (sm80 visitor graphs, sm90 fusion
// operations): sin z and the cos gate with the project's range reduction. Torch-free.
#pragma once

#include <cutlass/array.h>
#include <cutlass/cutlass.h>

#include "mlp_elementwise.cuh"

namespace strainer_fast::cuda {

// sin z. Scalar form: Sm90Compute instantiates the functor for the compute type (to look
// for activation arguments); both epilogues apply the Array form to fp32 fragments.
template <class T>
struct SineFn {
  CUTLASS_DEVICE T operator()(T const& z) const {
    T s, c;
    sincos_accurate(z, s, c);
    return s;
  }
};
template <int N>
struct SineFn<cutlass::Array<float, N>> {
  CUTLASS_DEVICE cutlass::Array<float, N> operator()(cutlass::Array<float, N> const& z) const {
    cutlass::Array<float, N> out;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; ++i) {
      float s, c;
      sincos_accurate(z[i], s, c);
      out[i] = s;
    }
    return out;
  }
};

// dz = dh * cos z. Scalar form for Sm90Compute (as SineFn's); both epilogues use the Array form.
template <class T>
struct GateFn {
  CUTLASS_DEVICE T operator()(T const& dh, T const& z) const {
    T s, c;
    sincos_accurate(z, s, c);
    return dh * c;
  }
};
template <int N>
struct GateFn<cutlass::Array<float, N>> {
  CUTLASS_DEVICE cutlass::Array<float, N> operator()(cutlass::Array<float, N> const& dh,
                                                     cutlass::Array<float, N> const& z) const {
    cutlass::Array<float, N> out;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; ++i) {
      float s, c;
      sincos_accurate(z[i], s, c);
      out[i] = dh[i] * c;
    }
    return out;
  }
};

}  // namespace strainer_fast::cuda
