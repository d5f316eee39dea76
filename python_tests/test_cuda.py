"""GPU tests of the fused CUDA kernels against the plain-PyTorch reference (skipped without CUDA)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

import strainer_fast
from strainer_fast._extension import compiled_kernel_available

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

DEV = "cuda"
W0 = 30.0


def make_net(signals, points, widths, shared, dtype, seed=0, omega=W0):
    """SIREN-initialised stack: x [N, in] or [S, N, in]; weights [S, out, in]; biases [S, out]."""
    g = torch.Generator().manual_seed(seed)
    shape = (points, widths[0]) if shared else (signals, points, widths[0])
    x = torch.rand(shape, generator=g, dtype=dtype) * 2 - 1
    weights, biases = [], []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        bound = 1.0 / fan_in if i == 0 else (6.0 / fan_in) ** 0.5 / omega
        weights.append((torch.rand(signals, fan_out, fan_in, generator=g, dtype=dtype) * 2 - 1) * bound)
        biases.append((torch.rand(signals, fan_out, generator=g, dtype=dtype) * 2 - 1) / fan_in**0.5)
    move = lambda ts: [t.to(DEV).requires_grad_() for t in ts]  # noqa: E731
    return move([x])[0], move(weights), move(biases), [omega] * len(weights)


def run(x, weights, biases, omegas, last_linear, backend, precision="exact", seed=1):
    """Output and gradients (x, weights, biases) of a fixed random linear loss."""
    out = strainer_fast.batched_sine_mlp(x, weights, biases, omegas, last_linear,
                                         backend=backend, precision=precision)
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed),
                        dtype=out.dtype).to(DEV)
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


def test_backward_is_deterministic():
    net = make_net(4, 5000, (2, 128, 128, 3), True, torch.float32)
    _, g1 = run(*net, True, "cuda")
    _, g2 = run(*net, True, "cuda")
    for a, b in zip(g1, g2):
        assert torch.equal(a, b)


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


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.get_device_capability()[0] < 8,
                    reason="bf16 tensor cores need sm_80+")
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("precision", ["bf16", "tf32"])
@pytest.mark.parametrize("widths", [(2, 256, 256, 256, 256, 256, 3), (3, 64, 70, 128, 36, 3)],
                         ids=["fused_epilogues", "mixed_alignment"])
def test_lowp_error_bounds(shared, precision, widths):
    """bf16/TF32 GEMM inputs with fp32 accumulation: errors against the fp64 reference stay
    small, with the GEMM-fused epilogues (widths multiples of 8) and with the separate
    elementwise kernels that replace them for widths like 70 (and next to them)."""
    x, w, b, om = make_net(10, 4096, widths, shared, torch.float32)
    out, grads = run(x, w, b, om, True, "cuda", precision=precision)
    to64 = lambda ts: [t.detach().double().requires_grad_() for t in ts]  # noqa: E731
    ref_out, ref_grads = run(to64([x])[0], to64(w), to64(b), om, True, "reference")
    err = (out.double() - ref_out).abs()
    assert err.max().item() < 0.1 and err.mean().item() < 0.02
    for g, r in zip(grads, ref_grads):
        rel = ((g.double() - r).norm() / r.norm().clamp_min(1e-12)).item()
        assert rel < 0.1


SANITIZER_SCRIPT = textwrap.dedent(
    """
    import torch, strainer_fast
    for shared in (True, False):
        for last_linear in (True, False):
            S, N, widths = 3, 131, (3, 70, 129, 2)
            x = torch.rand((N, 3) if shared else (S, N, 3), device="cuda", requires_grad=True)
            w = [torch.rand(S, o, i, device="cuda", requires_grad=True) * 0.1
                 for i, o in zip(widths[:-1], widths[1:])]
            b = [torch.rand(S, o, device="cuda", requires_grad=True) for o in widths[1:]]
            for precision in ("exact", "bf16"):
                out = strainer_fast.batched_sine_mlp(x, w, b, 30.0, last_linear,
                                                     backend="cuda", precision=precision)
                out.sum().backward()
    torch.cuda.synchronize()
    print("sanitizer-ok")
    """
)


def test_compute_sanitizer_smoke():
    exe = shutil.which("compute-sanitizer") or shutil.which(
        "compute-sanitizer", path=os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin"))
    if exe is None:
        pytest.skip("compute-sanitizer not found")
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("the smoke script exercises bf16 (sm_80+)")
    proc = subprocess.run([exe, "--tool", "memcheck", "--error-exitcode", "3", sys.executable,
                           "-c", SANITIZER_SCRIPT], capture_output=True, text=True, timeout=900)
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
    for e90, e80 in zip(errors["1"], errors["0"]):
        assert e90 < max(2 * e80, 1e-3)
