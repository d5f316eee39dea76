// Dispatch rules of the CUDA launcher (cuda/fused_mlp_cuda.cu), free of CUDA and torch:
// which engine a layer uses, each tensor-core GEMM's problem (extents, leading
// dimensions, batch strides), its kernel kind, split-K and batching, and the part of
// every kernel's can_run that depends on the problem alone (alignment; CUTLASS's own
// can_implement stays in the kernels). The launcher decides with these functions, and
// plan_launches() replays its control flow with them on host data only, so CPU builds
// and tests can see which branch every launch of a problem takes (bindings.cpp:
// _C.dispatch_plan), and a GPU test compares that plan with the branch counters the
// launcher keeps (_C.cuda_branch_counts).
#pragma once

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/tc_problem.h"

namespace strainer_fast::dispatch {

using cuda::TcEpilogue;
using cuda::TcFused;
using cuda::TcGemm;
using cuda::TcKind;
using cuda::TcLayout;

constexpr int64_t kLowpMinInput = 16;     // narrower layer inputs run exact (ATen) GEMMs
constexpr int64_t kFirstLayerMaxIn = 4;   // layer 0 with <= 4 inputs: the small FMA kernel
constexpr int64_t kSplitMinDepth = 2048;  // points per serial split-K slice, at least
constexpr int64_t kMaxSplits = 32;
constexpr int64_t kTile = 128;            // CTA tile (M and N) of every tensor-core GEMM
constexpr int64_t kMaxSignals = 65535;

enum class Engine { kAten, kTf32, kBf16 };

// A launch site of the launcher; with a kernel kind (or none) it names one branch.
enum class Role : int {
  kFwdFirstLayer, kFwdAten, kFwdGemm, kFwdGemmCat, kFwdFusedSm80, kFwdFusedSm90,
  kBwdDzCat, kBwdDxAten, kBwdDxGemm, kBwdGateSm80, kBwdGateSm90, kBwdDwAten, kBwdDbAten,
  kBwdDwSm80, kBwdDwSm80Split, kBwdDwSm80Batched, kBwdDwSm80Cat, kBwdDwSm80CatSplit,
  kBwdDwSm90, kBwdDwSm90Split, kBwdDwSm90Batched, kBwdDwSm90Cat, kBwdDwSm90CatSplit,
  kBwdDx0Aten, kBwdDx0Gemm, kBwdDx0GemmCat, kCount
};
constexpr int kKinds = 4;  // none (ATen / elementwise), tf32, tf32 align1, bf16
constexpr int kBranches = static_cast<int>(Role::kCount) * kKinds;

inline int branch_id(Role role) { return static_cast<int>(role) * kKinds; }
inline int branch_id(Role role, TcKind kind) {
  return branch_id(role) + 1 + static_cast<int>(kind);
}

// "fwd.fused.sm90/tf32", "bwd.dw.sm80.cat.split/bf16", "fwd.first_layer", ...
inline std::string branch_name(int id) {
  static constexpr std::array<const char*, static_cast<int>(Role::kCount)> kRoles = {
      "fwd.first_layer", "fwd.aten", "fwd.gemm", "fwd.gemm.cat", "fwd.fused.sm80",
      "fwd.fused.sm90", "bwd.dz.cat", "bwd.dx.aten", "bwd.dx.gemm", "bwd.gate.sm80",
      "bwd.gate.sm90", "bwd.dw.aten", "bwd.db.aten", "bwd.dw.sm80", "bwd.dw.sm80.split",
      "bwd.dw.sm80.batched", "bwd.dw.sm80.cat", "bwd.dw.sm80.cat.split", "bwd.dw.sm90",
      "bwd.dw.sm90.split", "bwd.dw.sm90.batched", "bwd.dw.sm90.cat", "bwd.dw.sm90.cat.split",
      "bwd.dx0.aten", "bwd.dx0.gemm", "bwd.dx0.gemm.cat"};
  static constexpr std::array<const char*, kKinds> kKindNames = {"", "/tf32", "/tf32a1", "/bf16"};
  if (id < 0 || id >= kBranches) throw std::out_of_range("strainer_fast: unknown branch id");
  return std::string(kRoles[id / kKinds]) + kKindNames[id % kKinds];
}

inline int64_t round8(int64_t v) { return (v + 7) / 8 * 8; }
inline int64_t round4(int64_t v) { return (v + 3) / 4 * 4; }
inline int64_t tiles(int64_t m, int64_t n) { return ((m + kTile - 1) / kTile) * ((n + kTile - 1) / kTile); }

// A GEMM extent as the kernels' int, or a clear error.
inline int to_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) {
    throw std::invalid_argument(std::string("strainer_fast: the CUDA kernels' ") + what + " (" +
                                std::to_string(v) + ") exceeds INT_MAX; use fewer signals, "
                                "points or narrower layers per call");
  }
  return static_cast<int>(v);
}

