// CUTLASS instantiations behind tc_gemm.h's fused GEMMs: the sm80 tensor-core mainloop
// of tc_gemm_sm80.cu (128 x 128 x 32 CTA tiles, four 64 x 64 warps, 3 TF32 / 4 bf16
// stages) with an epilogue visitor graph (Sm80EVT / Sm80TopologicalVisitor) in place of
// the linear combination, so the sine layer's bias + sine (forward) or cos gate
// (backward) happen on the accumulators in registers. Torch-free.
#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/kernel/default_gemm_universal_with_visitor.h>
#include <cutlass/gemm/threadblock/threadblock_swizzle.h>
#include <cutlass/layout/matrix.h>
#include <cutlass/numeric_types.h>
// After the GEMM headers: the visitors use cutlass::gemm and NumericArrayConverter unqualified.
#include <cutlass/epilogue/threadblock/fusion/visitors.hpp>

#include "../dispatch.h"
#include "epilogue_functors.cuh"
#include "tc_gemm.h"

namespace strainer_fast::cuda {
namespace {

using namespace cute;
namespace tb = cutlass::epilogue::threadblock;
using cutlass::layout::ColumnMajor;
using cutlass::layout::RowMajor;

template <TcKind K>
struct Kind;
template <>
struct Kind<TcKind::kTf32> {
  using Element = float;
  using Instruction = cutlass::gemm::GemmShape<16, 8, 8>;
  static constexpr int kStages = 3, kAlign = 4;
};
template <>
struct Kind<TcKind::kBf16> {
  using Element = cutlass::bfloat16_t;
  using Instruction = cutlass::gemm::GemmShape<16, 8, 16>;
  static constexpr int kStages = 4, kAlign = 8;
};

using CtaShape = cutlass::gemm::GemmShape<128, 128, 32>;
using WarpShape = cutlass::gemm::GemmShape<64, 64, 32>;
constexpr int kEpiAlign = 4;  // elements per epilogue access (fp32: 16 B, bf16: 8 B)
constexpr int kEpiStages = 1;
using ThreadMap = tb::OutputTileThreadLayout<CtaShape, WarpShape, float, kEpiAlign, kEpiStages>;

using StrideMat = cute::Stride<int64_t, _1, int64_t>;  // row-major (M, N) per batch L
using StrideRow = cute::Stride<_0, _1, int64_t>;       // a row vector per batch
constexpr auto kRound = cutlass::FloatRoundStyle::round_to_nearest;

using Acc = tb::VisitorAccFetch;
template <class E>
using Store = tb::VisitorAuxStore<ThreadMap, E, kRound, StrideMat>;
template <template <class> class Fn>
using Compute = tb::VisitorCompute<Fn, float, float, kRound>;

struct LayoutRC {  // forward: A row-major [m, k], B column-major
  using A = RowMajor;
  using B = ColumnMajor;
};
struct LayoutRR {  // dX: A row-major, B row-major [k, n]
  using A = RowMajor;
  using B = RowMajor;
};

// Forward: D <- z = acc + bias; H <- sin z. The z store passes z on to the sine.
template <TcKind K>
struct BiasSine {
  using H = typename Kind<K>::Element;
  using Bias = tb::VisitorRowBroadcast<ThreadMap, float, StrideRow>;
  using Z = tb::Sm80EVT<Compute<cutlass::plus>, Acc, Bias>;
  using ZStored = tb::Sm80EVT<Store<float>, Z>;
  using Sine = tb::Sm80EVT<Compute<SineFn>, ZStored>;
  using Graph = tb::Sm80EVT<Store<H>, Sine>;
  using Layout = LayoutRC;

  static typename Graph::Arguments args(const TcGemm& g, const TcFused& f) {
    return {{{{{}, {f.bias, 0.0f, {_0{}, _1{}, f.batch_bias}}, {}},
              {g.d, {g.ldd, _1{}, g.batch_d}}},
             {}},
            {static_cast<H*>(f.h), {f.ldh, _1{}, f.batch_h}}};
  }
};

// Backward gate as a graph over z_in, loaded once: nodes in topological order, each
// with its children's indices; the last node (the D store) is the root.
template <TcKind K>
struct Gate;
template <>
struct Gate<TcKind::kTf32> {
  using ZIn = tb::VisitorAuxLoad<ThreadMap, float, StrideMat>;
  using Graph = tb::Sm80TopologicalVisitor<
      float,
      cute::tuple<cute::seq<>,      // 0 acc (dh)
                  cute::seq<>,      // 1 z_in
                  cute::seq<1>,     // 2 sin z_in
                  cute::seq<2>,     // 3 H <- sin z_in
                  cute::seq<0, 1>,  // 4 dz = dh * cos z_in
                  cute::seq<4>>,    // 5 D <- dz
      Acc, ZIn, Compute<SineFn>, Store<float>, Compute<GateFn>, Store<float>>;
  using Layout = LayoutRR;

  static typename Graph::Arguments args(const TcGemm& g, const TcFused& f) {
    return {{},
            {const_cast<float*>(f.z_in), 0.0f, {f.ldz, _1{}, f.batch_z}},
            {},
            {static_cast<float*>(f.h), {f.ldh, _1{}, f.batch_h}},
            {},
            {g.d, {g.ldd, _1{}, g.batch_d}}};
  }
};
template <>
struct Gate<TcKind::kBf16> {
  using bf16 = cutlass::bfloat16_t;
  using ZIn = tb::VisitorAuxLoad<ThreadMap, float, StrideMat>;
  using Graph = tb::Sm80TopologicalVisitor<
      float,
      cute::tuple<cute::seq<>,      // 0 acc (dh)
                  cute::seq<>,      // 1 z_in
                  cute::seq<1>,     // 2 sin z_in
                  cute::seq<2>,     // 3 H <- sin z_in (bf16)
                  cute::seq<0, 1>,  // 4 dz = dh * cos z_in
                  cute::seq<4>>,    // 5 D_lo <- dz (bf16)
      Acc, ZIn, Compute<SineFn>, Store<bf16>, Compute<GateFn>, Store<bf16>>;
  using Layout = LayoutRR;

