// Hopper (sm_90a) instantiations behind tc_gemm.h's backward GEMMs: CUTLASS 3.x
// CollectiveBuilder GEMMs (TMA loads, wgmma, warp-specialised cooperative kernel,
// 128 x 128 tiles, 1 x 1 x 1 clusters), like the fused forward of tc_gemm_sm90.cu.
//
// dX with the cos gate (tc_gemm_gate_sm90_*): dh = dz W' on the tensor cores, then in
// the TMA epilogue, as an Sm90 visitor graph over z (TMA-loaded as the epilogue's
// source operand C, so it shares its shared-memory stages with D):
//   0 acc (dh)   1 z   2 sin z   3 H <- sin z (aux store)   4 dz = dh * cos z -> D
// with the range-reduced SineFn / GateFn of epilogue_functors.cuh (same functors, same
// results as the sm80 visitor graph). kTf32: D = dz in fp32; B must be K-major (layout
// kRC, a transposed copy of W'), as wgmma reads tf32 operands K-major only. kBf16: D =
// dz in bf16 (the next GEMMs' operand); B may be W' itself (layout kRR, MN-major).
//
// dW for bf16 (tc_gemm_sm90_*, layout kCR): both operands MN-major (allowed for 16-bit
// wgmma), D = alpha * acc in fp32, on the stream-K tile scheduler: data-parallel, or
// split-K over the points when g.splits > 1 with the scheduler's deterministic
// reduction (the k-slices of a tile add into its workspace partial in a fixed order,
// no atomics), so results are bitwise reproducible. tf32 dW stays on the sm80 kernel:
// its operands are MN-major (A = dz^T, B = h, both read along the points), which tf32
// wgmma cannot read, and transposed copies of dz and h would cost more traffic than
// the GEMM saves.
//
// Built with STRAINER_FAST_SM90_KERNELS only in a translation unit compiled for sm_90a
// alone; without it the functions below report "not available". Torch-free.
#include "tc_gemm.h"

#if defined(STRAINER_FAST_SM90_KERNELS)

#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/operations.hpp>
#include <cutlass/epilogue/fusion/sm90_visitor_tma_warpspecialized.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/gemm/kernel/tile_scheduler.hpp>
#include <cutlass/layout/matrix.h>

#include <type_traits>

#include "../dispatch.h"
#include "epilogue_functors.cuh"
#include "tc_gemm_sm90_common.cuh"

namespace strainer_fast::cuda {
namespace {

using namespace cute;
using cutlass::layout::ColumnMajor;
using cutlass::layout::RowMajor;
namespace fusion = cutlass::epilogue::fusion;
namespace epi = cutlass::epilogue::collective;
using Cluster = Shape<_1, _1, _1>;
using EpiSchedule = cutlass::epilogue::TmaWarpSpecializedCooperative;
using MainSchedule = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
constexpr auto kRound = cutlass::FloatRoundStyle::round_to_nearest;

template <TcKind K, class Epilogue, class LayoutA, class LayoutB>
using MainloopFor = typename cutlass::gemm::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, typename sm90::Kind<K>::Element, LayoutA,
    16 / sizeof(typename sm90::Kind<K>::Element), typename sm90::Kind<K>::Element, LayoutB,
    16 / sizeof(typename sm90::Kind<K>::Element), float, typename sm90::Kind<K>::Tile, Cluster,
    cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
        sizeof(typename Epilogue::SharedStorage))>,
    MainSchedule>::CollectiveOp;

// ---- dX with the cos gate ----
template <TcKind K, TcLayout L>
struct Gate {
  static_assert((K == TcKind::kTf32 && L == TcLayout::kRC) ||
                    (K == TcKind::kBf16 && L == TcLayout::kRR),
                "tf32: K-major B (a transposed W'); bf16: W' itself (MN-major B)");
  using ElementAB = typename sm90::Kind<K>::Element;
  using ElementD = std::conditional_t<K == TcKind::kTf32, float, cutlass::bfloat16_t>;
  using ElementH = ElementAB;
  using Tile = typename sm90::Kind<K>::Tile;
  using EpiTile = epi::EpilogueTileAuto;
  // The shapes and stages the builder picks for this epilogue (C = z fp32, D), for the
  // H store's shared-memory layout and copy atoms.
  using Desc = epi::detail::EpilogueDescriptor<Tile, EpiTile, float, ElementD, EpiSchedule>;
  using HDesc = epi::detail::AuxStoreDescriptor<Desc, RowMajor, ElementH>;
  using HStore = fusion::Sm90AuxStore<HDesc::Stages, typename Desc::EpilogueTile, ElementH, kRound,
                                      typename HDesc::Stride, typename HDesc::SmemLayoutAtom,
                                      typename HDesc::CopyOpR2S>;
  using Callbacks = fusion::Sm90TopologicalVisitor<
      float,
      cute::tuple<cute::seq<>,      // 0 acc (dh)
                  cute::seq<>,      // 1 z (source C)
                  cute::seq<1>,     // 2 sin z
                  cute::seq<2>,     // 3 H <- sin z
                  cute::seq<0, 1>>, // 4 dz = dh * cos z -> D
      fusion::Sm90AccFetch, fusion::Sm90SrcFetch<float>,
      fusion::Sm90Compute<SineFn, float, float, kRound>, HStore,
      fusion::Sm90Compute<GateFn, ElementD, float, kRound>>;
  using Epilogue = typename epi::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Tile, Cluster, EpiTile, float, float,
      float, RowMajor, 4, ElementD, RowMajor, 16 / sizeof(ElementD), EpiSchedule,
      Callbacks>::CollectiveOp;
  using LayoutB = std::conditional_t<L == TcLayout::kRC, ColumnMajor, RowMajor>;
  using Mainloop = MainloopFor<K, Epilogue, RowMajor, LayoutB>;
  using Kernel =
      cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue>;
  using Op = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static void* d_ptr(const TcGemm& g, const TcFused& f) {
    return K == TcKind::kTf32 ? static_cast<void*>(g.d) : f.d_lo;
  }

