// Hopper (sm_90a) instantiation behind tc_gemm.h's fused forward: CUTLASS 3.x
// CollectiveBuilder GEMMs (TMA loads, wgmma, warp-specialised cooperative kernel,
// 128 x 128 tiles, 1 x 1 x 1 clusters) whose TMA epilogue computes
// z = acc + bias[col], stores z (fp32) as the auxiliary output and sin z as D.
// Built with STRAINER_FAST_SM90_KERNELS only in a translation unit compiled for sm_90a
// alone; without it the functions below report "not available". Torch-free.
#include "tc_gemm.h"

#if defined(STRAINER_FAST_SM90_KERNELS)

#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/operations.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/layout/matrix.h>

#include "../dispatch.h"
#include "epilogue_functors.cuh"
#include "tc_gemm_sm90_common.cuh"

namespace strainer_fast::cuda {
namespace {

using namespace cute;
template <TcKind K>
using Sm90Kind = sm90::Kind<K>;

// D = sin z: the next layer's operand (fp32 for tf32, bf16 for bf16), row-major.
// Aux = z (fp32, row-major), the saved pre-activation. Bias: one value per column n.
template <TcKind K>
struct Sm90BiasSine {
  using ElementAB = typename Sm90Kind<K>::Element;
  using ElementD = ElementAB;
  static constexpr int kAlignAB = 16 / sizeof(ElementAB);
  static constexpr int kAlignD = 16 / sizeof(ElementD);
  using Tile = typename Sm90Kind<K>::Tile;
  using Cluster = Shape<_1, _1, _1>;
  using Fusion = cutlass::epilogue::fusion::LinCombPerColBiasEltActAux<
      cutlass::layout::RowMajor, SineFn, ElementD, float, float, float, float, float, 4, 4,
      cutlass::FloatRoundStyle::round_to_nearest>;
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Tile, Cluster,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void,
      cutlass::layout::RowMajor, kAlignD, ElementD, cutlass::layout::RowMajor, kAlignD,
      cutlass::epilogue::TmaWarpSpecializedCooperative, Fusion>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElementAB, cutlass::layout::RowMajor,
      kAlignAB, ElementAB, cutlass::layout::ColumnMajor, kAlignAB, float, Tile, Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelTmaWarpSpecializedCooperative>::CollectiveOp;
  using Kernel =
      cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue>;
  using Op = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Op::Arguments args(const TcGemm& g, const TcFused& f) {
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    using StrideD = typename Kernel::StrideD;
    typename Op::Arguments a{};
    a.mode = g.batches > 1 ? cutlass::gemm::GemmUniversalMode::kBatched
                           : cutlass::gemm::GemmUniversalMode::kGemm;
    a.problem_shape = {g.m, g.n, g.k, g.batches};
    // A(m, k) = a[m * lda + k]; B(n, k) = b[n * ldb + k] (both K-major).
    a.mainloop.ptr_A = static_cast<const ElementAB*>(g.a);
    a.mainloop.dA = StrideA{g.lda, _1{}, g.batch_a};
    a.mainloop.ptr_B = static_cast<const ElementAB*>(g.b);
    a.mainloop.dB = StrideB{g.ldb, _1{}, g.batch_b};
    auto& fu = a.epilogue.thread;
    fu.alpha = g.alpha;
    fu.beta = 0.0f;
    fu.bias_ptr = f.bias;
    fu.dBias = {_0{}, _1{}, f.batch_bias};
    fu.aux_ptr = g.d;
    fu.dAux = {g.ldd, _1{}, g.batch_d};
    a.epilogue.ptr_C = nullptr;
    a.epilogue.ptr_D = static_cast<ElementD*>(f.h);
    a.epilogue.dD = StrideD{f.ldh, _1{}, f.batch_h};
    a.hw_info = sm90::hardware_info();
    return a;
  }
};

// TMA: every global stride (leading dimensions, batch strides) and base address a
// multiple of 16 bytes; the bias vector is read per 4 floats. No split-K, no workspace.
template <TcKind K>
bool can_run(const TcGemm& g, const TcFused& f) {
  using Ep = Sm90BiasSine<K>;
  static_assert(sizeof(typename Ep::ElementAB) == dispatch::sm90_operand_bytes(K) &&
                sizeof(typename Ep::ElementD) == sizeof(typename Ep::ElementAB));
  if (!dispatch::sm90_fused_aligned(K, g, f)) return false;
  const auto args = Ep::args(g, f);
  return Ep::Op::can_implement(args) == cutlass::Status::kSuccess &&
         Ep::Op::get_workspace_size(args) == 0;
}

template <TcKind K>
const char* run(const TcGemm& g, const TcFused& f, cudaStream_t stream) {
  return sm90::run_op<typename Sm90BiasSine<K>::Op>(Sm90BiasSine<K>::args(g, f), nullptr, stream);
}

}  // namespace

bool tc_sm90_built() { return true; }

bool tc_gemm_fused_sm90_can_run(TcKind kind, const TcGemm& g, const TcFused& f) {
  switch (kind) {
    case TcKind::kTf32: return can_run<TcKind::kTf32>(g, f);
    case TcKind::kBf16: return can_run<TcKind::kBf16>(g, f);
    case TcKind::kTf32Align1: return false;
  }
  return false;
}

const char* tc_gemm_fused_sm90_run(TcKind kind, const TcGemm& g, const TcFused& f,
                                   cudaStream_t stream) {
  if (!tc_gemm_fused_sm90_can_run(kind, g, f)) {
    return "strainer_fast: sm_90a fused GEMM cannot run this problem (alignment or size)";
  }
  return kind == TcKind::kTf32 ? run<TcKind::kTf32>(g, f, stream)
                               : run<TcKind::kBf16>(g, f, stream);
}

}  // namespace strainer_fast::cuda

#else  // !STRAINER_FAST_SM90_KERNELS

namespace strainer_fast::cuda {

bool tc_sm90_built() { return false; }

bool tc_gemm_fused_sm90_can_run(TcKind, const TcGemm&, const TcFused&) { return false; }

const char* tc_gemm_fused_sm90_run(TcKind, const TcGemm&, const TcFused&, cudaStream_t) {
  return "strainer_fast: sm_90a kernels not available in this build";
}

}  // namespace strainer_fast::cuda

#endif  // STRAINER_FAST_SM90_KERNELS