inline void check_limits(int64_t signals, int64_t points) {
  if (signals > kMaxSignals) {
    throw std::invalid_argument("strainer_fast: at most 65535 signals per CUDA call, got " +
                                std::to_string(signals));
  }
  if (points > INT_MAX / 2) {
    throw std::invalid_argument("strainer_fast: at most " + std::to_string(INT_MAX / 2) +
                                " points per CUDA call, got " + std::to_string(points));
  }
}

inline Engine layer_engine(int64_t precision, int64_t in_width) {
  if (in_width < kLowpMinInput || precision == 0) return Engine::kAten;
  return precision == 1 ? Engine::kBf16 : Engine::kTf32;
}
inline bool first_layer_kernel(int64_t in_width) { return in_width <= kFirstLayerMaxIn; }

// Layer 0's dW operand from x gets a ones-column copy (db from the dW GEMM) when x is
// converted anyway (bf16) or narrow next to dz (2 in + 1 <= dW rows).
inline bool dw_ones_copy(bool lo, int64_t in_width, int64_t rows) {
  return lo || 2 * in_width + 1 <= rows;
}

// One batched dW launch for all signals when they fill the GPU, else one per signal.
inline bool dw_batched(int64_t launches, int64_t m, int64_t n, int64_t sms) {
  return launches > 1 && launches * tiles(m, n) >= sms;
}

// Serial split-K of a single-batch GEMM: enough slices for two CTAs per SM, each at least
// kSplitMinDepth deep, at most kMaxSplits.
inline void set_splits(TcGemm& p, bool split, int64_t sms) {
  if (!split || p.batches != 1) return;
  const int64_t want = (2 * sms + tiles(p.m, p.n) - 1) / tiles(p.m, p.n);
  const int64_t most = std::max<int64_t>(1, p.k / kSplitMinDepth);
  p.splits = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({want, most, kMaxSplits})));
}

