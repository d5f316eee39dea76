// CUTLASS instantiations behind tc_gemm.h: sm80 tensor-core GEMMs (mma.sync,
// multistage cp.async mainloop), which also run on sm90. Torch-free.
//
// Tiles: 128 x 128 outputs per CTA, 32 deep, four 64 x 64 warps; 3 stages (TF32,
// 96 KiB of shared memory) or 4 stages (bf16, 64 KiB). GemmUniversalBase raises the
// kernel's dynamic shared-memory limit itself (cudaFuncSetAttribute).
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/thread/linear_combination.h>
#include <cutlass/gemm/device/gemm_universal.h>
#include <cutlass/gemm/threadblock/threadblock_swizzle.h>
#include <cutlass/layout/matrix.h>
#include <cutlass/numeric_types.h>

#include "tc_gemm.h"

namespace strainer_fast::cuda {
namespace {

using cutlass::layout::ColumnMajor;
using cutlass::layout::RowMajor;

template <TcKind K>
struct KindTraits;
template <>
struct KindTraits<TcKind::kTf32> {
  using Element = float;  // float inputs on tensor-op sm80: TF32 mma (m16n8k8)
  using Instruction = cutlass::gemm::GemmShape<16, 8, 8>;
  static constexpr int kStages = 3, kAlign = 4, kAlignC = 4;
};
template <>
struct KindTraits<TcKind::kTf32Align1> {
  using Element = float;
  using Instruction = cutlass::gemm::GemmShape<16, 8, 8>;
  static constexpr int kStages = 3, kAlign = 1, kAlignC = 1;
};
template <>
struct KindTraits<TcKind::kBf16> {
  using Element = cutlass::bfloat16_t;
  using Instruction = cutlass::gemm::GemmShape<16, 8, 16>;
  static constexpr int kStages = 4, kAlign = 8, kAlignC = 1;
};

template <TcLayout L>
struct LayoutTraits;
template <>
struct LayoutTraits<TcLayout::kRC> {
  using A = RowMajor;
  using B = ColumnMajor;
};
template <>
struct LayoutTraits<TcLayout::kRR> {
  using A = RowMajor;
  using B = RowMajor;
};
template <>
struct LayoutTraits<TcLayout::kCR> {
  using A = ColumnMajor;
  using B = RowMajor;
};

template <TcKind K, TcLayout L>
using GemmOp = cutlass::gemm::device::GemmUniversal<
    typename KindTraits<K>::Element, typename LayoutTraits<L>::A,
    typename KindTraits<K>::Element, typename LayoutTraits<L>::B, float, RowMajor, float,
    cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80, cutlass::gemm::GemmShape<128, 128, 32>,
    cutlass::gemm::GemmShape<64, 64, 32>, typename KindTraits<K>::Instruction,
    cutlass::epilogue::thread::LinearCombination<float, KindTraits<K>::kAlignC, float, float>,
    cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<8>, KindTraits<K>::kStages,
    KindTraits<K>::kAlign, KindTraits<K>::kAlign, cutlass::arch::OpMultiplyAdd>;

template <TcKind K, TcLayout L>
typename GemmOp<K, L>::Arguments make_args(const TcGemm& g) {
  using Op = GemmOp<K, L>;
  const bool split = g.splits > 1;
  // beta = 0: D is write-only (serial split-K slices after the first add onto D themselves).
  return typename Op::Arguments(
      split ? cutlass::gemm::GemmUniversalMode::kGemm : cutlass::gemm::GemmUniversalMode::kBatched,
      cutlass::gemm::GemmCoord(g.m, g.n, g.k), split ? g.splits : g.batches,
      typename Op::EpilogueOutputOp::Params(g.alpha, 0.0f), g.a, g.b, g.d, g.d, g.batch_a,
      g.batch_b, g.batch_d, g.batch_d, g.lda, g.ldb, g.ldd, g.ldd);
}

template <TcKind K, TcLayout L>
size_t workspace_bytes(const TcGemm& g) {
  return GemmOp<K, L>::get_workspace_size(make_args<K, L>(g));
}

template <TcKind K, TcLayout L>
const char* run(const TcGemm& g, void* workspace, cudaStream_t stream) {
  using Op = GemmOp<K, L>;
  const auto args = make_args<K, L>(g);
  if (Op::can_implement(args) != cutlass::Status::kSuccess) {
    return "strainer_fast: tensor-core GEMM cannot run this problem (alignment or size)";
  }
  Op op;
  cutlass::Status status = op.initialize(args, workspace, stream);
  if (status == cutlass::Status::kSuccess) status = op.run(stream);
  return status == cutlass::Status::kSuccess ? nullptr : cutlassGetStatusString(status);
}

template <TcLayout L>
size_t workspace_for(TcKind kind, const TcGemm& g) {
  switch (kind) {
    case TcKind::kTf32: return workspace_bytes<TcKind::kTf32, L>(g);
    case TcKind::kTf32Align1: return workspace_bytes<TcKind::kTf32Align1, L>(g);
    case TcKind::kBf16: return workspace_bytes<TcKind::kBf16, L>(g);
  }
  return 0;
}

template <TcLayout L>
const char* run_for(TcKind kind, const TcGemm& g, void* workspace, cudaStream_t stream) {
  switch (kind) {
    case TcKind::kTf32: return run<TcKind::kTf32, L>(g, workspace, stream);
    case TcKind::kTf32Align1: return run<TcKind::kTf32Align1, L>(g, workspace, stream);
    case TcKind::kBf16: return run<TcKind::kBf16, L>(g, workspace, stream);
  }
  return "strainer_fast: unknown tensor-core GEMM kind";
}

}  // namespace

size_t tc_gemm_workspace_bytes(TcKind kind, TcLayout layout, const TcGemm& g) {
  switch (layout) {
    case TcLayout::kRC: return workspace_for<TcLayout::kRC>(kind, g);
    case TcLayout::kRR: return workspace_for<TcLayout::kRR>(kind, g);
    case TcLayout::kCR: return workspace_for<TcLayout::kCR>(kind, g);
  }
  return 0;
}

const char* tc_gemm_run(TcKind kind, TcLayout layout, const TcGemm& g, void* workspace,
                        cudaStream_t stream) {
  switch (layout) {
    case TcLayout::kRC: return run_for<TcLayout::kRC>(kind, g, workspace, stream);
    case TcLayout::kRR: return run_for<TcLayout::kRR>(kind, g, workspace, stream);
    case TcLayout::kCR: return run_for<TcLayout::kCR>(kind, g, workspace, stream);
  }
  return "strainer_fast: unknown tensor-core GEMM layout";
}

}  // namespace strainer_fast::cuda
