"""Self-check of the fused kernels: safe by default while no GPU has verified them.

At the first fused call per (device, precision, dtype, TF32 setting, sm_90a setting) on a checked
device type (CUDA), fixed problems run through the fused op and through the float64 reference;
if a fused result's relative error exceeds that precision's bound (or is not finite, or the op
raises, or the check's process dies), strainer_fast warns once and routes that combination to
the plain-PyTorch reference. ``STRAINER_FAST_CUDA_SELFCHECK`` (read at every call): ``0`` off,
``1`` on (default), ``strict`` raises an error instead of falling back.

Crash isolation: on CUDA the check runs in a fresh child process (a new interpreter running
:func:`_child_main`, never ``fork``), so an illegal address or a misaligned TMA access
poisons the child's CUDA context, not the caller's: the parent gets a one-line verdict naming
the combination and the problem that died, and its reference path keeps working. The child
reports each problem before running it; one that outlives ``STRAINER_FAST_CUDA_SELFCHECK_TIMEOUT``
seconds (default 300) is killed and fails the check. Verdicts are cached per process.

The problems (:func:`configs`; SIREN init, w0 = 30, so the first layers see tens of radians)
reach every branch of the CUDA launcher that pretraining and fitting reach at the presets'
shapes (python_tests/test_dispatch.py proves it with the launcher's own dispatch rules,
``_C.dispatch_plan``; test_cuda.py compares them with the launch counters on a GPU):

- ``mlp``: S = 3, N = 1031, widths 3-256-256-67-5, four ways (shared / per-signal x, linear /
  sine last layer, with / without the input gradient): the small FMA first layer, the fused
  256 x 256 epilogues, odd widths (scalar-access tf32 kernels, unfused epilogues);
- ``encoder``: S = 1, shared x [8192, 2], widths 2-128-128-128, sine last: the STRAINER
  encoder (fused forward, gated dX, sm80 serial split-K and sm90 stream-K split-K dW, 4 slices);
- ``decoder``: S = 4, shared x [8192, 64], widths 64-64-3, and ``decoder1``: S = 10, shared x
  [8192, 64], widths 64-3: the concatenated shared-input layer 0 (one forward GEMM over all
  signals' weights, the concatenated dz, its split-K dW, grad_x; db from the ones column and
  from the ATen reduction);
- ``batched``: S = max(2, ceil(SMs / 6)) signals, shared x [128, 2], widths 2-256-256-3: the
  dW of the 256-wide per-signal layer as one batched launch (what ``fit_many`` runs with >= 22
  images on a 132-SM H100), the narrow layer's per-signal launches without split.

Cost per checked combination (:func:`flops`): 9.9 GFLOP of fused GEMM work on an H100 (132
SMs) plus the same in the float64 reference, which bounds the GPU time by ~0.2 s even at the
H100's dense fp64 rate (~60 TFLOP/s; the fused tf32/bf16 GEMMs are >= 8x faster), and small
launches make it launch-bound in practice; the child's start (interpreter, torch
import, CUDA context, loading the kernels) dominates: a few seconds, once per combination.

torch.compile: :func:`fused_allowed` is a constant for the compiler
(``torch.compiler.assume_constant_result``), so the check runs eagerly while the graph is traced
and the traced graph holds the verdict. CUDA graphs: a capture in progress never starts the check
(it synchronises the device, which capture forbids); the warm-up calls that capture needs anyway
run it, and an unchecked combination reached inside a capture raises a clear error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import reference

__all__ = ["ENV", "TIMEOUT_ENV", "BOUNDS", "Config", "SelfCheckResult", "configs", "flops",
           "fused_allowed", "run", "results", "reset"]

ENV = "STRAINER_FAST_CUDA_SELFCHECK"
TIMEOUT_ENV = "STRAINER_FAST_CUDA_SELFCHECK_TIMEOUT"
SM90_ENV = "STRAINER_FAST_CUDA_SM90"  # "0" forces the sm80 kernels (read by the launcher)
CHECKED_DEVICE_TYPES = frozenset({"cuda"})  # tests add "cpu" to exercise the machinery
ISOLATED_DEVICE_TYPES = frozenset({"cuda"})  # checked in a child process (tests add "cpu")

# Bounds on the max relative L2 error (output and every gradient) of a correct kernel on these
# problems, by (precision, dtype). Unit roundoff of the GEMM operands: fp32 6e-8, tf32 4.9e-4
# rounded or 9.8e-4 truncated (tensor cores fed fp32 bits ignore the low 13), bf16 3.9e-3.
# python_tests/test_selfcheck.py checks that every bound admits the CPU fused kernel and
# emulated kernels (tf32 rounded and truncated, bf16 with and without bf16-saved sine
# arguments) with margin >= 2, and rejects a coarser precision: the exact bound is far below
# tf32's error, so an "exact" kernel that silently used TF32 fails; tf32's bound rejects bf16
# with bf16-saved arguments. A wrong index, stride or race gives errors ~1.
BOUNDS: dict[tuple[str, torch.dtype], float] = {
    ("exact", torch.float64): 1e-9,
    ("exact", torch.float32): 2e-5,
    ("tf32", torch.float32): 1e-2,
    ("bf16", torch.float32): 6e-2,
}
_PRECISION_CODES = {"exact": 0, "bf16": 1, "tf32": 2}
OMEGA = 30.0
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Config:
    """One self-check problem: x [N, in] (shared) or [S, N, in], widths[0] = in."""

    name: str
    signals: int
    points: int
    widths: tuple[int, ...]
    shared: bool
    last_linear: bool
    need_x: bool


def configs(sms: int = 1) -> list[Config]:
    """The problems, for a device with ``sms`` SMs (the batched dW needs S x tiles >= SMs)."""
    mlp = [Config(f"mlp: {'shared' if sh else 'per-signal'} x, {'linear' if ll else 'sine'} "
                  f"last{', x grad' if nx else ''}", 3, 1031, (3, 256, 256, 67, 5), sh, ll, nx)
           for sh, ll, nx in ((True, True, True), (True, False, False), (False, True, False),
                              (False, False, True))]
    tiles = 2 * 3  # dW of a 256-wide layer: [256, 260] in 128 x 128 tiles
    return mlp + [
        Config("encoder", 1, 8192, (2, 128, 128, 128), True, False, False),
        Config("decoder", 4, 8192, (64, 64, 3), True, True, True),
        Config("decoder1", 10, 8192, (64, 3), True, True, True),
        Config("batched", max(2, -(-sms // tiles)), 128, (2, 256, 256, 3), True, True, False),
    ]


def flops(sms: int = 132) -> float:
    """GEMM FLOPs of one check's fused forward + backward (the float64 reference does the
    same again): 2 N S in out per layer and pass, three passes (forward, dX, dW)."""
    return sum(6.0 * c.points * c.signals * sum(a * b for a, b in zip(c.widths, c.widths[1:]))
               for c in configs(sms))


@dataclass(frozen=True)
class SelfCheckResult:
    """Outcome of one self-check: ``errors`` maps 'config: tensor' to its relative error."""

    device: str
    precision: str
    dtype: torch.dtype
    bound: float
    errors: dict[str, float] = field(default_factory=dict)
    failure: str | None = None  # why the check could not finish (one line)

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
            return self.failure
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
    """The checks run so far, by (device type, device index, precision, dtype, TF32 matmuls
    allowed, ``STRAINER_FAST_CUDA_SM90`` value)."""
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

    The verdict also depends on ``torch.backends.cuda.matmul.allow_tf32`` (an "exact" kernel
    whose ATen GEMMs escaped their TF32 guard fails only while TF32 is allowed) and on
    ``STRAINER_FAST_CUDA_SM90`` (which kernels run). Returns False (after one warning) when the
    check failed, raises in ``strict`` mode.
    """
    if device_type not in CHECKED_DEVICE_TYPES:
        return True
    how = mode()
    if how == "0":
        return True
    tf32 = bool(torch.backends.cuda.matmul.allow_tf32)
    key = (device_type, index, precision, dtype, tf32, os.environ.get(SM90_ENV, ""))
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
                device = torch.device(device_type, index)
                result = (_run_isolated(device, precision, dtype, tf32)
                          if device_type in ISOLATED_DEVICE_TYPES else run(device, precision, dtype))
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


