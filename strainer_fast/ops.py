"""Fused sine-MLP ops: ``sine_mlp`` (one network) and ``batched_sine_mlp`` (S networks).

Layer ``l`` computes ``h_l = sin(w0_l * (h_{l-1} @ W_l^T + b_l))``; with ``last_linear`` the
last layer is the plain affine ``h_{L-1} @ W^T + b`` (its omega is ignored).

Backends: ``"auto"`` (compiled kernel for the tensors' device, else the reference with a
one-time warning), ``"cpu"``, ``"cuda"`` (compiled kernels, error if missing) and
``"reference"`` (plain PyTorch, the spec). Precisions: ``"exact"`` (float32/float64 GEMMs),
``"tf32"`` and ``"bf16"`` (compiled kernels, float32 tensors: GEMM operands of layers whose
input is at least 16 wide are rounded to TF32 / bf16; accumulation, sin/cos and gradients stay
fp32). CPUs have no TF32: there ``"tf32"`` warns once and runs exact, as ``"bf16"`` does on a
CPU without bf16 instructions. On CUDA the first fused call per (device, precision, dtype)
runs the self-check of :mod:`strainer_fast.selfcheck`; a failed check routes that combination
to the reference.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch

from . import reference, selfcheck
from ._extension import _C, CPU_HAS_NATIVE_BF16, compiled_kernel_available

__all__ = ["sine_mlp", "batched_sine_mlp", "cpu_cache_bytes", "empty_cpu_cache", "BACKENDS",
           "PRECISIONS"]

BACKENDS = ("auto", "cpu", "cuda", "reference")
PRECISIONS = {"exact": 0, "bf16": 1, "tf32": 2}  # the ops' precision codes
_warned_fallback: set[str] = set()


def sine_mlp(
    x: torch.Tensor,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    omegas: Sequence[float] | float,
    last_linear: bool = False,
    *,
    backend: str = "auto",
    precision: str = "exact",
) -> torch.Tensor:
    """One sine MLP shared by all points: ``h = sin(omega_l * (W_l h + b_l))`` per layer.

    x: [N, in]; weights[l]: [out_l, in_l]; biases[l]: [out_l]; omegas: one float per layer
    (or one float for all, e.g. 30.0). ``last_linear``: the last layer has no sine. Returns
    [N, out]. Differentiable in ``x``, every weight and every bias (first order).
    ``backend``: "auto" (the compiled kernel for ``x``'s device, else the reference with a
    one-time warning), "cpu", "cuda" or "reference" (plain PyTorch, also higher-order
    gradients); ``precision``: "exact", "tf32" (CUDA) or "bf16" (float32 tensors).

    Example: ``y = sine_mlp(x, [w1, w2], [b1, b2], 30.0, last_linear=True)``.
    """
    weights, biases = list(weights), list(biases)
    omegas = _check(x, weights, biases, omegas, batched=False, precision=precision)
    kind, precision = _route(backend, x, precision)
    if kind == "reference":
        return reference.sine_mlp(x, weights, biases, omegas, last_linear)
    w3 = [w.unsqueeze(0) for w in weights]
    b2 = [b.unsqueeze(0) for b in biases]
    return _fused(x, w3, b2, omegas, last_linear, PRECISIONS[precision]).squeeze(0)


def batched_sine_mlp(
    x: torch.Tensor,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    omegas: Sequence[float] | float,
    last_linear: bool = True,
    *,
    backend: str = "auto",
    precision: str = "exact",
) -> torch.Tensor:
    """S independent sine MLPs of one shape (e.g. per-signal decoders).

    x: [N, in] shared by all S networks (never copied S times) or [S, N, in];
    weights[l]: [S, out_l, in_l]; biases[l]: [S, out_l]; ``omegas`` and ``last_linear``
    (default True here) as in ``sine_mlp``. Returns [S, N, out]. ``backend`` and
    ``precision`` as in ``sine_mlp``.

    Example: ``y = batched_sine_mlp(feats, [w], [b], 30.0)  # w [S, 1, 256] -> [S, N, 1]``.
    """
    weights, biases = list(weights), list(biases)
    omegas = _check(x, weights, biases, omegas, batched=True, precision=precision)
    kind, precision = _route(backend, x, precision)
    if kind == "reference":
        return reference.batched_sine_mlp(x, weights, biases, omegas, last_linear)
    return _fused(x, weights, biases, omegas, last_linear, PRECISIONS[precision])


def cpu_cache_bytes() -> int:
    """Bytes of freed CPU buffers (>= 128 KiB each) the fused ops keep for reuse, so that
    training steps do not pay page faults again; capped by ``STRAINER_FAST_CPU_CACHE_MB``
    (default 1024, 0 disables), read when the extension loads."""
    return int(_C.cpu_cache_bytes()) if _C is not None else 0


def empty_cpu_cache() -> None:
    """Returns the fused ops' cached CPU buffers to the system (like ``torch.cuda.empty_cache``)."""
    if _C is not None:
        _C.empty_cpu_cache()


def _fused(x, weights, biases, omegas, last_linear, precision):
    save = torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, *weights, *biases)
    )
    # [0]: the output; the rest is what the op saves for backward
    return torch.ops.strainer_fast.fused_mlp_forward(
        x, weights, biases, omegas, last_linear, save, precision
    )[0]


