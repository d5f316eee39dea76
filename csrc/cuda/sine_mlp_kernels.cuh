// Torch-free CUDA kernels of the fused sine MLP (no cuBLAS, no ATen).
//
// Everything is one signal-batched tiled GEMM, C(r, c) = sum_k A(r, k) B(k, c),
// with a fused epilogue:
//   forward   C = H_{l-1} W'^T (+ b')   -> sine (h = sin, cos saved) or affine
//   dX        C = dZ_l W'               -> gate by the lower layer's cosine, or plain
//   dW        C = dZ_l^T H_{l-1}        -> per-split partials + row sums (the bias
//                                          gradient), summed by reduce_splits_kernel
// W' and b' carry w0 already (folded by the caller). The grid is
// (row tiles, column tiles, signals * splits): one launch covers every signal.
// A shared input is read by every signal through a zero batch stride (never copied).
// The dW reduction over points is split into chunks whose partials are summed in
// a fixed order by a second kernel: no atomics, deterministic results.
//
// Exact mode: SIMT FMA GEMM in the tensor's precision (fp32 or fp64).
// bf16 mode (fp32 tensors, sm_80+): tiles are rounded to bf16 in shared memory and
// multiplied on tensor cores (nvcuda::wmma 16x16x16) with fp32 accumulation; the
// epilogue (bias, sin/cos, gate) and the bias-gradient row sums stay in fp32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../kernels/sincos.h"

