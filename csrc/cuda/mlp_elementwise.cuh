// Torch-free elementwise CUDA kernels of the fused sine MLP: the first layer (a
// handful of inputs, no GEMM), the forward epilogue (bias + sine, saving the
// pre-activation z) and the backward gate (dz = dh * cos z, with sin z recomputed
// as the next dW GEMM's operand). One thread per element, grid-stride loops,
// 64-bit indices.
//
// Activations are addressed through `Act`: element (s, n, j) of a signal-batched
// [S, N, width] tensor lives at p[s * s_stride + n * n_stride + j]. That covers the
// contiguous layout (s_stride = N * ld, n_stride = ld, ld >= width for padded bf16
// GEMM operands) and the concatenated layout of a shared input's GEMM, [N, S * width]
// (s_stride = width, n_stride = S * width).
//
// sin/cos use one Cody-Waite range reduction and short polynomials
// (kernels/sincos.h) for |z| <= kSincosF32MaxArg; larger arguments take CUDA's
// accurate sincosf. Never build this with --use_fast_math (its __sinf is inaccurate
// beyond a few radians; SIREN pre-activations reach tens of radians).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "../dispatch.h"
#include "../kernels/sincos.h"

namespace strainer_fast::cuda {

template <typename T>
struct Act {
  T* p = nullptr;
  int64_t s_stride = 0, n_stride = 0;
  __host__ __device__ T& at(int64_t s, int64_t n, int64_t j) const {
    return p[s * s_stride + n * n_stride + j];
  }
};

// Contiguous [S, N, ld] (the first `width` of every ld columns in use).
template <typename T>
Act<T> act_contiguous(T* p, int64_t points, int64_t ld) {
  return Act<T>{p, points * ld, ld};
}

// [N, S * width]: the output of one GEMM against all signals' concatenated weights.
template <typename T>
Act<T> act_concat(T* p, int64_t signals, int64_t width) {
  return Act<T>{p, width, signals * width};
}

struct Shape3 {
  int64_t signals = 0, points = 0, width = 0;
  __host__ __device__ int64_t numel() const { return signals * points * width; }
};

// Element e of a contiguous [S, N, width] walk -> (s, n, j), in index type I: uint32_t
// when the walk fits in 2^31 elements (32-bit division is several times cheaper on the
// GPU than 64-bit), else int64_t.
template <typename I>
struct Coord {
  int64_t s, n, j;
  __device__ __forceinline__ Coord(I e, I points, I width) {
    const I row = e / width;
    const I sig = row / points;
    j = static_cast<int64_t>(e - row * width);
    n = static_cast<int64_t>(row - sig * points);
    s = static_cast<int64_t>(sig);
  }
};

#define SF_GRID_STRIDE(I, e, total)                                                  \
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < (total);    \
       e += static_cast<I>(gridDim.x) * blockDim.x)

template <typename T>
__device__ __forceinline__ void sincos_accurate(T z, T& s, T& c) {
  if constexpr (std::is_same_v<T, float>) {
    if (fabsf(z) <= kernels::kSincosF32MaxArg) {
      kernels::sincos_f32(z, s, c);
    } else {
      sincosf(z, &s, &c);  // accurate reduction (Payne-Hanek) for huge arguments
    }
  } else {
    sincos(z, &s, &c);
  }
}

template <typename Out, typename T>
__device__ __forceinline__ Out convert(T v) {
  if constexpr (std::is_same_v<Out, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(v));
  } else {
    return static_cast<Out>(v);
  }
}

inline unsigned grid_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}
constexpr int kEwThreads = 256;

// 32-bit element indices: the walk and its grid-stride steps (at most 2^24) stay below 2^32.
inline bool small_walk(const Shape3& sh) { return sh.numel() <= (int64_t{1} << 31); }

// The end of a forward layer at element e = (s, n, j) of pre-activation v: sine layers
// store z_out[e] = v (when z_out is set) and h = sin v; affine layers store h = v.
template <typename T, typename Out, typename I>
__device__ __forceinline__ void store_activation(T v, bool sine, I e, int64_t s, int64_t n,
                                                 int64_t j, Act<Out> h_out, T* z_out) {
  if (sine) {
    if (z_out != nullptr) z_out[e] = v;
    T sv, cv;
    sincos_accurate(v, sv, cv);
    h_out.at(s, n, j) = convert<Out>(sv);
  } else {
    h_out.at(s, n, j) = convert<Out>(v);
  }
}

// First layer with `in` <= kFirstLayerMaxIn inputs: z = x W'^T + b' in fp32/fp64 FMAs
// (no padded GEMM), then h = sin(z) (sine) or h = z (affine). x(s, n, k) at
// x[s * x_s_stride + n * in + k] (x_s_stride = 0 for a shared input); W' [S, width, in];
// b' [S, width]. z_out (contiguous [S, N, width], may be null) receives z.
constexpr int kFirstLayerMaxIn = static_cast<int>(dispatch::kFirstLayerMaxIn);

template <typename T, typename Out, typename I>
__global__ void first_layer_kernel(const T* __restrict__ x, int64_t x_s_stride, int in,
                                   const T* __restrict__ w, const T* __restrict__ b, Shape3 sh,
                                   bool sine, Act<Out> h_out, T* __restrict__ z_out) {
  const I total = static_cast<I>(sh.numel());
  const I points = static_cast<I>(sh.points), width = static_cast<I>(sh.width);
  SF_GRID_STRIDE(I, e, total) {
    const Coord<I> c(e, points, width);
    const int64_t s = c.s, n = c.n, j = c.j;
    const T* xr = x + s * x_s_stride + n * in;
    const T* wr = w + (s * sh.width + j) * in;
    T v = b[s * sh.width + j];
#pragma unroll
    for (int k = 0; k < kFirstLayerMaxIn; ++k) {
      if (k < in) v = fma(xr[k], wr[k], v);
    }
    store_activation(v, sine, e, s, n, j, h_out, z_out);
  }
}