def _problem(c: Config, seed: int):
    """x, weights, biases, output probe in float64 on the CPU (a private generator)."""
    g = torch.Generator().manual_seed(seed)
    uniform = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1  # noqa: E731
    x = uniform(*(() if c.shared else (c.signals,)), c.points, c.widths[0])
    weights, biases = [], []
    for i, (fan_in, fan_out) in enumerate(zip(c.widths[:-1], c.widths[1:])):
        bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / OMEGA
        weights.append(uniform(c.signals, fan_out, fan_in) * bound)
        biases.append(uniform(c.signals, fan_out) / math.sqrt(fan_in))
    probe = uniform(c.signals, c.points, c.widths[-1])
    return x, weights, biases, probe


def _rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    diff = (a.double() - ref).norm().item()
    return diff / max(ref.norm().item(), 1e-30)


def _one_config(device, precision, dtype, c: Config, seed) -> dict[str, float]:
    x, weights, biases, probe = _problem(c, seed)
    omegas = [OMEGA] * len(weights)
    tensors = [t.to(device=device, dtype=dtype) for t in (x, *weights, *biases)]
    n = len(weights)
    outs = {}
    for kind in ("fused", "ref"):
        inputs = [t.clone().requires_grad_(i > 0 or c.need_x) for i, t in enumerate(tensors)]
        if kind == "ref":
            inputs = [t.detach().double().requires_grad_(t.requires_grad) for t in inputs]
        xi, ws, bs = inputs[0], inputs[1 : 1 + n], inputs[1 + n :]
        if kind == "fused":
            out = torch.ops.strainer_fast.fused_mlp_forward(
                xi, ws, bs, omegas, c.last_linear, True, _PRECISION_CODES[precision])[0]
        else:
            out = reference.batched_sine_mlp(xi, ws, bs, omegas, c.last_linear)
        wanted = [t for t in inputs if t.requires_grad]
        grads = torch.autograd.grad(out, wanted, grad_outputs=probe.to(dtype).to(out))
        names = (["x"] if c.need_x else []) + [f"W{i}" for i in range(n)] + [f"b{i}" for i in range(n)]
        outs[kind] = {"out": out.detach(), **dict(zip(names, grads))}
    return {f"{c.name}: {name}": _rel_err(outs["fused"][name], outs["ref"][name])
            for name in outs["ref"]}