namespace strainer_fast::cuda {

enum class Epi { kSine, kAffine, kGate, kStore };

// One GEMM over `batches * splits` blocks along z. A(r, k) = a[r * lda + k] (or
// a[k * lda + r] when the kernel's A_T is set), B(k, c) = b[k * ldb + c] (or
// b[c * ldb + k] when B_T). Output element (r, c) of batch s and split j lives at
// c[s * c_batch + j * c_split + r * ldc + c]; cos_out / cos_in share that layout
// (used with one split only). bias: [batches][cols] with stride bias_batch.
// rowsum (optional): sum_k A(r, k) of each split, at rowsum[s * rowsum_batch +
// j * rowsum_split + r]. Split j covers depth [j * k_per_split, (j+1) * k_per_split).
template <typename T>
struct GemmArgs {
  const T* a = nullptr;
  int64_t lda = 0, a_batch = 0;
  const T* b = nullptr;
  int64_t ldb = 0, b_batch = 0;
  T* c = nullptr;
  int64_t ldc = 0, c_batch = 0, c_split = 0;
  const T* bias = nullptr;
  int64_t bias_batch = 0;
  T* cos_out = nullptr;
  const T* cos_in = nullptr;
  T* rowsum = nullptr;
  int64_t rowsum_batch = 0, rowsum_split = 0;
  int64_t rows = 0, cols = 0, depth = 0, k_per_split = 0;
  int splits = 1;
};

// SIMT tiles: BM x BN outputs per block, BK deep, TM x TN per thread (256 threads).
template <typename T>
struct SimtTile;
template <>
struct SimtTile<float> {
  static constexpr int kBM = 128, kBN = 64, kBK = 16, kTM = 8, kTN = 4;
  static constexpr int kThreads = (kBM / kTM) * (kBN / kTN);
};
template <>
struct SimtTile<double> {
  static constexpr int kBM = 64, kBN = 64, kBK = 16, kTM = 4, kTN = 4;
  static constexpr int kThreads = (kBM / kTM) * (kBN / kTN);
};

// Tensor-core tiles: 8 warps as 4 x 2, each warp 32 x 32 outputs (2 x 2 wmma tiles).
struct Bf16Tile {
  static constexpr int kBM = 128, kBN = 64, kBK = 16, kThreads = 256;
  static constexpr int kPadAB = 8, kPadC = 4;  // keep wmma ldm legal, spread banks
};

template <typename T>
__device__ __forceinline__ void sincos_dev(T v, T& s, T& c);

// Explicit range reduction (sincos.h); libm-accurate sincosf beyond its range.
template <>
__device__ __forceinline__ void sincos_dev<float>(float v, float& s, float& c) {
  if (fabsf(v) <= kernels::kSincosF32MaxArg) {
    kernels::sincos_f32(v, s, c);
  } else {
    sincosf(v, &s, &c);
  }
}

template <>
__device__ __forceinline__ void sincos_dev<double>(double v, double& s, double& c) {
  sincos(v, &s, &c);
}

// Writes output element (r, c) of batch `batch`, split `split` through epilogue E.
template <Epi E, typename T>
__device__ __forceinline__ void finish(const GemmArgs<T>& p, int64_t batch, int split,
                                       int64_t r, int64_t c, T acc) {
  const int64_t i = batch * p.c_batch + split * p.c_split + r * p.ldc + c;
  if constexpr (E == Epi::kSine) {
    T s, co;
    sincos_dev<T>(acc + p.bias[batch * p.bias_batch + c], s, co);
    p.c[i] = s;
    if (p.cos_out != nullptr) p.cos_out[i] = co;
  } else if constexpr (E == Epi::kAffine) {
    p.c[i] = acc + p.bias[batch * p.bias_batch + c];
  } else if constexpr (E == Epi::kGate) {
    p.c[i] = acc * p.cos_in[i];
  } else {
    p.c[i] = acc;
  }
}

// Stages the logical R x K tile src(r0 + r, k0 + k) (zero outside r_end / k_end)
// through store(r, k, v). src(r, k) = src[r * ld + k], or src[k * ld + r] when
// TRANS; consecutive threads walk the contiguous dimension (coalesced loads).
template <bool TRANS, int R, int K, int THREADS, typename T, typename Store>
__device__ __forceinline__ void stage_tile(const T* src, int64_t ld, int64_t r0, int64_t r_end,
                                           int64_t k0, int64_t k_end, Store store) {
  for (int i = threadIdx.x; i < R * K; i += THREADS) {
    const int r = TRANS ? i % R : i / K;
    const int k = TRANS ? i / R : i % K;
    const int64_t gr = r0 + r, gk = k0 + k;
    T v = T(0);
    if (gr < r_end && gk < k_end) v = TRANS ? src[gk * ld + gr] : src[gr * ld + gk];
    store(r, k, v);
  }
}

// Exact-precision GEMM + epilogue (see GemmArgs). grid: (ceil(rows / BM),
// ceil(cols / BN), batches * splits), block: Tile::kThreads.
template <typename T, typename Tile, bool A_T, bool B_T, Epi E>
__global__ void __launch_bounds__(Tile::kThreads) gemm_simt_kernel(GemmArgs<T> p) {
  constexpr int BM = Tile::kBM, BN = Tile::kBN, BK = Tile::kBK, TM = Tile::kTM, TN = Tile::kTN;
  constexpr int NT = Tile::kThreads;
  static_assert(NT >= BM, "row sums need one thread per tile row");
  __shared__ T As[BK][BM];
  __shared__ T Bs[BK][BN];
  const int64_t batch = blockIdx.z / p.splits;
  const int split = blockIdx.z % p.splits;
  const int64_t r0 = int64_t(blockIdx.x) * BM, c0 = int64_t(blockIdx.y) * BN;
  const int64_t k_begin = split * p.k_per_split;
  const int64_t k_end = p.depth < k_begin + p.k_per_split ? p.depth : k_begin + p.k_per_split;
  const T* a = p.a + batch * p.a_batch;
  const T* b = p.b + batch * p.b_batch;
  const int tid = threadIdx.x, tr = tid / (BN / TN), tc = tid % (BN / TN);
  const bool do_rowsum = p.rowsum != nullptr && blockIdx.y == 0 && tid < BM;

  T acc[TM][TN] = {};
  T rsum = T(0);
  for (int64_t k0 = k_begin; k0 < k_end; k0 += BK) {
    stage_tile<A_T, BM, BK, NT>(a, p.lda, r0, p.rows, k0, k_end,
                                [&](int r, int k, T v) { As[k][r] = v; });
    stage_tile<B_T, BK, BN, NT>(b, p.ldb, k0, k_end, c0, p.cols,
                                [&](int k, int c, T v) { Bs[k][c] = v; });
    __syncthreads();
    if (do_rowsum) {
      for (int k = 0; k < BK; ++k) rsum += As[k][tid];
    }
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      T av[TM], bv[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) av[i] = As[k][tr * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) bv[j] = Bs[k][tc * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += av[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t r = r0 + tr * TM + i, c = c0 + tc * TN + j;
      if (r < p.rows && c < p.cols) finish<E>(p, batch, split, r, c, acc[i][j]);
    }
  }
  if (do_rowsum && r0 + tid < p.rows) {
    p.rowsum[batch * p.rowsum_batch + split * p.rowsum_split + r0 + tid] = rsum;
  }
}

// bf16 tensor-core GEMM (fp32 in/out, fp32 accumulation) + epilogue; same grid
// contract as gemm_simt_kernel with Bf16Tile. Needs sm_80 (traps below).
// Row sums (the bias gradient) are summed from the fp32 A values.
template <bool A_T, bool B_T, Epi E>
__global__ void __launch_bounds__(Bf16Tile::kThreads) gemm_bf16_kernel(GemmArgs<float> p) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  namespace wmma = nvcuda::wmma;
  constexpr int BM = Bf16Tile::kBM, BN = Bf16Tile::kBN, BK = Bf16Tile::kBK;
  constexpr int NT = Bf16Tile::kThreads;
  constexpr int LDA = BK + Bf16Tile::kPadAB, LDB = BN + Bf16Tile::kPadAB;
  constexpr int LDC = BN + Bf16Tile::kPadC;
  static_assert(NT >= BM && NT == 8 * 32 && BM == 4 * 32 && BN == 2 * 32 && BK == 16,
                "the warp layout below is 4 x 2 warps of 32 x 32");
  __shared__ __align__(32) __nv_bfloat16 As[BM][LDA];
  __shared__ __align__(32) __nv_bfloat16 Bs[BK][LDB];
  // fp32 copy of the A tile for row sums (main loop), then the output tile (epilogue).
  __shared__ __align__(32) union {
    float a32[BK][BM];
    float c[BM][LDC];
  } sm;
  const int64_t batch = blockIdx.z / p.splits;
  const int split = blockIdx.z % p.splits;
  const int64_t r0 = int64_t(blockIdx.x) * BM, c0 = int64_t(blockIdx.y) * BN;
  const int64_t k_begin = split * p.k_per_split;
  const int64_t k_end = p.depth < k_begin + p.k_per_split ? p.depth : k_begin + p.k_per_split;
  const float* a = p.a + batch * p.a_batch;
  const float* b = p.b + batch * p.b_batch;
  const int tid = threadIdx.x, warp = tid / 32, wm = warp / 2, wn = warp % 2;
  const bool do_rowsum = p.rowsum != nullptr && blockIdx.y == 0 && tid < BM;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (auto& row : acc) {
    for (auto& f : row) wmma::fill_fragment(f, 0.0f);
  }
  float rsum = 0.0f;
  for (int64_t k0 = k_begin; k0 < k_end; k0 += BK) {
    stage_tile<A_T, BM, BK, NT>(a, p.lda, r0, p.rows, k0, k_end,
                                [&](int r, int k, float v) {
                                  As[r][k] = __float2bfloat16_rn(v);
                                  if (p.rowsum != nullptr) sm.a32[k][r] = v;
                                });
    stage_tile<B_T, BK, BN, NT>(b, p.ldb, k0, k_end, c0, p.cols,
                                [&](int k, int c, float v) { Bs[k][c] = __float2bfloat16_rn(v); });
    __syncthreads();
    if (do_rowsum) {
      for (int k = 0; k < BK; ++k) rsum += sm.a32[k][tid];
    }
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[2];
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb[2];
    for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &As[wm * 32 + i * 16][0], LDA);
    for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &Bs[0][wn * 32 + j * 16], LDB);
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(&sm.c[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], LDC,
                              wmma::mem_row_major);
    }
  }
  __syncthreads();
  for (int i = tid; i < BM * BN; i += NT) {  // column-fastest: coalesced stores
    const int r = i / BN, c = i % BN;
    if (r0 + r < p.rows && c0 + c < p.cols) finish<E>(p, batch, split, r0 + r, c0 + c, sm.c[r][c]);
  }
  if (do_rowsum && r0 + tid < p.rows) {
    p.rowsum[batch * p.rowsum_batch + split * p.rowsum_split + r0 + tid] = rsum;
  }
