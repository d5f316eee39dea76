"""Self-check of the fused kernels: safe by default while no GPU has verified them.

At the first fused call per (device, precision, dtype) on a checked device type (CUDA), a small
fixed problem runs through the fused op and through the float64 reference; if the fused
result's relative error exceeds that precision's bound (or is not finite, or the op raises),
strainer_fast warns once and routes that combination to the plain-PyTorch reference.
``STRAINER_FAST_CUDA_SELFCHECK`` (read at every call): ``0`` off, ``1`` on (default),
``strict`` raises an error instead of falling back.

The problem: S = 3 networks, N = 1031 points, widths 3 -> 256 -> 256 -> 67 -> 5 (the first layer
narrow, an aligned 256 x 256 layer, odd widths), SIREN init with w0 = 30 (arguments of tens of
radians in the first layer), run four times to cover shared ([N, in]) and per-signal
([S, N, in]) inputs, both ``last_linear`` values, with and without the input gradient. The error
is ``max ||fused - ref|| / ||ref||`` over the output and every gradient.

torch.compile: :func:`fused_allowed` is a constant for the compiler
(``torch.compiler.assume_constant_result``), so the check runs eagerly while the graph is traced
and the traced graph holds the verdict. CUDA graphs: a capture in progress never starts the check
(it synchronises the device, which capture forbids); the warm-up calls that capture needs anyway
run it, and an unchecked combination reached inside a capture raises a clear error.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from dataclasses import dataclass, field

import torch

from . import reference

__all__ = ["ENV", "BOUNDS", "SelfCheckResult", "fused_allowed", "run", "results", "reset"]

ENV = "STRAINER_FAST_CUDA_SELFCHECK"
CHECKED_DEVICE_TYPES = frozenset({"cuda"})  # tests add "cpu" to exercise the machinery

# Bounds on the max relative L2 error (output and every gradient) of a correct kernel on this
# problem, by (precision, dtype). Unit roundoff of the GEMM operands: fp32 6e-8, tf32 4.9e-4
# rounded or 9.8e-4 truncated (tensor cores fed fp32 bits ignore the low 13), bf16 3.9e-3.
# Errors of the CPU fused kernel and of emulated kernels on this problem
# (python_tests/test_selfcheck.py checks every bound admits its own with margin >= 2):
#   fp32 exact 1.4e-6 (the first layer's arguments of up to ~30 rad carry ~30 u absolute),
#   fp64 exact 4e-15; tf32 operands 8.8e-4 rounded, 3.0e-3 truncated (biased, so it adds up;
#   z is saved in fp32 in tf32 mode); bf16 operands 7.2e-3, 2.2e-2 with the sine
#   arguments saved in bf16 (the first layer's ~30 rad lose ~0.06 rad in the cos gate).
# The exact bound is 20x below tf32's error, so an "exact" kernel that silently used TF32 fails;
# tf32's bound rejects bf16 with bf16-saved arguments but cannot separate plain bf16 operands
# (7.2e-3) from truncated tf32 (3.0e-3) with margin. A wrong index or a race gives errors ~1.
BOUNDS: dict[tuple[str, torch.dtype], float] = {
    ("exact", torch.float64): 1e-9,
    ("exact", torch.float32): 2e-5,
    ("tf32", torch.float32): 1e-2,
    ("bf16", torch.float32): 6e-2,
}
_PRECISION_CODES = {"exact": 0, "bf16": 1, "tf32": 2}

SIGNALS, POINTS, WIDTHS, OMEGA = 3, 1031, (3, 256, 256, 67, 5), 30.0
# (shared input, last_linear, input gradient)
CONFIGS = ((True, True, True), (True, False, False), (False, True, False), (False, False, True))


@dataclass(frozen=True)
class SelfCheckResult:
    """Outcome of one self-check: ``errors`` maps 'config: tensor' to its relative error."""

    device: str
    precision: str
    dtype: torch.dtype
    bound: float
    errors: dict[str, float] = field(default_factory=dict)
    failure: str | None = None  # exception text when the fused op raised

    @property
    def worst(self) -> tuple[str, float]:
        if not self.errors:
            return ("none", math.nan)
        # NaN sorts as the worst error
        return max(self.errors.items(), key=lambda kv: math.inf if math.isnan(kv[1]) else kv[1])

    @property
    def passed(self) -> bool:
        return self.failure is None and bool(self.errors) and all(
            e <= self.bound for e in self.errors.values())  # NaN compares False: never passes

    def describe(self) -> str:
        if self.failure is not None:
            return f"the fused op raised: {self.failure}"
        name, err = self.worst
        return f"relative error {err:.2e} ({name}) against the bound {self.bound:.0e}"


_results: dict[tuple, SelfCheckResult] = {}
_warned: set[tuple] = set()
_lock = threading.RLock()


def mode() -> str:
    """``"0"``, ``"1"`` or ``"strict"`` from ``STRAINER_FAST_CUDA_SELFCHECK`` (default ``"1"``)."""
    value = os.environ.get(ENV, "1").strip().lower() or "1"
    if value not in ("0", "1", "strict"):
        raise ValueError(f"{ENV} must be 0, 1 or strict, got {value!r}")
    return value


def results() -> dict[tuple, SelfCheckResult]:
    """The checks run so far, by (device type, device index, precision, dtype)."""
    return dict(_results)


def reset() -> None:
    """Forgets every verdict (the next fused call per combination checks again)."""
    with _lock:
        _results.clear()
        _warned.clear()


def _capturing(device_type: str, index: int | None) -> bool:
    if device_type != "cuda":
        return False
    with torch.cuda.device(index):
        return torch.cuda.is_current_stream_capturing()


@torch.compiler.assume_constant_result
def fused_allowed(device_type: str, index: int | None, precision: str, dtype: torch.dtype) -> bool:
    """True if the fused kernel may serve this combination; runs its self-check on first use.

    Returns False (after one warning) when the check failed, raises in ``strict`` mode.
    """
    if device_type not in CHECKED_DEVICE_TYPES:
        return True
    how = mode()
    if how == "0":
        return True
    key = (device_type, index, precision, dtype)
    result = _results.get(key)
    if result is None:
        where = device_type if index is None else f"{device_type}:{index}"
        if _capturing(device_type, index):
            raise RuntimeError(
                f"strainer_fast: the fused {where} kernel for precision={precision!r}, {dtype} "
                "has not passed its self-check yet, and a CUDA graph capture is in progress, "
                "which the check cannot run in; make one call outside the capture first (the "
                f"usual warm-up does), or set {ENV}=0")
        with _lock:
            result = _results.get(key)
            if result is None:
                result = run(torch.device(device_type, index), precision, dtype)
                _results[key] = result
    if not result.passed and how != "strict" and key not in _warned:
        _warned.add(key)
        warnings.warn(
            f"strainer_fast: fused kernel failed its self-check on {result.device} for "
            f"precision={precision!r}, {dtype}: {result.describe()}; using the plain-PyTorch "
            f"reference for this combination ({ENV}=strict raises instead, 0 skips the check)",
            RuntimeWarning, stacklevel=4)
    if not result.passed and how == "strict":
        raise RuntimeError(
            f"strainer_fast: fused kernel failed its self-check on {result.device} for "
            f"precision={precision!r}, {dtype}: {result.describe()} ({ENV}=strict)")
    return result.passed


def _problem(shared: bool, seed: int):
    """x, weights, biases, output probe in float64 on the CPU (a private generator)."""
    g = torch.Generator().manual_seed(seed)
    uniform = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1  # noqa: E731
    x = uniform(*(() if shared else (SIGNALS,)), POINTS, WIDTHS[0])
    weights, biases = [], []
    for i, (fan_in, fan_out) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
        bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / OMEGA
        weights.append(uniform(SIGNALS, fan_out, fan_in) * bound)
        biases.append(uniform(SIGNALS, fan_out) / math.sqrt(fan_in))
    probe = uniform(SIGNALS, POINTS, WIDTHS[-1])
    return x, weights, biases, probe


def _rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    diff = (a.double() - ref).norm().item()
    return diff / max(ref.norm().item(), 1e-30)


def _one_config(device, precision, dtype, shared, last_linear, need_x, seed) -> dict[str, float]:
    x, weights, biases, probe = _problem(shared, seed)
    omegas = [OMEGA] * len(weights)
    tensors = [t.to(device=device, dtype=dtype) for t in (x, *weights, *biases)]
    n = len(weights)
    outs = {}
    for kind in ("fused", "ref"):
        inputs = [t.clone().requires_grad_(i > 0 or need_x) for i, t in enumerate(tensors)]
        if kind == "ref":
            inputs = [t.detach().double().requires_grad_(t.requires_grad) for t in inputs]
        xi, ws, bs = inputs[0], inputs[1 : 1 + n], inputs[1 + n :]
        if kind == "fused":
            out = torch.ops.strainer_fast.fused_mlp_forward(
                xi, ws, bs, omegas, last_linear, True, _PRECISION_CODES[precision])[0]
        else:
            out = reference.batched_sine_mlp(xi, ws, bs, omegas, last_linear)
        wanted = [t for t in inputs if t.requires_grad]
        grads = torch.autograd.grad(out, wanted, grad_outputs=probe.to(dtype).to(out))
        names = (["x"] if need_x else []) + [f"W{i}" for i in range(n)] + [f"b{i}" for i in range(n)]
        outs[kind] = {"out": out.detach(), **dict(zip(names, grads))}
    tag = f"{'shared' if shared else 'per-signal'} x, {'linear' if last_linear else 'sine'} last"
    return {f"{tag}: {name}": _rel_err(outs["fused"][name], outs["ref"][name])
            for name in outs["ref"]}


def run(device: torch.device | str, precision: str = "exact",
        dtype: torch.dtype = torch.float32) -> SelfCheckResult:
    """Runs the fixed problem through the fused op on ``device`` (uncached; needs the compiled
    kernel for that device). Never touches the global RNG."""
    device = torch.device(device)
    bound = BOUNDS.get((precision, dtype))
    if bound is None:
        raise ValueError(f"no self-check bound for precision={precision!r} with {dtype}")
    errors: dict[str, float] = {}
    failure = None
    try:
        with torch.inference_mode(False), torch.enable_grad(), \
                torch.autocast(device.type, enabled=False):
            for seed, (shared, last_linear, need_x) in enumerate(CONFIGS):
                errors.update(_one_config(device, precision, dtype, shared, last_linear, need_x,
                                          seed))
    except Exception as exc:  # noqa: BLE001  a kernel that raises fails its check
        failure = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return SelfCheckResult(str(device), precision, dtype, bound, errors, failure)