  static typename Op::Arguments args(const TcGemm& g, const TcFused& f) {
    typename Op::Arguments a{};
    a.mode = g.batches > 1 ? cutlass::gemm::GemmUniversalMode::kBatched
                           : cutlass::gemm::GemmUniversalMode::kGemm;
    a.problem_shape = {g.m, g.n, g.k, g.batches};
    a.mainloop.ptr_A = static_cast<const ElementAB*>(g.a);
    a.mainloop.dA = typename Kernel::StrideA{g.lda, _1{}, g.batch_a};
    a.mainloop.ptr_B = static_cast<const ElementAB*>(g.b);
    if constexpr (L == TcLayout::kRC) {  // B(n, k) = b[n * ldb + k]
      a.mainloop.dB = typename Kernel::StrideB{g.ldb, _1{}, g.batch_b};
    } else {  // B(n, k) = b[k * ldb + n]
      a.mainloop.dB = typename Kernel::StrideB{_1{}, g.ldb, g.batch_b};
    }
    a.epilogue.thread = {{}, {}, {}, {static_cast<ElementH*>(f.h), {f.ldh, _1{}, f.batch_h}}, {}};
    a.epilogue.ptr_C = f.z_in;
    a.epilogue.dC = typename Kernel::StrideC{f.ldz, _1{}, f.batch_z};
    a.epilogue.ptr_D = static_cast<ElementD*>(d_ptr(g, f));
    if constexpr (K == TcKind::kTf32) {
      a.epilogue.dD = typename Kernel::StrideD{g.ldd, _1{}, g.batch_d};
    } else {
      a.epilogue.dD = typename Kernel::StrideD{f.ld_lo, _1{}, f.batch_lo};
    }
    a.hw_info = sm90::hardware_info();
    return a;
  }

  static bool can_run(const TcGemm& g, const TcFused& f) {
    static_assert(sizeof(ElementAB) == dispatch::sm90_operand_bytes(K) &&
                  sizeof(ElementD) == sizeof(ElementAB) && sizeof(ElementH) == sizeof(ElementAB));
    if (!dispatch::sm90_gate_aligned(K, L, g, f)) return false;
    const auto a = args(g, f);
    return Op::can_implement(a) == cutlass::Status::kSuccess && Op::get_workspace_size(a) == 0;
  }
};

// ---- bf16 dW: D = alpha * A B, A column-major [m, k] (dz^T), B row-major [k, n] (h) ----
struct DwBf16 {
  using Element = cutlass::bfloat16_t;
  using Epilogue = typename epi::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, sm90::Kind<TcKind::kBf16>::Tile, Cluster,
      epi::EpilogueTileAuto, float, float, void, RowMajor, 4, float, RowMajor, 4, EpiSchedule,
      fusion::LinearCombination<float, float, void, float, kRound>>::CollectiveOp;
  using Mainloop = MainloopFor<TcKind::kBf16, Epilogue, ColumnMajor, RowMajor>;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop,
                                                      Epilogue, cutlass::gemm::StreamKScheduler>;
  using Op = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Op::Arguments args(const TcGemm& g) {
    typename Op::Arguments a{};
    a.mode = g.batches > 1 ? cutlass::gemm::GemmUniversalMode::kBatched
                           : cutlass::gemm::GemmUniversalMode::kGemm;
    a.problem_shape = {g.m, g.n, g.k, g.batches};
    a.mainloop.ptr_A = static_cast<const Element*>(g.a);  // A(m, k) = a[k * lda + m]
    a.mainloop.dA = typename Kernel::StrideA{_1{}, g.lda, g.batch_a};
    a.mainloop.ptr_B = static_cast<const Element*>(g.b);  // B(n, k) = b[k * ldb + n]
    a.mainloop.dB = typename Kernel::StrideB{_1{}, g.ldb, g.batch_b};
    a.epilogue.thread.alpha = g.alpha;
    a.epilogue.thread.beta = 0.0f;
    a.epilogue.ptr_C = nullptr;
    a.epilogue.ptr_D = g.d;
    a.epilogue.dD = typename Kernel::StrideD{g.ldd, _1{}, g.batch_d};
    using Mode = decltype(a.scheduler.decomposition_mode);
    using Reduction = decltype(a.scheduler.reduction_mode);
    a.scheduler.splits = g.splits;
    a.scheduler.decomposition_mode = g.splits > 1 ? Mode::SplitK : Mode::DataParallel;
    a.scheduler.reduction_mode = Reduction::Deterministic;
    a.hw_info = sm90::hardware_info();
    return a;
  }

