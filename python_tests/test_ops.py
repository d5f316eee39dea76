"""Fused CPU sine-MLP ops against the plain-PyTorch reference, gradcheck, opcheck, compile."""

import math
import warnings

import pytest
import torch

import strainer_fast
from strainer_fast import ops
from conftest import requires_cpu_kernel

pytestmark = requires_cpu_kernel
W0 = 30.0


def siren_layers(widths, signals=None, dtype=torch.float32, w0=W0):
    """SIREN-initialised weights/biases; stacked [S, out, in] when `signals` is given."""
    lead = () if signals is None else (signals,)
    ws, bs = [], []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / w0
        ws.append((torch.rand(*lead, fan_out, fan_in, dtype=dtype) * 2 - 1) * bound)
        bs.append((torch.rand(*lead, fan_out, dtype=dtype) * 2 - 1) / math.sqrt(fan_in))
    return ws, bs


def with_grads(*tensors):
    return [t.detach().clone().requires_grad_() for t in tensors]


def compare(fn, x, ws, bs, rtol=1e-4, atol=2e-5, grad_atol=1e-4):
    """Runs fn with the fused and reference backends; compares outputs and all gradients.

    Gradients are sums over points in float32 (order differs between backends), so their
    absolute tolerance scales with the largest gradient entry.
    """
    outs, grads = [], []
    for backend in ("cpu", "reference"):
        xs, w, b = with_grads(x), with_grads(*ws), with_grads(*bs)
        out = fn(xs[0], w, b, backend)
        g = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
        out.backward(g)
        outs.append(out)
        grads.append([t.grad for t in (xs[0], *w, *b)])
    torch.testing.assert_close(outs[0], outs[1], rtol=rtol, atol=atol)
    for gf, gr in zip(*grads):
        scale = max(gr.abs().amax().item() if gr.numel() else 0.0, 1.0)
        torch.testing.assert_close(gf, gr, rtol=rtol, atol=grad_atol * scale)


@pytest.mark.parametrize("n", [0, 1, 7, 129, 300])
@pytest.mark.parametrize("in_dim", [1, 2, 3])
@pytest.mark.parametrize("last_linear", [False, True])
def test_sine_mlp_matches_reference(n, in_dim, last_linear):
    ws, bs = siren_layers([in_dim, 64, 33, 3])
    x = torch.rand(n, in_dim) * 2 - 1
    compare(lambda x, w, b, be: ops.sine_mlp(x, w, b, [W0] * 3, last_linear, backend=be), x, ws, bs)


@pytest.mark.parametrize("widths", [[2, 1], [2, 1, 1], [3, 17, 5], [2, 256, 256, 3], [1, 255, 2]])
def test_sine_mlp_widths(widths):
    ws, bs = siren_layers(widths)
    x = torch.rand(257, widths[0]) * 2 - 1
    om = [W0] * len(ws)
    compare(lambda x, w, b, be: ops.sine_mlp(x, w, b, om, True, backend=be), x, ws, bs)


@pytest.mark.parametrize("signals", [1, 2, 5, 12])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("last_linear", [True, False])
@pytest.mark.parametrize("n", [0, 1, 130])
def test_batched_matches_reference(signals, shared, last_linear, n):
    widths = [16, 24, 3]
    ws, bs = siren_layers(widths, signals)
    x = torch.rand(*(() if shared else (signals,)), n, widths[0]) * 2 - 1
    om = [W0, W0]
    compare(lambda x, w, b, be: ops.batched_sine_mlp(x, w, b, om, last_linear, backend=be),
            x, ws, bs)


@pytest.mark.parametrize("widths", [[256, 3], [256, 256, 3], [7, 1], [3, 200, 129, 2]])
def test_batched_widths(widths):
    ws, bs = siren_layers(widths, 10)
    x = torch.rand(300, widths[0]) * 2 - 1
    om = [W0] * len(ws)
    compare(lambda x, w, b, be: ops.batched_sine_mlp(x, w, b, om, True, backend=be), x, ws, bs)


def test_omegas_per_layer_and_scalar():
    ws, bs = siren_layers([2, 32, 32, 1])
    x = torch.rand(50, 2) * 2 - 1
    om = [30.0, 10.0, 2.5]
    compare(lambda x, w, b, be: ops.sine_mlp(x, w, b, om, False, backend=be), x, ws, bs)
    torch.testing.assert_close(ops.sine_mlp(x, ws, bs, 30.0), ops.sine_mlp(x, ws, bs, [30.0] * 3))