def _route(backend: str, x: torch.Tensor, precision: str) -> tuple[str, str]:
    """("fused" or "reference", the precision the kernel runs): backend choice, hardware
    fallbacks, then the self-check verdict for this (device, precision, dtype)."""
    kind = _choose_backend(backend, x, precision)
    precision = _effective_precision(precision, x)
    if kind == "fused" and not selfcheck.fused_allowed(x.device.type, x.device.index, precision,
                                                       x.dtype):
        kind = "reference"
    return kind, precision


def _effective_precision(precision: str, x: torch.Tensor) -> str:
    if precision in ("bf16", "tf32") and x.dtype != torch.float32:
        raise TypeError(f"precision={precision!r} needs float32 tensors, got {x.dtype}")
    if x.device.type != "cpu" or precision == "exact":
        return precision
    if precision == "tf32":
        _warn_once("tf32", "strainer_fast: CPUs have no TF32; precision='tf32' runs in exact "
                           "fp32 mode on CPU tensors")
        return "exact"
    if not CPU_HAS_NATIVE_BF16:
        _warn_once("bf16", "strainer_fast: this CPU has no bf16 instructions (AVX512-BF16/AMX); "
                           "precision='bf16' runs in exact fp32 mode")
        return "exact"
    return precision


def _warn_once(key: str, message: str) -> None:
    if key not in _warned_fallback:
        _warned_fallback.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=5)


def _choose_backend(backend: str, x: torch.Tensor, precision: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "reference":
        if precision != "exact":
            raise ValueError("the reference backend computes only precision='exact'")
        return backend
    device = x.device.type
    if backend != "auto" and backend != device:
        raise ValueError(f"backend={backend!r} but the tensors are on {x.device}")
    if compiled_kernel_available(device):
        return "fused"
    if backend != "auto" or precision != "exact":
        raise RuntimeError(
            f"strainer_fast was built without a compiled {device} kernel "
            f"(backend={backend!r}, precision={precision!r}); rebuild the extension "
            "or use backend='reference'"
        )
    if device not in _warned_fallback:
        _warned_fallback.add(device)
        warnings.warn(
            f"strainer_fast: no compiled kernel for {device}; using the plain-PyTorch "
            "reference (slower). Build the extension to get the fused kernels.",
            RuntimeWarning,
            stacklevel=4,
        )
    return "reference"


def _check(x, weights, biases, omegas, *, batched: bool, precision: str) -> list[float]:
    """Validates arguments with clear messages; returns omegas as a list of floats."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if len(weights) == 0:
        raise ValueError("the layer list is empty: pass at least one weight and bias")
    if len(biases) != len(weights):
        raise ValueError(f"got {len(weights)} weights but {len(biases)} biases")
    if isinstance(omegas, (int, float)):
        omegas = [float(omegas)] * len(weights)
    omegas = [float(o) for o in omegas]
    if len(omegas) != len(weights):
        raise ValueError(f"got {len(omegas)} omegas for {len(weights)} layers")
    for i, o in enumerate(omegas):
        if not math.isfinite(o):
            raise ValueError(f"omega of layer {i} is not finite ({o})")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    w_rank, b_rank = (3, 2) if batched else (2, 1)
    if batched and x.dim() not in (2, 3):
        raise ValueError(f"x must be [N, in] or [S, N, in], got shape {tuple(x.shape)}")
    if not batched and x.dim() != 2:
        raise ValueError(f"x must be [N, in], got shape {tuple(x.shape)}")
    width = x.shape[-1]
    signals = None
    for i, (w, b) in enumerate(zip(weights, biases)):
        if not isinstance(w, torch.Tensor) or not isinstance(b, torch.Tensor):
            raise TypeError(f"weights[{i}] and biases[{i}] must be tensors")
        if w.dim() != w_rank or b.dim() != b_rank:
            want = "[S, out, in] / [S, out]" if batched else "[out, in] / [out]"
            raise ValueError(
                f"layer {i}: weight and bias must be {want}, got "
                f"{tuple(w.shape)} / {tuple(b.shape)}"
            )
        for name, t in (("weight", w), ("bias", b)):
            if t.dtype != x.dtype:
                raise TypeError(f"mixed dtypes: x is {x.dtype} but layer {i} {name} is {t.dtype}")
            if t.device != x.device:
                raise ValueError(
                    f"mixed devices: x is on {x.device} but layer {i} {name} is on {t.device}"
                )
        if batched:
            if signals is None:
                signals = w.shape[0]
            if w.shape[0] != signals or b.shape[0] != signals:
                raise ValueError(
                    f"layer {i} holds {w.shape[0]} weight / {b.shape[0]} bias signals, "
                    f"expected {signals}"
                )
        if w.shape[-1] != width:
            raise ValueError(f"layer {i} expects {w.shape[-1]} inputs but receives {width}")
        if b.shape[-1] != w.shape[-2]:
            raise ValueError(f"layer {i}: bias has {b.shape[-1]} entries for {w.shape[-2]} outputs")
        if w.shape[-2] == 0:
            raise ValueError(f"layer {i} has zero outputs")
        width = w.shape[-2]
    if batched and x.dim() == 3 and x.shape[0] != signals:
        raise ValueError(f"x holds {x.shape[0]} signals but the weights hold {signals}")
    if batched and signals == 0:
        raise ValueError("the weights hold zero signals")
    if x.shape[-1] == 0:
        raise ValueError("x has zero input features")
    return omegas
