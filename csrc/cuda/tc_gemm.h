// Tensor-core GEMMs (TF32 or bf16 operands, fp32 accumulation and output) of the
// fused sine MLP's CUDA path. Plain C++ interface: the CUTLASS instantiations live
// in tc_gemm_sm80.cu, so neither torch nor CUTLASS headers meet here.
//
// D(m, n) = alpha * sum_k A(m, k) B(k, n), row-major D with leading dimension ldd.
// Layout kRC: A row-major [m, k], B column-major (B(k, n) = b[n * ldb + k]) -- forward;
//        kRR: A row-major, B row-major [k, n]                            -- dX;
//        kCR: A column-major (A(m, k) = a[k * lda + m]), B row-major      -- dW.
// Operands are float (kTf32*, read as TF32 by the tensor cores) or bf16 bits (kBf16).
// batches > 1: independent GEMMs at the given element strides. splits > 1 (with
// batches == 1): serial split-K over k; the k-slices add into D one after another in a
// fixed order (a semaphore per output tile), so results are deterministic.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "tc_problem.h"

namespace strainer_fast::cuda {

// Workspace bytes the GEMM needs (the serial split-K semaphores); 0 when none.
size_t tc_gemm_workspace_bytes(TcKind kind, TcLayout layout, const TcGemm& g);

// Runs the GEMM on `stream`. Returns nullptr on success, else a static error message
// (an unsupported problem, e.g. misaligned, or a failed launch).
const char* tc_gemm_run(TcKind kind, TcLayout layout, const TcGemm& g, void* workspace,
                        cudaStream_t stream);

// ---- Fused epilogues (CUTLASS sm80 epilogue visitor trees) ----
// The GEMM's D (g.d, ldd, batch_d; fp32) is written as below; the extra tensors of
// TcFused share D's batch count. Operand kinds kTf32 (H fp32) and kBf16 (H and D_lo bf16).
//   kBiasSine (layout kRC, forward):  z = acc + bias[col] -> D;  h = sin z -> H.
//   kGate     (layout kRR, backward): dz = acc * cos z_in;  sin z_in -> H;  dz -> D (kTf32)
//                                     or D_lo (kBf16: bf16, the next GEMMs' operand; D unused).
// No split-K. tc_gemm_fused_can_run says whether the kernel takes the problem (extents,
// leading dimensions and batch strides multiples of 4, 16-byte aligned pointers, the
// mainloop's operand alignment); callers fall back to tc_gemm_run + elementwise kernels.
bool tc_gemm_fused_can_run(TcKind kind, TcEpilogue ep, const TcGemm& g, const TcFused& f);

// Runs the fused GEMM on `stream`; nullptr on success, else a static error message.
const char* tc_gemm_fused_run(TcKind kind, TcEpilogue ep, const TcGemm& g, const TcFused& f,
                              cudaStream_t stream);

// ---- Hopper (sm_90a) fused forward: wgmma + TMA, warp-specialised (tc_gemm_sm90.cu) ----
// Same problem and results as tc_gemm_fused_run(kind, kBiasSine, g, f): z = alpha * acc +
// bias[col] -> D (g.d, fp32), sin z -> H (f.h); kinds kTf32 and kBf16, layout kRC.
// tc_sm90_built: whether this binary holds the sm_90a kernels (else the other two
// report "not available"); callers also check that the device is cc 9.0.
// tc_gemm_fused_sm90_can_run: 16-byte aligned pointers, leading dimensions, batch
// strides and rows (TMA), no split-K, and CUTLASS's can_implement.
bool tc_sm90_built();
bool tc_gemm_fused_sm90_can_run(TcKind kind, const TcGemm& g, const TcFused& f);
const char* tc_gemm_fused_sm90_run(TcKind kind, const TcGemm& g, const TcFused& f,
                                   cudaStream_t stream);

// ---- Hopper (sm_90a) backward GEMMs (tc_gemm_sm90_backward.cu) ----
// tc_gemm_gate_sm90_*: the dX GEMM with the kGate epilogue (dz = acc * cos z_in, sin z_in
// -> H): kTf32 with layout kRC (B column-major: pass a transposed copy of W', since tf32
// wgmma reads K-major operands only), dz -> D (fp32); kBf16 with layout kRR (B = W'
// row-major, as tc_gemm_fused_run), dz -> D_lo (bf16). No split-K, no workspace.
// tc_gemm_sm90_*: plain GEMMs; only kBf16 with layout kCR (dW) is available, with
// deterministic split-K (g.splits, batches == 1) through a workspace of
// tc_gemm_sm90_workspace_bytes (initialised by the run on the stream). can_run: 16-byte
// aligned pointers, leading dimensions, batch strides and contiguous extents (TMA), and
// CUTLASS's can_implement; callers fall back to the sm80 kernels.
bool tc_gemm_gate_sm90_can_run(TcKind kind, TcLayout layout, const TcGemm& g, const TcFused& f);
const char* tc_gemm_gate_sm90_run(TcKind kind, TcLayout layout, const TcGemm& g,
                                  const TcFused& f, cudaStream_t stream);
bool tc_gemm_sm90_can_run(TcKind kind, TcLayout layout, const TcGemm& g);
size_t tc_gemm_sm90_workspace_bytes(TcKind kind, TcLayout layout, const TcGemm& g);
const char* tc_gemm_sm90_run(TcKind kind, TcLayout layout, const TcGemm& g, void* workspace,
                             cudaStream_t stream);

}  // namespace strainer_fast::cuda
