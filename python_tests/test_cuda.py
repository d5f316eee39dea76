"""GPU tests of the fused CUDA kernels against the plain-PyTorch reference (skipped without CUDA).

The self-check runs in strict mode here, so a kernel that fails it fails every test that uses it.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import strainer_fast
from strainer_fast import ops, selfcheck
from strainer_fast._extension import compiled_kernel_available
from oprecord import BACKWARD, OpRecorder
from rounding import ROUND
from tf32_emulation import siren_net, sm90_over_sm80

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (torch.cuda.is_available() is False)")

DEV = "cuda"
W0 = 30.0
TENSOR_CORE_PRECISIONS = ["tf32", "bf16"]
needs_sm80 = pytest.mark.skipif(
    torch.cuda.is_available() and torch.cuda.get_device_capability()[0] < 8,
    reason="tf32/bf16 tensor cores need sm_80+")


@pytest.fixture(autouse=True)
def _strict_selfcheck(monkeypatch):
    monkeypatch.setenv(selfcheck.ENV, "strict")


def make_net(signals, points, widths, shared, dtype, seed=0, omega=W0):
    """SIREN-initialised stack: x [N, in] or [S, N, in]; weights [S, out, in]; biases [S, out]."""
    x, weights, biases = siren_net(signals, points, widths, shared, dtype, seed, omega)
    move = lambda ts: [t.to(DEV).requires_grad_() for t in ts]  # noqa: E731
    return move([x])[0], move(weights), move(biases), [omega] * len(weights)


def run(x, weights, biases, omegas, last_linear, backend, precision="exact", seed=1):
    """Output and gradients (x, weights, biases) of a fixed random linear loss."""
    out = strainer_fast.batched_sine_mlp(x, weights, biases, omegas, last_linear,
                                         backend=backend, precision=precision)
    # drawn in float32 whatever the dtype, so fp32 and fp64 runs get the same probe
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(DEV, out.dtype)
    grads = torch.autograd.grad((out * probe).sum(), [x, *weights, *biases])
    return out.detach(), grads


def rel_err(a, b):
    """Max abs error relative to the reference's largest magnitude (at least 1)."""
    if b.numel() == 0:
        return 0.0
    return ((a - b).abs().max() / b.abs().max().clamp_min(1.0)).item()


CASES = [  # (S, N, widths)
    (1, 0, (2, 16, 3)),
    (1, 1, (1, 1)),
    (2, 1, (3, 5, 2)),
    (3, 7, (3, 5, 1)),
    (1, 130, (2, 256, 256, 3)),
    (12, 129, (2, 64, 64, 3)),
    (5, 333, (2, 256, 256, 3)),
    (2, 1001, (3, 17, 255, 256, 1)),
    (10, 4099, (2, 32, 3)),
]


def test_kernel_built():
    assert compiled_kernel_available("cuda"), "strainer_fast was built without CUDA kernels"


SELFCHECK_COMBOS = [("exact", torch.float64), ("exact", torch.float32),
                    pytest.param("tf32", torch.float32, marks=needs_sm80),
                    pytest.param("bf16", torch.float32, marks=needs_sm80)]


def _sm90_taken(device=0) -> bool:
    from strainer_fast import _C

    return (torch.cuda.get_device_capability(device) == (9, 0) and
            _C.cuda_sm90_forward_launches() >= 0 and
            os.environ.get("STRAINER_FAST_CUDA_SM90", "1") != "0")


@pytest.mark.parametrize("precision, dtype", SELFCHECK_COMBOS)
def test_branch_counters_match_the_plan(precision, dtype):
    """Every self-check problem launches exactly the branches _C.dispatch_plan predicts from
    the host-side rules (python_tests/test_dispatch.py relies on that plan on the CPU)."""
    from collections import Counter

    from strainer_fast import _C

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for seed, c in enumerate(selfcheck.configs(sms)):
        before = Counter(_C.cuda_branch_counts())
        selfcheck._one_config(torch.device(DEV), precision, dtype, c, seed)
        torch.cuda.synchronize()
        got = Counter(_C.cuda_branch_counts())
        got.subtract(before)
        want = Counter(name for _, _, name in _C.dispatch_plan(
            c.signals, c.points, list(c.widths), c.shared, c.last_linear, c.need_x,
            ops.PRECISIONS[precision], 8 if dtype == torch.float64 else 4, sms, _sm90_taken()))
        assert +got == want, f"{c.name}: launched {dict(+got)}, planned {dict(want)}"