  static typename Graph::Arguments args(const TcGemm&, const TcFused& f) {  // D unused
    return {{},
            {const_cast<float*>(f.z_in), 0.0f, {f.ldz, _1{}, f.batch_z}},
            {},
            {static_cast<bf16*>(f.h), {f.ldh, _1{}, f.batch_h}},
            {},
            {static_cast<bf16*>(f.d_lo), {f.ld_lo, _1{}, f.batch_lo}}};
  }
};

template <TcKind K, class Ep>
using FusedKernel = typename cutlass::gemm::kernel::DefaultGemmWithVisitor<
    typename Kind<K>::Element, typename Ep::Layout::A, cutlass::ComplexTransform::kNone,
    Kind<K>::kAlign, typename Kind<K>::Element, typename Ep::Layout::B,
    cutlass::ComplexTransform::kNone, Kind<K>::kAlign, float, RowMajor, kEpiAlign, float, float,
    cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80, CtaShape, WarpShape,
    typename Kind<K>::Instruction, typename Ep::Graph,
    cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<8>, Kind<K>::kStages,
    cutlass::arch::OpMultiplyAdd, kEpiStages>::GemmKernel;

template <TcKind K, class Ep>
using FusedOp = cutlass::gemm::device::GemmUniversalAdapter<FusedKernel<K, Ep>>;

template <TcKind K, class Ep>
typename FusedOp<K, Ep>::Arguments make_args(const TcGemm& g, const TcFused& f) {
  using Op = FusedOp<K, Ep>;
  // D and C belong to the visitor graph; the kernel's own C/D pointers stay unused.
  return typename Op::Arguments(
      g.batches > 1 ? cutlass::gemm::GemmUniversalMode::kBatched
                    : cutlass::gemm::GemmUniversalMode::kGemm,
      cutlass::gemm::GemmCoord(g.m, g.n, g.k), g.batches, Ep::args(g, f), g.a, g.b, nullptr,
      nullptr, g.batch_a, g.batch_b, int64_t{0}, int64_t{0}, g.lda, g.ldb, int64_t{0}, int64_t{0});
}

// The visitors' stores and loads are predicated per 4-element vector (by its first
// column), so n, every leading dimension and batch stride must be multiples of 4
// (dispatch::sm80_fused_aligned, which the launcher's plan shares).
static_assert(kEpiAlign == 4, "dispatch::sm80_fused_aligned assumes 4-element epilogue vectors");

template <TcKind K, class Ep>
bool can_run(const TcGemm& g, const TcFused& f) {
  return FusedOp<K, Ep>::can_implement(make_args<K, Ep>(g, f)) == cutlass::Status::kSuccess;
}

template <TcKind K, class Ep>
const char* run(const TcGemm& g, const TcFused& f, cudaStream_t stream) {
  using Op = FusedOp<K, Ep>;
  const auto args = make_args<K, Ep>(g, f);
  if (Op::can_implement(args) != cutlass::Status::kSuccess) {
    return "strainer_fast: fused tensor-core GEMM cannot run this problem (alignment or size)";
  }
  Op op;
  cutlass::Status status = op.initialize(args, nullptr, stream);
  if (status == cutlass::Status::kSuccess) status = op.run(stream);
  return status == cutlass::Status::kSuccess ? nullptr : cutlassGetStatusString(status);
}

}  // namespace

bool tc_gemm_fused_can_run(TcKind kind, TcEpilogue ep, const TcGemm& g, const TcFused& f) {
  if (!dispatch::sm80_fused_aligned(kind, ep, g, f)) return false;
  const bool gate = ep == TcEpilogue::kGate;
  switch (kind) {
    case TcKind::kTf32:
      return gate ? can_run<TcKind::kTf32, Gate<TcKind::kTf32>>(g, f)
                  : can_run<TcKind::kTf32, BiasSine<TcKind::kTf32>>(g, f);
    case TcKind::kBf16:
      return gate ? can_run<TcKind::kBf16, Gate<TcKind::kBf16>>(g, f)
                  : can_run<TcKind::kBf16, BiasSine<TcKind::kBf16>>(g, f);
    case TcKind::kTf32Align1: return false;
  }
  return false;
}

const char* tc_gemm_fused_run(TcKind kind, TcEpilogue ep, const TcGemm& g, const TcFused& f,
                              cudaStream_t stream) {
  if (!tc_gemm_fused_can_run(kind, ep, g, f)) {
    return "strainer_fast: fused tensor-core GEMM cannot run this problem (alignment or size)";
  }
  const bool gate = ep == TcEpilogue::kGate;
  if (kind == TcKind::kTf32) {
    return gate ? run<TcKind::kTf32, Gate<TcKind::kTf32>>(g, f, stream)
                : run<TcKind::kTf32, BiasSine<TcKind::kTf32>>(g, f, stream);
  }
  return gate ? run<TcKind::kBf16, Gate<TcKind::kBf16>>(g, f, stream)
              : run<TcKind::kBf16, BiasSine<TcKind::kBf16>>(g, f, stream);
}

}  // namespace strainer_fast::cuda