def test_large_arguments_use_exact_sin():
    # |z| up to 150000 rad, beyond the polynomial's range: exact products, so sin is exact too
    w = [torch.tensor([[5000.0]]), torch.tensor([[1.0]])]
    b = [torch.tensor([0.0]), torch.tensor([0.0])]
    x = (torch.arange(-64, 65) / 64).unsqueeze(1)
    got = ops.sine_mlp(x, w, b, [30.0, 1.0], True)
    ref = torch.sin(x.double() * 150000.0).float()
    torch.testing.assert_close(got, ref, rtol=0, atol=2e-6)


def test_fast_sincos_every_quadrant():
    # z = 1000 x over [-1000, 1000] rad (inside the polynomial's range): every quadrant, both
    # signs; sin from the forward, cos from the backward (dL/dx = 1000 cos z for L = sum sin z)
    w = [torch.tensor([[1000.0]])]
    b = [torch.tensor([0.0])]
    x = torch.linspace(-1, 1, 40001).unsqueeze(1).requires_grad_()
    out = ops.sine_mlp(x, w, b, [1.0], False)
    out.sum().backward()
    z = (x.detach() * 1000.0).double()  # the float products the kernel sees
    torch.testing.assert_close(out.detach(), torch.sin(z).float(), rtol=0, atol=1e-6)
    torch.testing.assert_close(x.grad, (1000.0 * torch.cos(z)).float(), rtol=0, atol=1e-3)


def test_non_contiguous_inputs():
    ws, bs = siren_layers([3, 20, 4], 3)
    x = (torch.rand(3, 40, 6) * 2 - 1)[:, :, ::2]
    wt = [w.transpose(-1, -2).contiguous().transpose(-1, -2) for w in ws]
    assert not x.is_contiguous() and not wt[0].is_contiguous()
    compare(lambda x, w, b, be: ops.batched_sine_mlp(x, w, b, [W0, W0], True, backend=be),
            x, wt, bs)


def test_shared_input_is_not_copied_per_signal():
    ws, bs = siren_layers([256, 3], 10)
    x = torch.rand(4096, 256)
    out = ops.batched_sine_mlp(x, ws, bs, [W0], True)
    assert out.shape == (10, 4096, 3)
    # output equals the per-signal reference on an explicitly expanded input
    ref = ops.batched_sine_mlp(x.expand(10, -1, -1), ws, bs, [W0], True, backend="reference")
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=2e-5)


def test_no_grad_forward_matches():
    ws, bs = siren_layers([2, 64, 64, 3])
    x = torch.rand(333, 2) * 2 - 1
    with torch.no_grad():
        a = ops.sine_mlp(x, ws, bs, [W0] * 3, True)
    b = ops.sine_mlp(x, with_grads(*ws), bs, [W0] * 3, True)
    torch.testing.assert_close(a, b.detach())


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("last_linear", [True, False])
def test_gradcheck_float64(shared, last_linear):
    ws, bs = siren_layers([3, 5, 4, 2], 2, dtype=torch.float64)
    x = torch.rand(*(() if shared else (2,)), 9, 3, dtype=torch.float64) * 2 - 1
    inputs = with_grads(x, *ws, *bs)

    def fn(x, *p):
        return ops.batched_sine_mlp(x, p[:3], p[3:], [3.0, 2.0, 1.5], last_linear, backend="cpu")

    assert torch.autograd.gradcheck(fn, inputs)


def test_gradcheck_float64_sine_mlp():
    ws, bs = siren_layers([2, 6, 3], dtype=torch.float64)
    x = torch.rand(11, 2, dtype=torch.float64) * 2 - 1
    inputs = with_grads(x, *ws, *bs)
    assert torch.autograd.gradcheck(
        lambda x, *p: ops.sine_mlp(x, p[:2], p[2:], [4.0, 3.0], False, backend="cpu"), inputs
    )


def test_double_backward_raises_clearly():
    ws, bs = siren_layers([2, 8, 1], dtype=torch.float64)
    x = with_grads(torch.rand(5, 2, dtype=torch.float64))[0]
    out = ops.sine_mlp(x, ws, bs, [W0, W0], True, backend="cpu")
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=False)
    assert g.shape == x.shape
    out = ops.sine_mlp(x, ws, bs, [W0, W0], True, backend="cpu")
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(out.sum(), x, create_graph=True)


def _op_args(shared, save):
    ws, bs = siren_layers([3, 8, 2], 2)
    x = torch.rand(*(() if shared else (2,)), 10, 3)
    return (with_grads(x)[0], with_grads(*ws), with_grads(*bs), [W0, W0], True, save, 0)


@pytest.mark.parametrize("shared", [True, False])
def test_opcheck(shared):
    torch.library.opcheck(torch.ops.strainer_fast.fused_mlp_forward.default, _op_args(shared, True))
    args = _op_args(shared, False)
    with torch.no_grad():
        torch.library.opcheck(
            torch.ops.strainer_fast.fused_mlp_forward.default, args,
            test_utils=("test_schema", "test_faketensor"),
        )