@pytest.mark.parametrize("precision, dtype", SELFCHECK_COMBOS)
def test_selfcheck_in_a_child_process_passes(precision, dtype, monkeypatch):
    """The first-use path: the check runs in a child process, the verdict comes back."""
    monkeypatch.setenv(selfcheck.ENV, "1")
    selfcheck.reset()
    try:
        assert selfcheck.fused_allowed("cuda", 0, precision, dtype)
        (result,) = selfcheck.results().values()
        assert result.passed, result.describe()
    finally:
        selfcheck.reset()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("precision", ["exact", pytest.param("tf32", marks=needs_sm80),
                                       pytest.param("bf16", marks=needs_sm80)])
def test_selfcheck_on_another_device_than_the_current_one(precision):
    """cuda:1 while cuda:0 is current: the kernels (CUTLASS's cudaGetDevice /
    cudaFuncSetAttribute) follow the tensors' device through torch's shared CUDA runtime."""
    with torch.cuda.device(0):
        result = selfcheck.run("cuda:1", precision, torch.float32)
        assert result.passed, result.describe()
        assert torch.cuda.current_device() == 0
        selfcheck.reset()
        try:
            assert selfcheck._run_isolated(torch.device("cuda", 1), precision, torch.float32,
                                           False).passed
        finally:
            selfcheck.reset()


@pytest.mark.parametrize("precision, dtype", [("exact", torch.float64), ("exact", torch.float32),
                                              pytest.param("tf32", torch.float32, marks=needs_sm80),
                                              pytest.param("bf16", torch.float32, marks=needs_sm80)])
def test_selfcheck_passes(precision, dtype):
    """The self-check problem against its documented bound (a failure here, not only a warning)."""
    result = selfcheck.run(DEV, precision, dtype)
    print(f"self-check {precision} {dtype}: {result.describe()}")
    assert result.passed, result.describe() + "\n" + "\n".join(
        f"  {k}: {v:.2e}" for k, v in sorted(result.errors.items()))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"S{c[0]}-N{c[1]}-{'x'.join(map(str, c[2]))}")
@pytest.mark.parametrize("shared", [True, False], ids=["shared_x", "per_signal_x"])
@pytest.mark.parametrize("last_linear", [True, False], ids=["linear_last", "sine_last"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)],
                         ids=["fp64", "fp32"])
def test_matches_reference(case, shared, last_linear, dtype, tol):
    S, N, widths = case
    net = make_net(S, N, widths, shared, dtype)
    out, grads = run(*net, last_linear, "cuda")
    ref_out, ref_grads = run(*net, last_linear, "reference")
    assert out.shape == ref_out.shape
    assert rel_err(out, ref_out) < tol
    for name, g, r in zip(["x"] + [f"p{i}" for i in range(len(grads) - 1)], grads, ref_grads):
        assert g.shape == r.shape, name
        assert rel_err(g, r) < tol * 10, name  # gradients sum over points and signals


def test_single_network_api():
    x, w, b, om = make_net(1, 300, (2, 64, 64, 3), True, torch.float32)
    args = (x, [t[0] for t in w], [t[0] for t in b], om, True)
    fused = strainer_fast.sine_mlp(*args, backend="cuda")
    ref = strainer_fast.sine_mlp(*args, backend="reference")
    assert fused.shape == (300, 3)
    assert rel_err(fused, ref) < 2e-4


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("last_linear", [True, False])
def test_gradcheck_fp64(shared, last_linear):
    x, w, b, om = make_net(2, 5, (2, 4, 3, 2), shared, torch.float64, omega=3.0)

    def fn(x, *params):
        n = len(params) // 2
        return strainer_fast.batched_sine_mlp(x, params[:n], params[n:], om, last_linear,
                                              backend="cuda")

    assert torch.autograd.gradcheck(fn, (x, *w, *b))