#else
  __trap();
#endif
}

// dst[b][i] = scale * sum_j part[b][j][i] for part [batches][splits][count] (fixed order).
template <typename T>
__global__ void reduce_splits_kernel(const T* part, T* dst, int64_t batches, int splits,
                                     int64_t count, T scale) {
  const int64_t total = batches * count;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T* src = part + (i / count) * splits * count + i % count;
    T sum = T(0);
    for (int j = 0; j < splits; ++j) sum += src[j * count];
    dst[i] = scale * sum;
  }
}

// ---------------------------------------------------------------- host side

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct TileShape {
  int bm, bn, bk;
};

template <typename T>
TileShape tile_shape(bool bf16) {
  if (std::is_same_v<T, float> && bf16) return {Bf16Tile::kBM, Bf16Tile::kBN, Bf16Tile::kBK};
  return {SimtTile<T>::kBM, SimtTile<T>::kBN, SimtTile<T>::kBK};
}

// Sets p.splits / p.k_per_split so that about `target_blocks` blocks share the
// depth (each split a multiple of BK and at least 8 BK steps). Needs rows, cols, depth.
template <typename T>
void plan_splits(GemmArgs<T>& p, int64_t batches, bool bf16, int64_t target_blocks) {
  const TileShape t = tile_shape<T>(bf16);
  const int64_t tiles = ceil_div(p.rows, t.bm) * ceil_div(p.cols, t.bn) * batches;
  int64_t splits = std::max<int64_t>(1, ceil_div(target_blocks, tiles));
  splits = std::min({splits, std::max<int64_t>(1, ceil_div(p.depth, 8 * t.bk)),
                     std::max<int64_t>(1, 65535 / batches)});
  p.k_per_split = std::max<int64_t>(t.bk, ceil_div(ceil_div(p.depth, splits), t.bk) * t.bk);
  p.splits = static_cast<int>(std::max<int64_t>(1, ceil_div(p.depth, p.k_per_split)));
}