def test_torch_compile_fullgraph():
    ws, bs = siren_layers([2, 32, 32], None)
    dws, dbs = siren_layers([32, 3], 4)
    params = with_grads(*ws, *bs, *dws, *dbs)

    def model(x, p):
        feats = strainer_fast.sine_mlp(x, p[0:2], p[2:4], [W0, W0], False)
        return strainer_fast.batched_sine_mlp(feats, p[4:5], p[5:6], [W0], True)

    x = torch.rand(100, 2) * 2 - 1
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out_c = compiled(x, params)
    out_e = model(x, params)
    torch.testing.assert_close(out_c, out_e)
    gc = torch.autograd.grad(out_c.sum(), params)
    ge = torch.autograd.grad(out_e.sum(), params)
    for a, b in zip(gc, ge):
        torch.testing.assert_close(a, b)


def test_auto_uses_compiled_kernel_without_warning():
    ws, bs = siren_layers([2, 8, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ops.sine_mlp(torch.rand(4, 2), ws, bs, [W0, W0], True)


def test_empty_points_give_empty_output_and_zero_grads():
    ws, bs = siren_layers([2, 8, 3], 3)
    x = with_grads(torch.rand(0, 2))[0]
    w = with_grads(*ws)
    out = ops.batched_sine_mlp(x, w, bs, [W0, W0], True)
    assert out.shape == (3, 0, 3)
    out.sum().backward()
    assert x.grad.shape == (0, 2) and all(float(t.grad.abs().sum()) == 0 for t in w)


def test_reused_cpu_buffers_are_fully_overwritten():
    """Outputs, saved tensors and gradients come from a buffer cache: poison every cached
    buffer, then check a second run still matches the reference."""
    ws, bs = siren_layers([2, 64, 64, 3], 4)
    x = torch.rand(1500, 2)
    fn = lambda x, w, b, backend: ops.batched_sine_mlp(x, w, b, [W0] * 3, True, backend=backend)
    compare(fn, x, ws, bs)
    xs, w, b = with_grads(x), with_grads(*ws), with_grads(*bs)
    out = fn(xs[0], w, b, "cpu")
    out.sum().backward()
    for t in (out, xs[0].grad, *(t.grad for t in w)):
        t.fill_(float("nan"))
    del out, xs, w, b
    assert ops.cpu_cache_bytes() > 0
    compare(fn, x, ws, bs)
    ops.empty_cpu_cache()
    assert ops.cpu_cache_bytes() == 0


def test_no_zero_gradients_for_saved_outputs():
    """The forward's saved tensors are not differentiable outputs (no zero-filled grads)."""
    ws, bs = siren_layers([2, 16, 16, 3])
    w = with_grads(*ws)
    out, saved = torch.ops.strainer_fast.fused_mlp_forward(
        torch.rand(10, 2), [t[None] for t in w], [t[None] for t in bs], [W0] * 3, True, True, 0)
    assert len(saved) == 2 + 2  # CPU: two hidden activations, two cosines
    assert out.requires_grad and not any(t.requires_grad for t in saved)


def _rel_err(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


@pytest.mark.skipif(not ops.CPU_HAS_NATIVE_BF16, reason="CPU without bf16 instructions")
@pytest.mark.parametrize("shared", [True, False])
def test_bf16_mode_error_bounds(shared):
    """bf16 GEMM operands (8-bit mantissa): outputs and gradients within ~1% of exact."""
    ws, bs = siren_layers([2, 256, 256, 256])
    dws, dbs = siren_layers([256, 64, 3], 4)
    x = torch.rand(777, 2) * 2 - 1
    results = {}
    for prec, be in (("bf16", "cpu"), ("exact", "reference")):
        p = with_grads(*ws, *bs, *dws, *dbs)
        feats = ops.sine_mlp(x, p[0:3], p[3:6], [W0] * 3, False, backend=be, precision=prec)
        if not shared:
            feats = feats.expand(4, -1, -1)
        out = ops.batched_sine_mlp(feats, p[6:8], p[8:10], [W0, W0], True, backend=be,
                                   precision=prec)
        out.backward(torch.ones_like(out))
        results[prec] = (out.detach(), [t.grad for t in p])
    (o1, g1), (o0, g0) = results["bf16"], results["exact"]
    assert _rel_err(o1, o0) < 1e-2
    for a, b in zip(g1, g0):
        assert _rel_err(a, b) < 3e-2
    # and it really is lower precision than exact mode
    assert _rel_err(o1, o0) > 1e-6


@pytest.mark.skipif(not ops.CPU_HAS_NATIVE_BF16, reason="CPU without bf16 instructions")
@pytest.mark.parametrize("n, k, m", [(37, 35, 50), (128, 64, 32), (300, 17, 3)])
def test_bf16_mode_is_exact_on_rounded_operands(n, k, m):
    """A linear layer in bf16 mode equals fp32 math on bf16-rounded operands (only the
    accumulation order differs): checks packing, padding of odd sizes and conversion."""
    bf = lambda t: t.bfloat16().float()
    x = torch.randn(n, k, requires_grad=True)
    w = torch.randn(m, k, requires_grad=True)
    b = torch.randn(m, requires_grad=True)
    g = torch.randn(n, m)
    out = ops.sine_mlp(x, [w], [b], [W0], True, precision="bf16")
    out.backward(g)
    torch.testing.assert_close(out, bf(x.detach()) @ bf(w.detach()).T + b.detach(),
                               rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(w.grad, bf(g).T @ bf(x.detach()), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(x.grad, bf(g) @ bf(w.detach()), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(b.grad, g.sum(0), rtol=1e-5, atol=1e-4)


def test_bf16_mode_keeps_narrow_coordinate_layers_exact():
    """A layer fed by 2-D coordinates stays fp32 in bf16 mode (no quantised positions)."""
    ws, bs = siren_layers([2, 64])
    x = torch.rand(300, 2) * 2 - 1
    exact = ops.sine_mlp(x, ws, bs, [W0], False, backend="reference")
    fast = ops.sine_mlp(x, ws, bs, [W0], False, precision="bf16")
    torch.testing.assert_close(fast, exact, rtol=1e-4, atol=2e-5)


def test_bf16_mode_needs_float32_and_warns_without_cpu_support(monkeypatch):
    ws, bs = siren_layers([2, 8, 1], dtype=torch.float64)
    with pytest.raises(TypeError, match="needs float32"):
        ops.sine_mlp(torch.rand(4, 2, dtype=torch.float64), ws, bs, [W0, W0], precision="bf16")
    monkeypatch.setattr(ops, "CPU_HAS_NATIVE_BF16", False)
    monkeypatch.setattr(ops, "_warned_fallback", set())
    ws, bs = siren_layers([32, 8, 1])
    x = torch.rand(4, 32)
    with pytest.warns(RuntimeWarning, match="no bf16 instructions"):
        out = ops.sine_mlp(x, ws, bs, [W0, W0], True, precision="bf16")
    torch.testing.assert_close(out, ops.sine_mlp(x, ws, bs, [W0, W0], True))


@pytest.mark.parametrize("code", [1, 2], ids=["bf16", "tf32"])
def test_low_precision_opcheck(code):
    """Raw op with precision codes 1 (bf16) and 2 (tf32, the exact path on a CPU)."""
    if code == 1 and not ops.CPU_HAS_NATIVE_BF16:
        pytest.skip("CPU without bf16 instructions (the raw op has no fallback)")
    ws, bs = siren_layers([32, 48, 2], 2)
    args = (with_grads(torch.rand(9, 32))[0], with_grads(*ws), with_grads(*bs), [W0, W0], True,
            True, code)
    torch.library.opcheck(torch.ops.strainer_fast.fused_mlp_forward.default, args,
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


@pytest.mark.parametrize("last_linear", [True, False])
def test_fake_kernel_saved_layout_per_device(last_linear):
    """The fake kernel (torch.compile tracing) gives the saved tensors each device's kernel
    returns: CPU the hidden activations then the cosines, CUDA one pre-activation per sine
    layer. Fake CUDA tensors need no GPU."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    n_sine = 2 if last_linear else 3
    with FakeTensorMode():
        sine_widths = [8, 16, 4][:n_sine]
        for device, widths in (("cpu", [8, 16] + sine_widths), ("cuda", sine_widths)):
            x = torch.empty(10, 2, device=device)
            w = [torch.empty(3, o, i, device=device) for i, o in ((2, 8), (8, 16), (16, 4))]
            b = [torch.empty(3, o, device=device) for o in (8, 16, 4)]
            out, saved = torch.ops.strainer_fast.fused_mlp_forward(x, w, b, [W0] * 3, last_linear,
                                                                   True, 2)
            assert out.shape == (3, 10, 4) and out.device.type == device
            assert [t.shape[-1] for t in saved] == widths, device
            assert all(t.shape[:2] == (3, 10) and t.dtype == x.dtype for t in saved)
            _, saved = torch.ops.strainer_fast.fused_mlp_forward(x, w, b, [W0] * 3, last_linear,
                                                                 False, 0)
            assert saved == []