@pytest.mark.parametrize("save", [True, False])
def test_opcheck_forward(save):
    x, w, b, om = make_net(3, 9, (2, 8, 3), True, torch.float64)
    if not save:
        x, w, b = x.detach(), [t.detach() for t in w], [t.detach() for t in b]
    torch.library.opcheck(torch.ops.strainer_fast.fused_mlp_forward.default,
                          (x, w, b, om, True, save, 0))


def test_torch_compile_fullgraph():
    x, w, b, om = make_net(10, 1000, (2, 64, 64, 3), True, torch.float32)

    def loss_fn(x, w, b):
        out = strainer_fast.batched_sine_mlp(x, w, b, om, True, backend="cuda")
        return (out**2).mean(dim=(1, 2)).sum()

    torch._dynamo.reset()
    compiled = torch.compile(loss_fn, fullgraph=True)
    eager_loss = loss_fn(x, w, b)
    eager_grads = torch.autograd.grad(eager_loss, [*w, *b])
    comp_loss = compiled(x, w, b)
    comp_grads = torch.autograd.grad(comp_loss, [*w, *b])
    torch.testing.assert_close(comp_loss, eager_loss)
    for a, e in zip(comp_grads, eager_grads):
        torch.testing.assert_close(a, e)


# Limits ~3-10x above emulated kernels on the CPU (operands rounded to the format, truncated
# for tf32; bf16 with the sine arguments saved in bf16): tf32 max 2.4e-4, mean 4.2e-5, grads
# 4.5e-3; bf16 max 7.7e-4, mean 1.3e-4, grads 2.7e-2.
ERROR_LIMITS = {"tf32": (2e-3, 4e-4, 2e-2), "bf16": (1e-2, 1.5e-3, 8e-2)}


@needs_sm80
@pytest.mark.parametrize("precision", TENSOR_CORE_PRECISIONS)
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("widths", [(2, 256, 256, 256, 256, 256, 3), (3, 64, 70, 128, 36, 3)],
                         ids=["fused_epilogues", "mixed_alignment"])
def test_tensor_core_error_bounds(precision, shared, widths):
    """TF32/bf16 GEMM inputs with fp32 accumulation against the fp64 reference: errors of the
    format's size, with the GEMM-fused epilogues (widths multiples of 8) and with the separate
    elementwise kernels that replace them for widths like 70 (and next to them)."""
    x, w, b, om = make_net(10, 4096, widths, shared, torch.float32)
    out, grads = run(x, w, b, om, True, "cuda", precision=precision)
    to64 = lambda ts: [t.detach().double().requires_grad_() for t in ts]  # noqa: E731
    ref_out, ref_grads = run(to64([x])[0], to64(w), to64(b), om, True, "reference")
    err = (out.double() - ref_out).abs()
    max_err, mean_err, grad_err = ERROR_LIMITS[precision]
    assert err.max().item() < max_err and err.mean().item() < mean_err
    for g, r in zip(grads, ref_grads):
        rel = ((g.double() - r).norm() / r.norm().clamp_min(1e-12)).item()
        assert rel < grad_err
    # and it really runs the lower precision (emulated: exact fp32 2e-8, tf32 operands 1.6e-5)
    assert err.mean().item() > 2e-6


ROUNDED_CASES = [  # (S or None for sine_mlp, shared, N, in, out)
    (None, True, 37, 35, 50), (None, True, 128, 64, 32), (None, True, 300, 17, 3),
    (None, True, 1031, 256, 256), (10, True, 333, 256, 3), (4, False, 129, 67, 5),
]