  static bool can_run(const TcGemm& g) {
    static_assert(sizeof(Element) == 2);
    if (!dispatch::sm90_gemm_aligned(TcKind::kBf16, TcLayout::kCR, g)) return false;
    return Op::can_implement(args(g)) == cutlass::Status::kSuccess;
  }
};

bool gate_can_run(TcKind kind, TcLayout layout, const TcGemm& g, const TcFused& f) {
  if (kind == TcKind::kTf32 && layout == TcLayout::kRC) {
    return Gate<TcKind::kTf32, TcLayout::kRC>::can_run(g, f);
  }
  if (kind == TcKind::kBf16 && layout == TcLayout::kRR) {
    return Gate<TcKind::kBf16, TcLayout::kRR>::can_run(g, f);
  }
  return false;
}

}  // namespace

bool tc_gemm_gate_sm90_can_run(TcKind kind, TcLayout layout, const TcGemm& g, const TcFused& f) {
  return gate_can_run(kind, layout, g, f);
}

const char* tc_gemm_gate_sm90_run(TcKind kind, TcLayout layout, const TcGemm& g,
                                  const TcFused& f, cudaStream_t stream) {
  if (!gate_can_run(kind, layout, g, f)) {
    return "strainer_fast: sm_90a gate GEMM cannot run this problem (alignment or size)";
  }
  if (kind == TcKind::kTf32) {
    using Ep = Gate<TcKind::kTf32, TcLayout::kRC>;
    return sm90::run_op<Ep::Op>(Ep::args(g, f), nullptr, stream);
  }
  using Ep = Gate<TcKind::kBf16, TcLayout::kRR>;
  return sm90::run_op<Ep::Op>(Ep::args(g, f), nullptr, stream);
}

bool tc_gemm_sm90_can_run(TcKind kind, TcLayout layout, const TcGemm& g) {
  return kind == TcKind::kBf16 && layout == TcLayout::kCR && DwBf16::can_run(g);
}

size_t tc_gemm_sm90_workspace_bytes(TcKind kind, TcLayout layout, const TcGemm& g) {
  return tc_gemm_sm90_can_run(kind, layout, g) ? DwBf16::Op::get_workspace_size(DwBf16::args(g))
                                               : 0;
}

const char* tc_gemm_sm90_run(TcKind kind, TcLayout layout, const TcGemm& g, void* workspace,
                             cudaStream_t stream) {
  if (!tc_gemm_sm90_can_run(kind, layout, g)) {
    return "strainer_fast: sm_90a GEMM cannot run this problem (kind, layout or alignment)";
  }
  return sm90::run_op<DwBf16::Op>(DwBf16::args(g), workspace, stream);
}

}  // namespace strainer_fast::cuda

#else  // !STRAINER_FAST_SM90_KERNELS

namespace strainer_fast::cuda {

bool tc_gemm_gate_sm90_can_run(TcKind, TcLayout, const TcGemm&, const TcFused&) { return false; }

const char* tc_gemm_gate_sm90_run(TcKind, TcLayout, const TcGemm&, const TcFused&, cudaStream_t) {
  return "strainer_fast: sm_90a kernels not available in this build";
}

bool tc_gemm_sm90_can_run(TcKind, TcLayout, const TcGemm&) { return false; }

size_t tc_gemm_sm90_workspace_bytes(TcKind, TcLayout, const TcGemm&) { return 0; }

const char* tc_gemm_sm90_run(TcKind, TcLayout, const TcGemm&, void*, cudaStream_t) {
  return "strainer_fast: sm_90a kernels not available in this build";
}

}  // namespace strainer_fast::cuda

#endif  // STRAINER_FAST_SM90_KERNELS