def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 1
    return torch.cuda.get_device_properties(device).multi_processor_count


def run(device: torch.device | str, precision: str = "exact", dtype: torch.dtype = torch.float32,
        progress: Callable[[str], None] | None = None) -> SelfCheckResult:
    """Runs the problems through the fused op on ``device`` in this process (uncached; needs the
    compiled kernel for that device); ``progress`` gets each problem's name before it runs.
    Never touches the global RNG."""
    device = torch.device(device)
    bound = BOUNDS.get((precision, dtype))
    if bound is None:
        raise ValueError(f"no self-check bound for precision={precision!r} with {dtype}")
    errors: dict[str, float] = {}
    failure = None
    name = "setup"
    try:
        with torch.inference_mode(False), torch.enable_grad(), \
                torch.autocast(device.type, enabled=False):
            for seed, c in enumerate(configs(_sm_count(device))):
                name = c.name
                if progress is not None:
                    progress(name)
                errors.update(_one_config(device, precision, dtype, c, seed))
    except Exception as exc:  # noqa: BLE001  a kernel that raises fails its check
        text = str(exc).splitlines()[0] if str(exc) else ""
        failure = f"the fused op raised in '{name}': {type(exc).__name__}: {text}"
    return SelfCheckResult(str(device), precision, dtype, bound, errors, failure)


# ---- crash isolation: the check in a child process ----

def _child_command() -> list[str]:
    """The child's command line before its arguments (tests substitute a faulty child)."""
    return [sys.executable, "-c",
            "from strainer_fast.selfcheck import _child_main; raise SystemExit(_child_main())"]


def _timeout() -> float:
    value = os.environ.get(TIMEOUT_ENV, "")
    try:
        timeout = float(value) if value.strip() else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds, got {value!r}") from None
    if not timeout > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be positive, got {value!r}")
    return timeout


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _run_isolated(device: torch.device, precision: str, dtype: torch.dtype,
                  tf32: bool) -> SelfCheckResult:
    """:func:`run` in a fresh child process with this process's TF32 setting and
    environment; a child that dies or times out fails the check with a one-line reason
    naming the problem it was running."""
    bound = BOUNDS.get((precision, dtype))
    if bound is None:
        raise ValueError(f"no self-check bound for precision={precision!r} with {dtype}")
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    cmd = [*_child_command(), "--device", str(device), "--precision", precision,
           "--dtype", str(dtype).removeprefix("torch."), "--tf32", str(int(tf32))]
    timeout = _timeout()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
    running, verdict = "start-up", None
    for line in out.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "selfcheck-config":
            running = rest
        elif tag == "selfcheck-result":
            verdict = json.loads(rest)
    if verdict is not None and not timed_out:
        return SelfCheckResult(str(device), precision, dtype, bound, verdict["errors"],
                               verdict["failure"])
    last = next((ln.strip() for ln in reversed(err.splitlines()) if ln.strip()), "")
    what = (f"timed out after {timeout:.0f} s ({TIMEOUT_ENV})" if timed_out
            else f"died ({_exit_reason(proc.returncode)})")
    failure = (f"the check's child process {what} while running '{running}'"
               + (f"; its last words: {last[:200]}" if last else ""))
    return SelfCheckResult(str(device), precision, dtype, bound, {}, failure)


def _child_main(argv: list[str] | None = None) -> int:
    """Entry of the child process: runs one check and prints its progress and verdict."""
    parser = argparse.ArgumentParser(description="strainer_fast self-check (child process)")
    parser.add_argument("--device", required=True)
    parser.add_argument("--precision", required=True, choices=sorted(_PRECISION_CODES))
    parser.add_argument("--dtype", required=True, choices=["float32", "float64"])
    parser.add_argument("--tf32", type=int, choices=[0, 1], default=0)
    args = parser.parse_args(argv)
    from . import _extension  # noqa: F401  registers the ops' autograd

    torch.backends.cuda.matmul.allow_tf32 = bool(args.tf32)
    report = lambda name: print(f"selfcheck-config {name}", flush=True)  # noqa: E731
    result = run(args.device, args.precision, getattr(torch, args.dtype), progress=report)
    verdict = {"errors": result.errors, "failure": result.failure}
    print(f"selfcheck-result {json.dumps(verdict)}", flush=True)
    return 0