@needs_sm80
@pytest.mark.parametrize("precision", TENSOR_CORE_PRECISIONS)
@pytest.mark.parametrize("case", ROUNDED_CASES, ids=lambda c: "-".join(map(str, c)))
def test_tensor_core_modes_are_exact_on_rounded_operands(precision, case):
    """A linear layer in tf32/bf16 mode on operands already in that format equals fp64 math up
    to fp32 accumulation (bounded by 4 K u |x||w|): checks fragment layouts, padding of odd
    sizes, conversions and the dX / dW / db paths."""
    signals, shared, n, k, m = case
    r = ROUND[precision]
    g = torch.Generator().manual_seed(sum(case[2:]))
    lead = () if signals is None else (signals,)
    x = r(torch.randn(*(() if shared else lead), n, k, generator=g)).to(DEV).requires_grad_()
    w = r(torch.randn(*lead, m, k, generator=g)).to(DEV).requires_grad_()
    b = torch.randn(*lead, m, generator=g).to(DEV).requires_grad_()
    probe = r(torch.randn(*lead, n, m, generator=g)).to(DEV)
    fn = strainer_fast.sine_mlp if signals is None else strainer_fast.batched_sine_mlp
    out = fn(x, [w], [b], [W0], True, backend="cuda", precision=precision)
    gx, gw, gb = torch.autograd.grad(out, [x, w, b], probe)
    x64, w64, b64, p64 = (t.detach().double() for t in (x, w, b, probe))
    xs = x64 if signals is None or not shared else x64.expand(signals, n, k)

    def check(got, want, abs_products, k_dim):
        limit = 4 * k_dim * 2.0**-24 * abs_products + 1e-30
        assert got.shape == want.shape
        assert ((got.double() - want).abs() <= limit).all(), (
            f"max excess {((got.double() - want).abs() / limit).max().item():.2f}x")

    mT = lambda t: t.transpose(-1, -2)  # noqa: E731
    check(out, xs @ mT(w64) + b64.unsqueeze(-2), xs.abs() @ mT(w64.abs()) + b64.abs().unsqueeze(-2), k + 1)
    check(gw, mT(p64) @ xs, mT(p64.abs()) @ xs.abs(), n)
    gx_want, gx_abs = p64 @ w64, p64.abs() @ w64.abs()
    if signals is not None and shared:
        gx_want, gx_abs = gx_want.sum(0), gx_abs.sum(0)
    check(gx, gx_want, gx_abs, m * (signals or 1))
    check(gb, p64.sum(-2), p64.abs().sum(-2), n)


@pytest.mark.parametrize("shared", [True, False])
def test_gradcheck_fp64_split_k(shared):
    """Enough points (N = 20011) that weight gradients take the split-K / reduction path."""
    x, w, b, om = make_net(2, 20011, (2, 24, 17, 3), shared, torch.float64, omega=3.0)

    def fn(x, *params):
        n = len(params) // 2
        return strainer_fast.batched_sine_mlp(x, params[:n], params[n:], om, True, backend="cuda")

    assert torch.autograd.gradcheck(fn, (x, *w, *b), fast_mode=True)


OP_PRECISIONS = [(torch.float64, "exact"), (torch.float32, "exact"),
                 pytest.param(torch.float32, "tf32", marks=needs_sm80),
                 pytest.param(torch.float32, "bf16", marks=needs_sm80)]


@pytest.mark.parametrize("dtype, precision", OP_PRECISIONS)
@pytest.mark.parametrize("shared", [True, False])
def test_opcheck_forward_precisions(dtype, precision, shared):
    x, w, b, om = make_net(3, 41, (2, 32, 19, 3), shared, dtype)
    torch.library.opcheck(torch.ops.strainer_fast.fused_mlp_forward.default,
                          (x, w, b, om, False, True, ops.PRECISIONS[precision]))


@pytest.mark.parametrize("dtype, precision", OP_PRECISIONS)
@pytest.mark.parametrize("shared", [True, False])
def test_opcheck_backward(dtype, precision, shared):
    """The backward op with the arguments a real backward pass gives it."""
    x, w, b, om = make_net(3, 41, (2, 32, 19, 3), shared, dtype)
    with OpRecorder() as rec:
        out = strainer_fast.batched_sine_mlp(x, w, b, om, False, backend="cuda",
                                             precision=precision)
        torch.autograd.grad(out.sum(), [x, *w, *b])
    torch.library.opcheck(torch.ops.strainer_fast.fused_mlp_backward.default,
                          rec.args_of(BACKWARD))


@pytest.mark.parametrize("precision", ["exact", pytest.param("tf32", marks=needs_sm80),
                                       pytest.param("bf16", marks=needs_sm80)])
def test_side_stream(precision):
    """Kernels run on the current stream: the input is written on a side stream behind a long
    sleep, so a kernel launched on another stream would read it unwritten."""
    x, w, b, om = make_net(4, 3001, (2, 64, 64, 3), True, torch.float32)
    ref_out, ref_grads = run(x, w, b, om, True, "cuda", precision=precision)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # ~25 ms of GPU time
        x2 = x.detach().clone().requires_grad_()
        out, grads = run(x2, w, b, om, True, "cuda", precision=precision)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    assert torch.equal(out, ref_out)
    for a, e in zip(grads, ref_grads):
        assert torch.equal(a, e)


