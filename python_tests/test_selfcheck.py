"""The fused kernels' self-check (strainer_fast.selfcheck), exercised on the CPU.

The machinery is device-agnostic: these tests add "cpu" to the checked device types and inject
faulty kernels by replacing ``torch.ops.strainer_fast.fused_mlp_forward`` / ``_backward``, so CI
tests pass, fail -> one warning + the reference, strict -> error, off -> skipped, NaN -> fail.
The bounds are checked against the CPU fused kernel and against emulated tf32 / bf16 kernels.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from strainer_fast import ops, reference, selfcheck
from conftest import requires_cpu_kernel
from rounding import round_bf16, round_tf32

pytestmark = requires_cpu_kernel
NS = torch.ops.strainer_fast
REAL_FORWARD = NS.fused_mlp_forward
REAL_BACKWARD = NS.fused_mlp_backward


# ---- emulated tensor-core kernels (rounded GEMM operands, fp32 everything else) ----

class _RoundValue(torch.autograd.Function):
    """Rounds in forward (a GEMM operand), passes the gradient through."""

    @staticmethod
    def forward(ctx, t, fn):
        return fn(t)

    @staticmethod
    def backward(ctx, g):
        return g, None


class _RoundGrad(torch.autograd.Function):
    """Identity in forward; rounds the incoming gradient (the backward GEMMs' dZ operand)."""

    @staticmethod
    def forward(ctx, t, fn):
        ctx.fn = fn
        return t.clone()

    @staticmethod
    def backward(ctx, g):
        return ctx.fn(g), None


class _Sine(torch.autograd.Function):
    """sin(arg) whose backward's cos uses the argument as saved (possibly rounded)."""

    @staticmethod
    def forward(ctx, arg, save_fn):
        ctx.save_for_backward(save_fn(arg))
        return torch.sin(arg)

    @staticmethod
    def backward(ctx, g):
        (arg,) = ctx.saved_tensors
        return g * torch.cos(arg), None


def emulated_forward(rounding, save_rounding=None):
    """A stand-in for the forward op: layers at least 16 wide round their GEMM operands."""
    keep = lambda t: t  # noqa: E731
    save_rounding = save_rounding or keep

    def op(x, weights, biases, omegas, last_linear, save, precision):
        h, last = x, len(weights) - 1
        for i, (w, b, om) in enumerate(zip(weights, biases, omegas)):
            r = rounding if w.shape[-1] >= 16 else keep
            z = torch.matmul(_RoundValue.apply(h, r), _RoundValue.apply(w, r).transpose(-1, -2))
            z = _RoundGrad.apply(z, r) + b.unsqueeze(-2)
            h = z if (last_linear and i == last) else _Sine.apply(om * z, save_rounding)
        return h, []

    return op


EMULATIONS = {
    "tf32": emulated_forward(round_tf32),
    "tf32-truncated": emulated_forward(lambda t: round_tf32(t, True)),
    "bf16": emulated_forward(round_bf16),
    "bf16-saved": emulated_forward(round_bf16, round_bf16),
}


# ---- the bounds ----

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_fused_kernel_passes_with_margin(dtype):
    result = selfcheck.run("cpu", "exact", dtype)
    assert result.passed, result.describe()
    assert result.worst[1] < result.bound / 5, result.describe()
    # every problem's output, W and b of every layer, and x's gradient where it has one
    assert len(result.errors) == sum(1 + 2 * (len(c.widths) - 1) + c.need_x
                                     for c in selfcheck.configs())


@pytest.mark.parametrize("precision, emulation", [
    ("tf32", "tf32"), ("tf32", "tf32-truncated"),
    ("bf16", "bf16"), ("bf16", "bf16-saved"),
])
def test_bounds_admit_a_correct_lower_precision_kernel(monkeypatch, precision, emulation):
    monkeypatch.setattr(NS, "fused_mlp_forward", EMULATIONS[emulation])
    result = selfcheck.run("cpu", precision)
    assert result.passed and result.worst[1] < result.bound / 2, result.describe()


@pytest.mark.parametrize("precision, emulation", [("exact", "tf32"), ("tf32", "bf16-saved")])
def test_bounds_reject_a_coarser_precision(monkeypatch, precision, emulation):
    monkeypatch.setattr(NS, "fused_mlp_forward", EMULATIONS[emulation])
    result = selfcheck.run("cpu", precision)
    assert not result.passed, result.describe()


# ---- the fallback machinery, with injected faults on a smaller problem ----

FULL_CONFIGS = selfcheck.configs


@pytest.fixture
def cpu_checked(monkeypatch):
    """Self-check on for CPU tensors (as for CUDA ones), in this process, the problems cut to
    at most 131 points, no verdicts yet."""
    monkeypatch.setattr(selfcheck, "CHECKED_DEVICE_TYPES", frozenset({"cuda", "cpu"}))
    monkeypatch.setattr(selfcheck, "configs", lambda sms=1: [
        dataclasses.replace(c, points=min(c.points, 131)) for c in FULL_CONFIGS(sms)])
    monkeypatch.delenv(selfcheck.ENV, raising=False)
    selfcheck.reset()
    yield monkeypatch
    selfcheck.reset()


def perturbed_forward(scale=1e-3, nan=False, only=torch.float32):
    def op(x, weights, biases, omegas, last_linear, save, precision):
        out, *rest = REAL_FORWARD(x, weights, biases, omegas, last_linear, save, precision)
        if x.dtype == only:
            out = out * (1 + scale)
            if nan:
                out = out.clone()
                out.view(-1)[out.numel() // 2] = float("nan")
        return (out, *rest)
    return op


def perturbed_backward(*args):
    grad_x, grad_w, grad_b = REAL_BACKWARD(*args)
    return grad_x, [grad_w[0] * 1.01, *grad_w[1:]], grad_b


def net(dtype=torch.float32):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(57, 2, generator=g, dtype=dtype) * 2 - 1
    ws = [torch.randn(4, 32, 2, generator=g, dtype=dtype) * 0.5,
          torch.randn(4, 3, 32, generator=g, dtype=dtype) * 0.05]
    bs = [torch.randn(4, 32, generator=g, dtype=dtype) * 0.1,
          torch.randn(4, 3, generator=g, dtype=dtype) * 0.1]
    return x, [w.requires_grad_() for w in ws], [b.requires_grad_() for b in bs], [30.0, 30.0]


def call(x, ws, bs, om):
    return ops.batched_sine_mlp(x, ws, bs, om, True)


def real_output(x, ws, bs, om):
    with torch.no_grad():
        return REAL_FORWARD(x, ws, bs, om, True, False, 0)[0]


def fused_used_silently() -> selfcheck.SelfCheckResult:
    """One call passes its check without a warning and runs the fused kernel; its verdict."""
    x, ws, bs, om = net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = call(x, ws, bs, om)
    assert torch.equal(out, real_output(x, ws, bs, om))
    (result,) = selfcheck.results().values()
    assert result.passed and result.device == "cpu" and result.precision == "exact"
    return result


def test_passing_kernel_is_used_without_warning(cpu_checked):
    fused_used_silently()


def test_failing_forward_warns_once_and_uses_the_reference(cpu_checked):
    cpu_checked.setattr(NS, "fused_mlp_forward", perturbed_forward())
    x, ws, bs, om = net()
    with pytest.warns(RuntimeWarning, match="failed its self-check on cpu for precision='exact'"):
        out = call(x, ws, bs, om)
    ref = reference.batched_sine_mlp(x, ws, bs, om, True)
    assert torch.equal(out, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        out = call(x, ws, bs, om)
        out.sum().backward()  # the reference's own autograd
    assert torch.equal(out, ref) and ws[0].grad is not None
    # float64 is a combination of its own, checked separately: it passes
    x64, ws64, bs64, _ = net(torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out64 = call(x64, ws64, bs64, om)
    assert torch.equal(out64, real_output(x64, ws64, bs64, om))


def test_failing_backward_alone_fails_the_check(cpu_checked):
    cpu_checked.setattr(NS, "fused_mlp_backward", perturbed_backward)
    x, ws, bs, om = net()
    with pytest.warns(RuntimeWarning, match="failed its self-check") as record:
        call(x, ws, bs, om)
    assert ": W0)" in str(record[0].message)  # names the gradient that failed


def test_strict_mode_raises_every_time(cpu_checked):
    cpu_checked.setattr(NS, "fused_mlp_forward", perturbed_forward())
    cpu_checked.setenv(selfcheck.ENV, "strict")
    x, ws, bs, om = net()
    for _ in range(2):
        with pytest.raises(RuntimeError, match="failed its self-check.*=strict"):
            call(x, ws, bs, om)
    cpu_checked.setenv(selfcheck.ENV, "1")  # the same verdict, now warned about once
    with pytest.warns(RuntimeWarning, match="failed its self-check"):
        call(x, ws, bs, om)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call(x, ws, bs, om)


def test_off_skips_the_check(cpu_checked):
    cpu_checked.setattr(NS, "fused_mlp_forward", perturbed_forward())
    cpu_checked.setenv(selfcheck.ENV, "0")
    x, ws, bs, om = net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = call(x, ws, bs, om)
    assert selfcheck.results() == {}
    assert not torch.equal(out, reference.batched_sine_mlp(x, ws, bs, om, True))  # the faulty op


def test_bad_mode_is_a_clear_error(cpu_checked):
    cpu_checked.setenv(selfcheck.ENV, "yes")
    x, ws, bs, om = net()
    with pytest.raises(ValueError, match="must be 0, 1 or strict"):
        call(x, ws, bs, om)


def test_nan_never_passes(cpu_checked):
    cpu_checked.setattr(NS, "fused_mlp_forward", perturbed_forward(scale=0.0, nan=True))
    result = selfcheck.run("cpu", "exact")
    assert not result.passed and "nan" in result.describe()
    with pytest.warns(RuntimeWarning, match="failed its self-check"):
        out = call(*net())
    assert torch.isfinite(out).all()


def test_raising_kernel_fails_the_check(cpu_checked):
    def broken(*args):
        raise RuntimeError("CUDA error: no kernel image is available for execution")

    cpu_checked.setattr(NS, "fused_mlp_forward", broken)
    with pytest.warns(RuntimeWarning,
                      match="the fused op raised in 'mlp: shared x.*': RuntimeError: CUDA error"):
        out = call(*net())
    assert out.shape == (4, 57, 3)


def test_torch_compile_fullgraph_runs_the_check_eagerly(cpu_checked):
    x, ws, bs, om = net()
    torch._dynamo.reset()
    compiled = torch.compile(call, fullgraph=True, backend="aot_eager")
    out = compiled(x, ws, bs, om)
    assert [r.passed for r in selfcheck.results().values()] == [True]
    torch.testing.assert_close(out, call(x, ws, bs, om))


def test_torch_compile_fullgraph_uses_the_reference_after_a_failure(cpu_checked):
    cpu_checked.setattr(NS, "fused_mlp_forward", perturbed_forward())
    x, ws, bs, om = net()
    torch._dynamo.reset()
    compiled = torch.compile(call, fullgraph=True, backend="aot_eager")
    with pytest.warns(RuntimeWarning, match="failed its self-check"):
        out = compiled(x, ws, bs, om)
    torch.testing.assert_close(out, reference.batched_sine_mlp(x, ws, bs, om, True),
                               rtol=0, atol=0)
    torch._dynamo.reset()


def test_graph_capture_never_starts_the_check(cpu_checked):
    cpu_checked.setattr(selfcheck, "_capturing", lambda device_type, index: True)
    x, ws, bs, om = net()
    with pytest.raises(RuntimeError, match="graph capture is in progress"):
        call(x, ws, bs, om)
    assert selfcheck.results() == {}
    # a verdict from an earlier (warm-up) call lets captured calls through
    cpu_checked.setattr(selfcheck, "_capturing", lambda device_type, index: False)
    call(x, ws, bs, om)
    cpu_checked.setattr(selfcheck, "_capturing", lambda device_type, index: True)
    call(x, ws, bs, om)


def test_check_leaves_global_rng_and_grad_mode_alone(cpu_checked):
    state = torch.get_rng_state()
    x, ws, bs, om = net()
    with torch.no_grad():
        call(x, ws, bs, om)
    assert torch.equal(torch.get_rng_state(), state)
    assert [r.passed for r in selfcheck.results().values()] == [True]
    with torch.inference_mode():
        selfcheck.reset()
        call(x.detach(), [w.detach() for w in ws], [b.detach() for b in bs], om)
    assert [r.passed for r in selfcheck.results().values()] == [True]


def test_unchecked_device_types_skip_the_check(monkeypatch):
    selfcheck.reset()
    monkeypatch.setattr(NS, "fused_mlp_forward", perturbed_forward())
    x, ws, bs, om = net()
    out = call(x, ws, bs, om)  # CPU is not checked outside tests: the (faulty) kernel runs
    assert selfcheck.results() == {}
    assert not torch.equal(out, reference.batched_sine_mlp(x, ws, bs, om, True))


# ---- the verdict's key ----

def test_verdict_is_per_tf32_setting_and_sm90_setting(cpu_checked):
    x, ws, bs, om = net()
    call(x, ws, bs, om)
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = not before
        call(x, ws, bs, om)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    cpu_checked.setenv(selfcheck.SM90_ENV, "0")
    call(x, ws, bs, om)
    keys = sorted(selfcheck.results(), key=str)
    assert len(keys) == 3 and {k[4] for k in keys} == {True, False} and {k[5] for k in keys} == {"", "0"}
    assert all(r.passed for r in selfcheck.results().values())


# ---- crash isolation: the check in a child process (a stand-in child injects the faults) ----

CHILD = Path(__file__).with_name("selfcheck_child.py")


@pytest.fixture
def isolated(cpu_checked):
    """CPU checks in a child process: selfcheck_child.py in the given mode."""
    cpu_checked.setattr(selfcheck, "ISOLATED_DEVICE_TYPES", frozenset({"cuda", "cpu"}))

    def use(mode: str) -> None:
        cpu_checked.setattr(selfcheck, "_child_command", lambda: [sys.executable, str(CHILD), mode])
    return use


def one_warning(record) -> str:
    msgs = [str(w.message) for w in record if "self-check" in str(w.message)]
    assert len(msgs) == 1, msgs
    assert "\n" not in msgs[0]
    return msgs[0]


def test_a_check_that_kills_its_process_leaves_the_reference_working(isolated):
    isolated("abort")
    x, ws, bs, om = net()
    with pytest.warns(RuntimeWarning) as record:
        out = call(x, ws, bs, om)
    msg = one_warning(record)
    assert re.search(r"self-check on cpu for precision='exact', torch.float32: the check's child "
                     r"process died \(killed by SIGABRT\) while running 'tiny crash'", msg), msg
    ref = reference.batched_sine_mlp(x, ws, bs, om, True)
    assert torch.equal(out, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once; later calls (and their backward) work
        out = call(x, ws, bs, om)
        out.sum().backward()
    assert torch.equal(out, ref) and ws[0].grad is not None
    (result,) = selfcheck.results().values()
    assert not result.passed and result.errors == {}


def test_a_check_that_hangs_is_killed_at_the_timeout(isolated, monkeypatch):
    isolated("hang")
    monkeypatch.setenv(selfcheck.TIMEOUT_ENV, "2")
    x, ws, bs, om = net()
    t0 = time.monotonic()
    with pytest.warns(RuntimeWarning) as record:
        out = call(x, ws, bs, om)
    assert time.monotonic() - t0 < 30
    msg = one_warning(record)
    assert ("timed out after 2 s (STRAINER_FAST_CUDA_SELFCHECK_TIMEOUT) while running "
            "'tiny hang'") in msg, msg
    assert torch.equal(out, reference.batched_sine_mlp(x, ws, bs, om, True))


def test_a_passing_check_in_a_child_enables_the_kernel(isolated):
    isolated("pass")
    result = fused_used_silently()
    assert {k.split(":")[0] for k in result.errors} == {"tiny ok", "tiny crash"}


def test_bad_timeout_is_a_clear_error(isolated, monkeypatch):
    isolated("pass")
    monkeypatch.setenv(selfcheck.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="must be a number of seconds"):
        call(*net())


# ---- precision="tf32" plumbing (the kernel side is in test_cuda.py) ----

def test_tf32_validation_messages():
    x, ws, bs = torch.rand(4, 2, dtype=torch.float64), [torch.rand(3, 2, dtype=torch.float64)], \
        [torch.rand(3, dtype=torch.float64)]
    assert ops.PRECISIONS["tf32"] == 2
    with pytest.raises(TypeError, match="precision='tf32' needs float32 tensors"):
        ops.sine_mlp(x, ws, bs, [30.0], precision="tf32")
    with pytest.raises(ValueError, match="only precision='exact'"):
        ops.sine_mlp(x.float(), [ws[0].float()], [bs[0].float()], [30.0], backend="reference",
                     precision="tf32")


def test_stated_cost_is_the_computed_one():
    """The docstring's FLOP figure is flops() of the problems (not a measured number)."""
    m = re.search(r"(\d+\.\d) GFLOP of fused GEMM work on an H100 \((\d+)\s+SMs\)",
                  selfcheck.__doc__)
    assert m and float(m[1]) == round(selfcheck.flops(int(m[2])) / 1e9, 1)