// Launches one GEMM over `batches` signals (bf16 applies to float only).
template <typename T, bool A_T, bool B_T, Epi E>
cudaError_t launch_gemm(const GemmArgs<T>& p, int64_t batches, bool bf16, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0 || batches == 0) return cudaSuccess;
  const TileShape t = tile_shape<T>(bf16);
  const dim3 grid(static_cast<unsigned>(ceil_div(p.rows, t.bm)),
                  static_cast<unsigned>(ceil_div(p.cols, t.bn)),
                  static_cast<unsigned>(batches * p.splits));
  if constexpr (std::is_same_v<T, float>) {
    if (bf16) {
      gemm_bf16_kernel<A_T, B_T, E><<<grid, Bf16Tile::kThreads, 0, stream>>>(p);
      return cudaGetLastError();
    }
  }
  using Tile = SimtTile<T>;
  gemm_simt_kernel<T, Tile, A_T, B_T, E><<<grid, Tile::kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_reduce(const T* part, T* dst, int64_t batches, int splits, int64_t count,
                          T scale, cudaStream_t stream) {
  const int64_t total = batches * count;
  if (total == 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(ceil_div(total, 256), 4096));
  reduce_splits_kernel<T><<<blocks, 256, 0, stream>>>(part, dst, batches, splits, count, scale);
  return cudaGetLastError();
}

}  // namespace strainer_fast::cuda
