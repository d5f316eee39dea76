// Argument checks and geometry shared by every backend of the fused MLP ops.
// Every check runs before any memory is touched, so bad calls raise a clear
// error instead of reading out of bounds.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

namespace strainer_fast {

// Precision codes of the ops' `precision` argument. On the CPU, kTF32 runs the exact
// fp32 path (CPUs have no TF32); the CUDA path runs tf32/bf16 GEMMs on tensor cores.
enum class Precision : int64_t { kExact = 0, kBF16 = 1, kTF32 = 2 };

struct MlpGeometry {
  int64_t signals = 0;           // S
  int64_t points = 0;            // N
  int64_t layers = 0;            // L
  bool shared_x = true;          // x is [N, in] rather than [S, N, in]
  std::vector<int64_t> widths;   // widths[0] = in, widths[l + 1] = out of layer l
  bool sine(int64_t l, bool last_linear) const { return !(last_linear && l == layers - 1); }
  int64_t max_width() const {
    int64_t m = 0;
    for (int64_t w : widths) m = std::max(m, w);
    return m;
  }
};

inline MlpGeometry check_mlp_args(const at::Tensor& x, at::TensorList weights,
                                  at::TensorList biases, at::ArrayRef<double> omegas,
                                  int64_t precision) {
  TORCH_CHECK(!weights.empty(), "strainer_fast: the layer list is empty");
  TORCH_CHECK(biases.size() == weights.size(), "strainer_fast: got ", weights.size(),
              " weights but ", biases.size(), " biases");
  TORCH_CHECK(omegas.size() == weights.size(), "strainer_fast: got ", omegas.size(),
              " omegas for ", weights.size(), " layers");
  TORCH_CHECK(precision >= 0 && precision <= 2, "strainer_fast: unknown precision code ",
              precision, " (0 exact, 1 bf16, 2 tf32)");
  for (size_t l = 0; l < omegas.size(); ++l) {
    TORCH_CHECK(std::isfinite(omegas[l]), "strainer_fast: omega of layer ", l,
                " is not finite (", omegas[l], ")");
  }
  TORCH_CHECK(x.dim() == 2 || x.dim() == 3, "strainer_fast: x must be [N, in] or [S, N, in], got ",
              x.dim(), " dims");
  const auto dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble,
              "strainer_fast: x must be float32 or float64, got ", dtype);
  MlpGeometry g;
  g.layers = static_cast<int64_t>(weights.size());
  g.shared_x = x.dim() == 2;
  g.points = x.size(-2);
  g.widths.push_back(x.size(-1));
  for (int64_t l = 0; l < g.layers; ++l) {
    const at::Tensor& w = weights[l];
    const at::Tensor& b = biases[l];
    TORCH_CHECK(w.dim() == 3, "strainer_fast: weights[", l, "] must be [S, out, in], got ",
                w.sizes());
    TORCH_CHECK(b.dim() == 2, "strainer_fast: biases[", l, "] must be [S, out], got ", b.sizes());
    TORCH_CHECK(w.scalar_type() == dtype && b.scalar_type() == dtype,
                "strainer_fast: mixed dtypes: x is ", dtype, ", layer ", l, " has ",
                w.scalar_type(), "/", b.scalar_type());
    TORCH_CHECK(w.device() == x.device() && b.device() == x.device(),
                "strainer_fast: mixed devices: x is on ", x.device(), ", layer ", l, " on ",
                w.device(), "/", b.device());
    if (l == 0) g.signals = w.size(0);
    TORCH_CHECK(w.size(0) == g.signals && b.size(0) == g.signals,
                "strainer_fast: layer ", l, " has ", w.size(0), " signals, expected ", g.signals);
    TORCH_CHECK(w.size(2) == g.widths.back(), "strainer_fast: layer ", l, " expects ",
                w.size(2), " inputs but receives ", g.widths.back());
    TORCH_CHECK(b.size(1) == w.size(1), "strainer_fast: biases[", l, "] has ", b.size(1),
                " entries for ", w.size(1), " outputs");
    TORCH_CHECK(w.size(1) > 0 && w.size(2) > 0, "strainer_fast: layer ", l, " has a zero width");
    g.widths.push_back(w.size(1));
  }
  TORCH_CHECK(g.signals > 0, "strainer_fast: zero signals");
  if (!g.shared_x) {
    TORCH_CHECK(x.size(0) == g.signals, "strainer_fast: x has ", x.size(0),
                " signals but the weights have ", g.signals);
  }
  return g;
}

// Checks that t is [S, N, width] of x's dtype and device.
inline void check_activation(const at::Tensor& t, const at::Tensor& x, int64_t width,
                             const char* what, int64_t l, const MlpGeometry& g) {
  TORCH_CHECK(t.sizes() == at::IntArrayRef({g.signals, g.points, width}) &&
                  t.scalar_type() == x.scalar_type() && t.device() == x.device(),
              "strainer_fast: ", what, " of layer ", l, " must be [", g.signals, ", ", g.points,
              ", ", width, "] ", x.scalar_type(), " on ", x.device(), ", got ", t.sizes(), " ",
              t.scalar_type(), " on ", t.device());
}

inline int64_t sine_layers(const MlpGeometry& g, bool last_linear) {
  return last_linear ? g.layers - 1 : g.layers;
}

// Checks grad_out and the saved tensors of the CPU kernel: the hidden activations
// (layers 0..L-2) followed by the cosines of the sine layers.
inline void check_saved_hidden_cosines(const at::Tensor& grad, const at::Tensor& x,
                                       at::TensorList saved, bool last_linear,
                                       const MlpGeometry& g) {
  const int64_t n_sine = sine_layers(g, last_linear);
  TORCH_CHECK(static_cast<int64_t>(saved.size()) == g.layers - 1 + n_sine,
              "strainer_fast: backward got ", saved.size(), " saved tensors for ", g.layers,
              " layers (expected ", g.layers - 1, " hidden and ", n_sine, " cosine tensors)");
  check_activation(grad, x, g.widths.back(), "grad_out", g.layers - 1, g);
  for (int64_t l = 0; l + 1 < g.layers; ++l) {
    check_activation(saved[l], x, g.widths[l + 1], "hidden", l, g);
  }
  for (int64_t l = 0, i = g.layers - 1; l < g.layers; ++l) {
    if (g.sine(l, last_linear)) check_activation(saved[i++], x, g.widths[l + 1], "cosine", l, g);
  }
}

// Checks grad_out and the saved tensors of the CUDA kernel: the pre-activation z of
// every sine layer.
inline void check_saved_preactivations(const at::Tensor& grad, const at::Tensor& x,
                                       at::TensorList saved, bool last_linear,
                                       const MlpGeometry& g) {
  const int64_t n_sine = sine_layers(g, last_linear);
  TORCH_CHECK(static_cast<int64_t>(saved.size()) == n_sine, "strainer_fast: backward got ",
              saved.size(), " saved tensors for ", g.layers, " layers (expected ", n_sine,
              " pre-activations)");
  check_activation(grad, x, g.widths.back(), "grad_out", g.layers - 1, g);
  for (int64_t l = 0; l < n_sine; ++l) {
    check_activation(saved[l], x, g.widths[l + 1], "pre-activation", l, g);
  }
}

}  // namespace strainer_fast