@pytest.mark.parametrize("precision", ["exact", pytest.param("tf32", marks=needs_sm80),
                                       pytest.param("bf16", marks=needs_sm80)])
def test_large_arguments_beyond_fast_sincos_range(precision):
    """|w0 z| up to ~5e5 rad: small-integer operands (exact in bf16 and tf32) and w0 = 8 make
    every product and sum exact in fp32, so sin must match float64 to fp32 rounding."""
    g = torch.Generator().manual_seed(5)
    x = torch.randint(-8, 9, (4099, 32), generator=g).float().to(DEV)
    w = torch.randint(-255, 256, (48, 32), generator=g).float().to(DEV).requires_grad_()
    b = torch.zeros(48, device=DEV)
    x.requires_grad_()
    out = strainer_fast.sine_mlp(x, [w], [b], [8.0], False, backend="cuda", precision=precision)
    arg = 8.0 * (x.detach().double() @ w.detach().double().T)
    assert arg.abs().max().item() > 1e5
    torch.testing.assert_close(out.double(), torch.sin(arg), rtol=0, atol=2e-6)
    if precision == "exact":  # the backward's cos at the same arguments
        probe = torch.randn(out.shape, generator=g).to(DEV)
        (gx,) = torch.autograd.grad(out, [x], probe)
        want = (probe.double() * 8.0 * torch.cos(arg)) @ w.detach().double()
        torch.testing.assert_close(gx.double(), want, rtol=0, atol=1e-6 * want.abs().max().item())


@pytest.mark.parametrize("precision", ["exact", pytest.param("tf32", marks=needs_sm80),
                                       pytest.param("bf16", marks=needs_sm80)])
@pytest.mark.parametrize("shared", [True, False])
def test_deterministic(precision, shared):
    """Two runs are bitwise equal (no atomics in the reductions), at a split-K size."""
    net = make_net(10, 20011, (2, 256, 256, 3), shared, torch.float32)
    out1, g1 = run(*net, True, "cuda", precision=precision)
    out2, g2 = run(*net, True, "cuda", precision=precision)
    assert torch.equal(out1, out2)
    for a, b in zip(g1, g2):
        assert torch.equal(a, b)


def _strainer10_step_peak(backend, precision, points):
    """Peak bytes above the parameters of one forward + backward of STRAINER-10 (shared 2 -> 5
    x 256 sine encoder, 10 linear 256 -> 3 decoders, mean-squared error)."""
    g = torch.Generator().manual_seed(0)
    enc = [(torch.rand(256, i, generator=g) * 2 - 1) / i for i in (2, 256, 256, 256, 256)]
    enc_b = [torch.rand(256, generator=g) * 0.1 for _ in enc]
    dec, dec_b = torch.rand(10, 3, 256, generator=g) * 0.01, torch.zeros(10, 3)
    params = [t.to(DEV).requires_grad_() for t in (*enc, *enc_b, dec, dec_b)]
    lin = torch.linspace(-1, 1, int(math.isqrt(points)), device=DEV)
    coords = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).reshape(-1, 2)
    target = torch.rand(10, coords.shape[0], 3, generator=g).to(DEV)

    def step():
        feats = strainer_fast.sine_mlp(coords, params[:5], params[5:10], [W0] * 5, False,
                                       backend=backend, precision=precision)
        out = strainer_fast.batched_sine_mlp(feats, params[10:11], params[11:12], [W0], True,
                                             backend=backend, precision=precision)
        loss = ((out - target) ** 2).mean(dim=(1, 2)).sum()
        return torch.autograd.grad(loss, params)

    step()  # warm-up (self-check, caches)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    grads = step()
    torch.cuda.synchronize()
    del grads
    return torch.cuda.max_memory_allocated() - base


@pytest.mark.parametrize("precision", ["exact", pytest.param("tf32", marks=needs_sm80),
                                       pytest.param("bf16", marks=needs_sm80)])