inline bool aligned(int64_t multiple, std::initializer_list<int64_t> values,
                    std::initializer_list<const void*> ptrs) {
  for (int64_t v : values) {
    if (v % multiple != 0) return false;
  }
  for (const void* p : ptrs) {
    if (p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  }
  return true;
}

// TF32 kind: 4-element (16-byte) vector accesses when every extent, leading dimension,
// batch stride and pointer allows, else scalar accesses; bf16 if `lo`.
inline TcKind gemm_kind(bool lo, const TcGemm& p, int64_t a_inner) {
  if (lo) return TcKind::kBf16;
  return aligned(4, {a_inner, p.n, p.lda, p.ldb, p.ldd, p.batch_a, p.batch_b, p.batch_d},
                 {p.a, p.b, p.d})
             ? TcKind::kTf32
             : TcKind::kTf32Align1;
}

// ---- the problem-only part of each kernel's can_run ----
// sm80 fused epilogues (visitor stores/loads per 4-element vector, by its first column:
// n, leading dimensions and batch strides multiples of 4, 16-byte pointers) plus the
// alignment CUTLASS 2.x's can_implement asks of the mainloop operands (A row-major: k;
// B column-major (kRC): k, row-major (kRR): n) and of D (n, by the epilogue's 4).
inline bool sm80_fused_aligned(TcKind kind, TcEpilogue ep, const TcGemm& g, const TcFused& f) {
  if (kind == TcKind::kTf32Align1 || g.splits != 1 || g.batches < 1) return false;
  const int64_t op = cuda::tc_alignment(kind);
  const int64_t b_inner = ep == TcEpilogue::kBiasSine ? g.k : g.n;
  if (g.k % op != 0 || b_inner % op != 0 || g.n % 4 != 0) return false;
  if (ep == TcEpilogue::kBiasSine) {
    return aligned(4, {g.n, g.ldd, g.batch_d, f.batch_bias, f.ldh, f.batch_h}, {g.d, f.bias, f.h});
  }
  if (kind == TcKind::kBf16) {  // dz goes to D_lo only
    return aligned(4, {g.n, f.ld_lo, f.batch_lo, f.ldz, f.batch_z, f.ldh, f.batch_h},
                   {f.d_lo, f.z_in, f.h});
  }
  return aligned(4, {g.n, g.ldd, g.batch_d, f.ldz, f.batch_z, f.ldh, f.batch_h}, {g.d, f.z_in, f.h});
}

// sm_90a kernels (TMA): every global stride and base address a multiple of 16 bytes.
constexpr int64_t sm90_operand_bytes(TcKind kind) { return kind == TcKind::kBf16 ? 2 : 4; }

inline bool sm90_fused_aligned(TcKind kind, const TcGemm& g, const TcFused& f) {
  if (kind == TcKind::kTf32Align1) return false;
  const int64_t ab = sm90_operand_bytes(kind), d = ab;  // D (sin z) in the operand type
  if (g.splits != 1 || g.batches < 1 || g.m < 1 || g.n < 1 || g.k < 1) return false;
  return aligned(16, {g.k * ab, g.lda * ab, g.batch_a * ab, g.ldb * ab, g.batch_b * ab, g.n * 4,
                      g.ldd * 4, g.batch_d * 4, g.n * d, f.ldh * d, f.batch_h * d, f.batch_bias * 4},
                 {g.a, g.b, g.d, f.h, f.bias});
}

// kTf32 with layout kRC (B = a transposed W', K-major) or kBf16 with kRR (B = W').
inline bool sm90_gate_aligned(TcKind kind, TcLayout layout, const TcGemm& g, const TcFused& f) {
  if (!((kind == TcKind::kTf32 && layout == TcLayout::kRC) ||
        (kind == TcKind::kBf16 && layout == TcLayout::kRR))) {
    return false;
  }
  const bool tf32 = kind == TcKind::kTf32;
  const int64_t ab = sm90_operand_bytes(kind), d = ab, h = ab;
  const int64_t ld_d = tf32 ? g.ldd : f.ld_lo, batch_d = tf32 ? g.batch_d : f.batch_lo;
  const int64_t b_inner = layout == TcLayout::kRC ? g.k : g.n;
  if (g.splits != 1 || g.batches < 1 || g.m < 1 || g.n < 1 || g.k < 1) return false;
  return aligned(16, {g.k * ab, g.lda * ab, g.batch_a * ab, b_inner * ab, g.ldb * ab,
                      g.batch_b * ab, g.n * 4, f.ldz * 4, f.batch_z * 4, g.n * d, ld_d * d,
                      batch_d * d, g.n * h, f.ldh * h, f.batch_h * h},
                 {g.a, g.b, f.z_in, tf32 ? static_cast<const void*>(g.d) : f.d_lo, f.h});
}

// Plain sm_90a GEMMs: bf16 dW (layout kCR) only, split-K with a single batch.
inline bool sm90_gemm_aligned(TcKind kind, TcLayout layout, const TcGemm& g) {
  if (kind != TcKind::kBf16 || layout != TcLayout::kCR) return false;
  if (g.batches < 1 || g.splits < 1 || (g.splits > 1 && g.batches != 1) || g.m < 1 || g.n < 1 ||
      g.k < 1) {
    return false;
  }
  return aligned(16, {g.m * 2, g.lda * 2, g.batch_a * 2, g.n * 2, g.ldb * 2, g.batch_b * 2,
                      g.n * 4, g.ldd * 4, g.batch_d * 4},
                 {g.a, g.b, g.d});
}

// ---- the GEMM problems of the launcher (extents and strides; the caller sets pointers) ----
// Forward z = in W'^T of layer l: [N, S * wo] for the concatenated shared-input layer
// (`cat`), else S batches [N, wo]. in_ld: the operand's leading dimension.
inline TcGemm forward_gemm(int64_t S, int64_t N, int64_t wi, int64_t wo, bool lo, bool cat,
                           int64_t in_ld) {
  TcGemm p;
  p.m = to_int(N, "point count");
  p.n = to_int(cat ? S * wo : wo, "forward GEMM width (signals x outputs)");
  p.k = to_int(lo ? round8(wi) : wi, "layer input width");
  p.lda = in_ld;
  p.batch_a = cat ? 0 : N * in_ld;
  p.ldb = lo ? round8(wi) : wi;
  p.batch_b = cat ? 0 : lo ? round8(wo) * round8(wi) : wo * wi;
  p.ldd = p.n;
  p.batch_d = cat ? 0 : N * wo;
  p.batches = cat ? 1 : to_int(S, "signal count");
  return p;
}

inline TcFused forward_fused(int64_t N, int64_t wo, int64_t next_ld) {
  TcFused f;
  f.batch_bias = wo;
  f.ldh = next_ld;
  f.batch_h = N * next_ld;
  return f;
}

// dh = dz W' of layer l > 0: S batches [N, n] (n = wi with the gate epilogue, the padded
// ld_dh otherwise); dz_ld: dz's leading dimension (its bf16 operand's for bf16).
inline TcGemm dx_gemm(int64_t S, int64_t N, int64_t wi, int64_t wo, bool lo, int64_t dz_ld,
                      int64_t n) {
  TcGemm p;
  p.m = to_int(N, "point count");
  p.n = to_int(n, "layer input width");
  p.k = to_int(dz_ld, "layer output width");
  p.lda = dz_ld;
  p.batch_a = N * dz_ld;
  p.ldb = lo ? round8(wi) : wi;
  p.batch_b = lo ? round8(wo) * round8(wi) : wo * wi;
  p.ldd = n;
  p.batch_d = N * n;
  p.batches = to_int(S, "signal count");
  return p;
}

// The gate epilogue's operands: z_in [S, N, wi], H (layer l's dW operand, h_ld), bf16 dz_prev.
inline TcFused gate_fused(int64_t N, int64_t wi, int64_t h_ld, int64_t lo_ld) {
  TcFused f;
  f.ldz = wi;
  f.batch_z = N * wi;
  f.ldh = h_ld;
  f.batch_h = N * h_ld;
  f.ld_lo = lo_ld;
  f.batch_lo = N * lo_ld;
  return f;
}

// The sm_90a gate's problem: tf32 wgmma reads B K-major only, so tf32 takes B = W'^T
// ([S, wi, wo], a copy the caller makes) with layout kRC; bf16 reads W' as is (kRR).
inline TcLayout gate_sm90_problem(bool lo, int64_t wi, int64_t wo, TcGemm& q) {
  if (lo) return TcLayout::kRR;
  q.ldb = wo;
  q.batch_b = wi * wo;
  return TcLayout::kRC;
}

// One dW launch: dW = alpha dz^T in for signal s (batches 1) or all from s = 0 (batched);
// the *_off are element offsets of A, B, D for signal s.
struct DwLaunch {
  TcGemm p;
  int64_t a_off = 0, b_off = 0, d_off = 0;
};
inline DwLaunch dw_launch(int64_t N, int64_t m, int64_t lda, int64_t in_ld, int64_t s,
                          int64_t batches) {
  DwLaunch l;
  l.p.m = to_int(m, "weight-gradient rows (signals x outputs)");
  l.p.n = to_int(in_ld, "layer input width");
  l.p.k = to_int(N, "point count");
  l.p.lda = lda;
  l.p.ldb = in_ld;
  l.p.ldd = in_ld;
  l.p.batches = to_int(batches, "signal count");
  l.p.batch_a = batches > 1 ? N * lda : 0;
  l.p.batch_b = batches > 1 ? N * in_ld : 0;
  l.p.batch_d = batches > 1 ? m * in_ld : 0;
  l.a_off = s * N * lda;
  l.b_off = s * N * in_ld;
  l.d_off = s * m * in_ld;
  return l;
}

// grad_x = dz_0 W'_0: [N, ld] (concatenated: one GEMM over S * wo) or S batches.
inline TcGemm dx0_gemm(int64_t S, int64_t N, int64_t wi, int64_t wo, bool lo, bool cat,
                       int64_t dz_ld, int64_t ld) {
  TcGemm p;
  p.m = to_int(N, "point count");
  p.n = to_int(ld, "layer input width");
  p.k = to_int(dz_ld, "input-gradient depth (signals x outputs)");
  p.lda = dz_ld;
  p.batch_a = cat ? 0 : N * dz_ld;
  p.ldb = ld;
  p.batch_b = cat ? 0 : lo ? round8(wo) * ld : wo * wi;
  p.ldd = ld;
  p.batch_d = cat ? 0 : N * ld;
  p.batches = cat ? 1 : to_int(S, "signal count");
  return p;
}

// The branch of a plain tensor-core GEMM (tc_gemm_run / tc_gemm_sm90_run) at a site.
enum class Site { kFwd, kFwdCat, kDx, kDw, kDwCat, kDx0, kDx0Cat };
inline Role gemm_role(Site site, bool sm90, const TcGemm& p) {
  switch (site) {
    case Site::kFwd: return Role::kFwdGemm;
    case Site::kFwdCat: return Role::kFwdGemmCat;
    case Site::kDx: return Role::kBwdDxGemm;
    case Site::kDx0: return Role::kBwdDx0Gemm;
    case Site::kDx0Cat: return Role::kBwdDx0GemmCat;
    case Site::kDwCat:
      if (sm90) return p.splits > 1 ? Role::kBwdDwSm90CatSplit : Role::kBwdDwSm90Cat;
      return p.splits > 1 ? Role::kBwdDwSm80CatSplit : Role::kBwdDwSm80Cat;
    case Site::kDw: break;
  }
  if (p.batches > 1) return sm90 ? Role::kBwdDwSm90Batched : Role::kBwdDwSm80Batched;
  if (sm90) return p.splits > 1 ? Role::kBwdDwSm90Split : Role::kBwdDwSm90;
  return p.splits > 1 ? Role::kBwdDwSm80Split : Role::kBwdDwSm80;
}

// ---- the launcher's control flow on host data ----
struct Problem {
  int64_t signals = 1, points = 0;
  std::vector<int64_t> widths;  // in, out of layer 0, ..., out of layer L-1
  bool shared_x = true, last_linear = true, need_x_grad = false;
  int64_t precision = 0;   // 0 exact, 1 bf16, 2 tf32
  int64_t elem_bytes = 4;  // 4 float32, 8 float64
  int64_t sms = 1;         // the device's SM count
  bool sm90 = false;       // cc 9.0 device, sm_90a kernels built and enabled
};

struct Launch {
  bool backward;
  int64_t layer;
  int branch;  // branch_id
};

// Every launch forward_impl and backward_impl (with saved pre-activations) make for `q`,
// in order, assuming 16-byte aligned tensors (fresh allocations; x at offset 0).
inline std::vector<Launch> plan_launches(const Problem& q) {
  const int64_t L = static_cast<int64_t>(q.widths.size()) - 1;
  if (L < 1 || q.signals < 1 || q.points < 0 || q.sms < 1 || q.precision < 0 || q.precision > 2 ||
      (q.elem_bytes != 4 && q.elem_bytes != 8) || (q.precision != 0 && q.elem_bytes != 4)) {
    throw std::invalid_argument("strainer_fast: dispatch_plan needs >= 2 widths, signals >= 1, "
                                "points >= 0, sms >= 1, precision 0-2 (1-2 with float32)");
  }
  for (int64_t w : q.widths) {
    if (w < 1) throw std::invalid_argument("strainer_fast: dispatch_plan got a zero width");
  }
  check_limits(q.signals, q.points);
  std::vector<Launch> out;
  if (q.points == 0) return out;
  const int64_t S = q.signals, N = q.points;
  const auto& w = q.widths;
  // Fake addresses of fresh (256-byte aligned) allocations plus an element offset.
  auto at = [](int64_t bytes) { return reinterpret_cast<void*>(uintptr_t{1} << 20 | bytes); };
  auto add = [&](bool bwd, int64_t l, int id) { out.push_back({bwd, l, id}); };
  std::vector<Engine> eng;
  for (int64_t l = 0; l < L; ++l) eng.push_back(layer_engine(q.precision, w[l]));
  auto lo_at = [&](int64_t l) { return eng[l] == Engine::kBf16; };
  auto sine = [&](int64_t l) { return !(q.last_linear && l == L - 1); };
  auto cat = [&](int64_t l) { return l == 0 && q.shared_x; };
  auto set_ptrs = [&](TcGemm& p) { p.a = p.b = p.d = static_cast<float*>(at(0)); };

  // forward_impl
  int64_t in_ld = lo_at(0) ? round8(w[0]) : w[0];
  for (int64_t l = 0; l < L; ++l) {
    const int64_t wi = w[l], wo = w[l + 1];
    const bool next_lo = l < L - 1 && lo_at(l + 1);
    const int64_t next_ld = next_lo ? round8(wo) : wo;
    if (l == 0 && first_layer_kernel(wi)) {
      add(false, l, branch_id(Role::kFwdFirstLayer));
    } else if (eng[l] == Engine::kAten) {
      add(false, l, branch_id(Role::kFwdAten));
    } else {
      const bool lo = lo_at(l);
      TcGemm p = forward_gemm(S, N, wi, wo, lo, cat(l), in_ld);
      set_ptrs(p);
      const TcKind kind = gemm_kind(lo, p, p.k);
      int id = -1;
      if (sine(l) && !cat(l) && l < L - 1 && next_lo == lo) {
        TcFused f = forward_fused(N, wo, next_ld);
        f.bias = static_cast<const float*>(at(0));
        f.h = at(0);
        if (q.sm90 && sm90_fused_aligned(kind, p, f)) {
          id = branch_id(Role::kFwdFusedSm90, kind);
        } else if (sm80_fused_aligned(kind, TcEpilogue::kBiasSine, p, f)) {
          id = branch_id(Role::kFwdFusedSm80, kind);
        }
      }
      if (id < 0) {
        const bool sm90 = q.sm90 && sm90_gemm_aligned(kind, TcLayout::kRC, p);
        id = branch_id(gemm_role(cat(l) ? Site::kFwdCat : Site::kFwd, sm90, p), kind);
      }
      add(false, l, id);
    }
    in_ld = next_ld;
  }

  // backward_impl: dz of the last layer (bf16 operand, or T in the layer's layout)
  int64_t dz_lo_ld = 0;
  if (lo_at(L - 1)) {
    dz_lo_ld = cat(L - 1) ? round8(S * w[L]) : round8(w[L]);
    if (cat(L - 1)) add(true, L - 1, branch_id(Role::kBwdDzCat, TcKind::kBf16));
  } else if (cat(L - 1)) {
    add(true, L - 1, branch_id(Role::kBwdDzCat));
  }
  for (int64_t l = L - 1; l >= 0; --l) {
    const int64_t wi = w[l], wo = w[l + 1];
    const bool lo = lo_at(l);
    const int64_t rows = cat(l) ? S * wo : wo;
    const int64_t dz_ld = lo ? dz_lo_ld : wo;  // the dX GEMMs' A (T dz: [S, N, wo])
    int64_t h_ld = wi;
    bool ones = false;
    int64_t prev_lo_ld = 0;
    if (l > 0) {
      const bool cat_prev = cat(l - 1), lo_prev = lo_at(l - 1);
      h_ld = lo ? round8(wi + 1) : round4(wi + 1);
      ones = true;
      if (lo_prev) prev_lo_ld = cat_prev ? round8(S * wi) : round8(wi);
      int id = -1;
      if (eng[l] != Engine::kAten && !cat_prev && lo == lo_prev) {
        TcGemm p = dx_gemm(S, N, wi, wo, lo, dz_ld, wi);
        set_ptrs(p);
        TcFused f = gate_fused(N, wi, h_ld, prev_lo_ld);
        f.z_in = static_cast<const float*>(at(0));
        f.h = at(0);
        if (lo) f.d_lo = at(0);
        const TcKind kind = gemm_kind(lo, p, p.k);
        if (q.sm90 && kind != TcKind::kTf32Align1) {
          TcGemm g = p;
          const TcLayout layout = gate_sm90_problem(lo, wi, wo, g);
          if (sm90_gate_aligned(kind, layout, g, f)) id = branch_id(Role::kBwdGateSm90, kind);
        }
        if (id < 0 && sm80_fused_aligned(kind, TcEpilogue::kGate, p, f)) {
          id = branch_id(Role::kBwdGateSm80, kind);
        }
      }
      if (id < 0) {
        if (eng[l] == Engine::kAten) {
          id = branch_id(Role::kBwdDxAten);
        } else {
          TcGemm p = dx_gemm(S, N, wi, wo, lo, dz_ld, lo ? round8(wi) : wi);
          set_ptrs(p);
          const TcKind kind = gemm_kind(lo, p, p.k);
          id = branch_id(gemm_role(Site::kDx, false, p), kind);
        }
        add(true, l, id);
        if (cat_prev) {
          add(true, l, lo_prev ? branch_id(Role::kBwdDzCat, TcKind::kBf16) : branch_id(Role::kBwdDzCat));
        }
      } else {
        add(true, l, id);
      }
    } else if (dw_ones_copy(lo, wi, rows)) {
      h_ld = lo ? round8(wi + 1) : round4(wi + 1);
      ones = true;
    }
    if (eng[l] == Engine::kAten) {
      add(true, l, branch_id(Role::kBwdDwAten));
    } else {
      const int64_t m = lo ? (cat(l) ? dz_lo_ld : round8(wo)) : rows;
      const int64_t lda = lo ? dz_lo_ld : rows;
      const int64_t per_signal = cat(l) ? 1 : S;
      const int64_t bytes = lo ? 2 : 4;
      const bool batched = dw_batched(per_signal, m, h_ld, q.sms);
      for (int64_t s = 0; s < (batched ? 1 : per_signal); ++s) {
        DwLaunch d = dw_launch(N, m, lda, h_ld, s, batched ? per_signal : 1);
        d.p.a = at(d.a_off * bytes);
        d.p.b = at(d.b_off * bytes);
        d.p.d = static_cast<float*>(at(d.d_off * 4));
        const TcKind kind = gemm_kind(lo, d.p, d.p.m);
        set_splits(d.p, d.p.batches == 1, q.sms);
        const bool sm90 = q.sm90 && sm90_gemm_aligned(kind, TcLayout::kCR, d.p);
        add(true, l, branch_id(gemm_role(cat(l) ? Site::kDwCat : Site::kDw, sm90, d.p), kind));
      }
    }
    if (!ones) add(true, l, branch_id(Role::kBwdDbAten));
    if (l == 0) {
      if (q.need_x_grad) {
        if (eng[0] == Engine::kAten) {
          add(true, 0, branch_id(Role::kBwdDx0Aten));
        } else {
          TcGemm p = dx0_gemm(S, N, wi, wo, lo, cat(0), lo ? dz_lo_ld : rows, lo ? round8(wi) : wi);
          set_ptrs(p);
          const TcKind kind = gemm_kind(lo, p, p.k);
          add(true, 0, branch_id(gemm_role(cat(0) ? Site::kDx0Cat : Site::kDx0, false, p), kind));
        }
      }
      break;
    }
    dz_lo_ld = prev_lo_ld;
  }
  return out;
}

}  // namespace strainer_fast::dispatch