// Forward epilogue of a GEMM layer: v = z_in(s, n, j) + b'[s, j]; sine: z_out = v
// (contiguous, may be null; may alias z_in when z_in is contiguous) and h = sin(v);
// affine: h = v. h_out may alias z_in (same element mapping and type) when nothing
// else reads z_in.
template <typename T, typename Out, typename I>
__global__ void bias_act_kernel(Act<const T> z_in, const T* __restrict__ b, Shape3 sh, bool sine,
                                Act<Out> h_out, T* z_out) {
  const I total = static_cast<I>(sh.numel());
  const I points = static_cast<I>(sh.points), width = static_cast<I>(sh.width);
  SF_GRID_STRIDE(I, e, total) {
    const Coord<I> c(e, points, width);
    const int64_t s = c.s, n = c.n, j = c.j;
    const T v = z_in.at(s, n, j) + b[s * sh.width + j];
    store_activation(v, sine, e, s, n, j, h_out, z_out);
  }
}

// Backward gate of a sine layer: c, s = cos z, sin z (z contiguous [S, N, width]);
// d = dh(s, n, j) * c. Writes d to dz (fp32/fp64, may be null, may alias dh with the
// same mapping), d to dz_op (the GEMM operand copy, e.g. bf16; may be null) and sin z to
// h_op (the lower layer's activation, the dW GEMM's operand; may be null).
template <typename T, typename Op, typename I>
__global__ void gate_kernel(Act<const T> dh, const T* __restrict__ z, Shape3 sh, Act<T> dz,
                            Act<Op> dz_op, Act<Op> h_op) {
  const I total = static_cast<I>(sh.numel());
  const I points = static_cast<I>(sh.points), width = static_cast<I>(sh.width);
  SF_GRID_STRIDE(I, e, total) {
    const Coord<I> c(e, points, width);
    const int64_t s = c.s, n = c.n, j = c.j;
    T sv, cv;
    sincos_accurate(z[e], sv, cv);
    const T d = dh.at(s, n, j) * cv;
    if (dz.p != nullptr) dz.at(s, n, j) = d;
    if (dz_op.p != nullptr) dz_op.at(s, n, j) = convert<Op>(d);
    if (h_op.p != nullptr) h_op.at(s, n, j) = convert<Op>(sv);
  }
}

// dst(s, n, j) = convert(src(s, n, j)): re-layout and/or rounding to the GEMM operand type.
template <typename T, typename Op, typename I>
__global__ void copy_kernel(Act<const T> src, Shape3 sh, Act<Op> dst) {
  const I total = static_cast<I>(sh.numel());
  const I points = static_cast<I>(sh.points), width = static_cast<I>(sh.width);
  SF_GRID_STRIDE(I, e, total) {
    const Coord<I> c(e, points, width);
    const int64_t s = c.s, n = c.n, j = c.j;
    dst.at(s, n, j) = convert<Op>(src.at(s, n, j));
  }
}

// ---- Host launchers (return the launch error; no synchronisation) ----

// Calls launch(index, grid) for the [S, N, width] walk of `sh`, with `index` a uint32_t when
// the walk fits in 32 bits (small_walk) and an int64_t otherwise: the kernel's index type I.
template <typename Launch>
cudaError_t launch_walk(const Shape3& sh, Launch&& launch) {
  if (sh.numel() == 0) return cudaSuccess;
  const dim3 grid(grid_for(sh.numel(), kEwThreads));
  if (small_walk(sh)) {
    launch(uint32_t{}, grid);
  } else {
    launch(int64_t{}, grid);
  }
  return cudaGetLastError();
}

template <typename T, typename Out>
cudaError_t launch_first_layer(const T* x, int64_t x_s_stride, int in, const T* w, const T* b,
                               Shape3 sh, bool sine, Act<Out> h_out, T* z_out,
                               cudaStream_t stream) {
  return launch_walk(sh, [&](auto index, dim3 grid) {
    first_layer_kernel<T, Out, decltype(index)><<<grid, kEwThreads, 0, stream>>>(
        x, x_s_stride, in, w, b, sh, sine, h_out, z_out);
  });
}

template <typename T, typename Out>
cudaError_t launch_bias_act(Act<const T> z_in, const T* b, Shape3 sh, bool sine, Act<Out> h_out,
                            T* z_out, cudaStream_t stream) {
  return launch_walk(sh, [&](auto index, dim3 grid) {
    bias_act_kernel<T, Out, decltype(index)><<<grid, kEwThreads, 0, stream>>>(z_in, b, sh, sine,
                                                                               h_out, z_out);
  });
}

template <typename T, typename Op>
cudaError_t launch_gate(Act<const T> dh, const T* z, Shape3 sh, Act<T> dz, Act<Op> dz_op,
                        Act<Op> h_op, cudaStream_t stream) {
  return launch_walk(sh, [&](auto index, dim3 grid) {
    gate_kernel<T, Op, decltype(index)><<<grid, kEwThreads, 0, stream>>>(dh, z, sh, dz, dz_op,
                                                                          h_op);
  });
}

template <typename T, typename Op>
cudaError_t launch_copy(Act<const T> src, Shape3 sh, Act<Op> dst, cudaStream_t stream) {
  return launch_walk(sh, [&](auto index, dim3 grid) {
    copy_kernel<T, Op, decltype(index)><<<grid, kEwThreads, 0, stream>>>(src, sh, dst);
  });
}

}  // namespace strainer_fast::cuda