def test_step_peak_memory_not_above_eager(precision):
    points = 178 * 178
    eager = _strainer10_step_peak("reference", "exact", points)
    fused = _strainer10_step_peak("cuda", precision, points)
    print(f"peak above parameters: eager {eager / 2**20:.1f} MiB, fused {precision} "
          f"{fused / 2**20:.1f} MiB")
    assert fused <= eager


def test_cuda_graph_capture_after_warm_up():
    """A warmed-up (self-checked) combination captures and replays; an unchecked one inside a
    capture raises a clear error instead of starting the check."""
    x, w, b, om = make_net(3, 257, (2, 64, 3), True, torch.float32)
    xs, ws, bs = x.detach(), [t.detach() for t in w], [t.detach() for t in b]
    fn = lambda: strainer_fast.batched_sine_mlp(xs, ws, bs, om, True, backend="cuda")  # noqa: E731
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        want = fn()  # warm-up: runs the self-check
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        got = fn()
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(got, want)
    selfcheck.reset()
    try:
        with pytest.raises(RuntimeError, match="graph capture is in progress"):
            with torch.cuda.graph(torch.cuda.CUDAGraph()):
                fn()
    finally:
        selfcheck.reset()


SANITIZER_CASE = Path(__file__).with_name("cuda_sanitizer_case.py")


@pytest.mark.skipif(os.environ.get("STRAINER_FAST_GPU_CHECK") == "1",
                    reason="make gpu-check runs compute-sanitizer as stages of its own")
def test_compute_sanitizer_smoke():
    exe = shutil.which("compute-sanitizer") or shutil.which(
        "compute-sanitizer", path=os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin"))
    if exe is None:
        pytest.skip("compute-sanitizer not found")
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("the smoke script exercises tf32/bf16 (sm_80+)")
    env = dict(os.environ, STRAINER_FAST_CUDA_SELFCHECK="0")
    proc = subprocess.run([exe, "--tool", "memcheck", "--error-exitcode", "3", sys.executable,
                           str(SANITIZER_CASE)], capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == 0 and "sanitizer-ok" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0),
                    reason="the sm_90a fused forward runs on cc 9.0 devices only")
@pytest.mark.parametrize("precision", ["bf16", "tf32"])
def test_sm90_forward_taken_and_matches_sm80(precision, monkeypatch):
    """On a cc 9.0 device the aligned sine layers' forward runs on the wgmma + TMA kernel
    (its launch counter moves), and its output and gradients stay as close to the fp64
    reference as those of the sm80 kernels (STRAINER_FAST_CUDA_SM90=0)."""
    from strainer_fast import _C

    if _C.cuda_sm90_forward_launches() < 0:
        pytest.fail("cc 9.0 device but the build lacks the sm_90a kernels (archs without 90a?)")
    x, w, b, om = make_net(3, 1000, (2, 64, 128, 64, 3), False, torch.float32)
    to64 = lambda ts: [t.detach().double().requires_grad_() for t in ts]  # noqa: E731
    ref_out, ref_grads = run(to64([x])[0], to64(w), to64(b), om, True, "reference")
    errors = {}
    for sm90 in ("1", "0"):
        monkeypatch.setenv("STRAINER_FAST_CUDA_SM90", sm90)
        before = _C.cuda_sm90_forward_launches()
        out, grads = run(x, w, b, om, True, "cuda", precision=precision)
        torch.cuda.synchronize()
        launches = _C.cuda_sm90_forward_launches() - before
        assert launches == (2 if sm90 == "1" else 0)  # sine layers 2 and 3 feed a GEMM
        errors[sm90] = [(out.double() - ref_out).abs().max().item()] + [
            ((g.double() - r).norm() / r.norm().clamp_min(1e-12)).item()
            for g, r in zip(grads, ref_grads)]
    assert_sm90_within_rounding(errors, precision, 3, 1000, (2, 64, 128, 64, 3), False)


def assert_sm90_within_rounding(errors, precision, signals, points, widths, shared):
    """sm_90a errors against the sm80 kernels' times the ratio their operand rounding implies:
    tf32 wgmma truncates where the sm80 kernels round to nearest (tf32_emulation.py emulates
    both, ratios 2-3), bf16 operands are rounded by the same conversions on both paths (1);
    1.5x margin for accumulation order and sin / cos."""
    ratios = (sm90_over_sm80(signals, points, widths, shared) if precision == "tf32"
              else [1.0] * len(errors["1"]))
    if len(ratios) != len(errors["1"]):  # the backward test compares gradients only
        ratios = ratios[1:]
    for i, (e90, e80, ratio) in enumerate(zip(errors["1"], errors["0"], ratios)):
        bound = 1.5 * max(ratio, 1.0) * e80 + 1e-6
        assert e90 < bound, f"entry {i}: sm90 {e90:.2e} vs sm80 {e80:.2e} x expected {ratio:.2f}"


# (signals, shared x, widths, precision, sm_90a backward GEMMs expected per backward); signals
# None: the device's SM count, so that the dW GEMMs go out as one batched launch per layer
SM90_BACKWARD_CASES = [
    # dX with the gate into layers 1 and 2 (layer 3's dX has K = 3: not 16-byte aligned)
    (3, False, (2, 64, 128, 64, 3), "tf32", 2),
    # gates into layers 2 and 3's inputs; dW of layers 1-3, one split-K launch per signal
    # (3 signals x at most 2 tiles are far below the SM count)
    (3, False, (2, 64, 128, 64, 3), "bf16", 2 + 3 * 3),
    # gate into layer 1 only (layer 0 is the concatenated shared-input layer); dW of layers
    # 1-2 per signal and layer 0 as one GEMM over the concatenated rows (x's bf16 copy
    # carries the ones column)
    (3, True, (32, 64, 64, 3), "bf16", 1 + 2 * 3 + 1),
    # gate into layer 1 (layer 0 is an ATen layer); dW of layers 1-2 as one batched launch each
    (None, False, (2, 64, 64, 3), "bf16", 1 + 2),
]


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0),
                    reason="the sm_90a kernels run on cc 9.0 devices only")
@pytest.mark.parametrize("signals, shared, widths, precision, expected", SM90_BACKWARD_CASES,
                         ids=lambda v: str(v).replace(" ", ""))
def test_sm90_backward_taken_and_matches_sm80(signals, shared, widths, precision, expected,
                                              monkeypatch):
    """On a cc 9.0 device the backward's dX GEMMs with the cos gate (tf32: transposed W', bf16:
    W' as is) and the bf16 dW GEMMs (deterministic split-K: N = 5000 takes 2 slices; batched
    when the signals fill the GPU) run on the wgmma + TMA kernels (their launch counter moves by
    the expected count), the gradients (bias gradients from the dW GEMM's ones column) are as
    close to the fp64 reference as the sm80 kernels' (STRAINER_FAST_CUDA_SM90=0), and two runs
    are bitwise equal."""
    from strainer_fast import _C

    if _C.cuda_sm90_backward_launches() < 0:
        pytest.fail("cc 9.0 device but the build lacks the sm_90a kernels (archs without 90a?)")
    if signals is None:
        signals = torch.cuda.get_device_properties(0).multi_processor_count
    x, w, b, om = make_net(signals, 5000, widths, shared, torch.float32)
    to64 = lambda ts: [t.detach().double().requires_grad_() for t in ts]  # noqa: E731
    ref_out, ref_grads = run(to64([x])[0], to64(w), to64(b), om, True, "reference")
    errors = {}
    for sm90 in ("1", "0"):
        monkeypatch.setenv("STRAINER_FAST_CUDA_SM90", sm90)
        run(x, w, b, om, True, "cuda", precision=precision)  # self-check, warm-up
        torch.cuda.synchronize()
        before = _C.cuda_sm90_backward_launches()
        out, grads = run(x, w, b, om, True, "cuda", precision=precision)
        torch.cuda.synchronize()
        launches = _C.cuda_sm90_backward_launches() - before
        assert launches == (expected if sm90 == "1" else 0)
        errors[sm90] = [((g.double() - r).norm() / r.norm().clamp_min(1e-12)).item()
                        for g, r in zip(grads, ref_grads)]
        if sm90 == "1":
            _, again = run(x, w, b, om, True, "cuda", precision=precision)
            for a, e in zip(grads, again):
                assert torch.equal(a, e)
    assert_sm90_within_rounding(errors, precision, signals, 5000, widths, shared)
