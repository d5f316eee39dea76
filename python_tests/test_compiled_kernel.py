"""A broken build fails the suite: these tests are never skipped.

If the compiled extension is missing, the other op tests skip and everything else would pass on
the reference ops; here that is a failure that shows the import error.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from strainer_fast import _extension, ops, selfcheck
from oprecord import BACKWARD, FORWARD, OpRecorder


def test_compiled_extension_imports():
    assert _extension._C is not None, (
        f"strainer_fast._C did not import: {_extension.import_error()}")


def test_compiled_cpu_kernel_is_registered():
    assert _extension.compiled_kernel_available("cpu"), (
        f"no compiled CPU kernel registered (import error: {_extension.import_error()})")


def test_auto_backend_uses_the_compiled_cpu_kernel():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 2, generator=g)
    w = [torch.randn(20, 2, generator=g).requires_grad_(), torch.randn(3, 20, generator=g)]
    b = [torch.randn(20, generator=g), torch.randn(3, generator=g).requires_grad_()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with OpRecorder() as rec:
            out = ops.sine_mlp(x, w, b, 30.0, True)
            torch.autograd.grad(out.sum(), [w[0], b[1]])
    assert FORWARD in rec.names and BACKWARD in rec.names, rec.names
    assert "aten.sin.default" not in rec.names  # not the reference


def test_compiled_backward_op_passes_opcheck():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 33, 3, generator=g).requires_grad_()
    w = [torch.randn(2, 17, 3, generator=g).requires_grad_(),
         torch.randn(2, 4, 17, generator=g).requires_grad_()]
    b = [torch.randn(2, 17, generator=g).requires_grad_(),
         torch.randn(2, 4, generator=g).requires_grad_()]
    with OpRecorder() as rec:
        out = ops.batched_sine_mlp(x, w, b, 30.0, False, backend="cpu")
        torch.autograd.grad(out.sum(), [x, *w, *b])
    torch.library.opcheck(torch.ops.strainer_fast.fused_mlp_backward.default,
                          rec.args_of(BACKWARD))


def test_fallback_warnings_are_errors_under_pytest(monkeypatch):
    """pyproject.toml turns the reference fallbacks into errors (the filter this relies on)."""
    monkeypatch.setattr(_extension, "_KERNEL_DEVICES", frozenset())
    monkeypatch.setattr(ops, "_warned_fallback", set())
    ws, bs = [torch.randn(3, 2)], [torch.randn(3)]
    with pytest.raises(RuntimeWarning, match="no compiled kernel for cpu"):
        ops.sine_mlp(torch.rand(4, 2), ws, bs, [30.0])


def test_selfcheck_failure_is_an_error_under_pytest(monkeypatch):
    real = torch.ops.strainer_fast.fused_mlp_forward
    monkeypatch.setattr(torch.ops.strainer_fast, "fused_mlp_forward",
                        lambda *a: (real(*a)[0] * 1.01, *real(*a)[1:]))
    monkeypatch.setattr(selfcheck, "CHECKED_DEVICE_TYPES", frozenset({"cpu"}))
    full = selfcheck.configs
    monkeypatch.setattr(selfcheck, "configs", lambda sms=1: [
        dataclasses.replace(c, points=min(c.points, 31)) for c in full(sms)])
    monkeypatch.delenv(selfcheck.ENV, raising=False)
    selfcheck.reset()
    try:
        with pytest.raises(RuntimeWarning, match="failed its self-check"):
            ops.sine_mlp(torch.rand(4, 2), [torch.randn(3, 2)], [torch.randn(3)], [30.0])
    finally:
        selfcheck.reset()


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_hardware_fallbacks_stay_warnings(monkeypatch, precision):
    """tf32 on CPU (and bf16 on a CPU without bf16 instructions) warn once and run exact."""
    monkeypatch.setattr(ops, "_warned_fallback", set())
    monkeypatch.setattr(ops, "CPU_HAS_NATIVE_BF16", False)
    g = torch.Generator().manual_seed(2)
    x, ws, bs = torch.rand(9, 32, generator=g), [torch.randn(5, 32, generator=g)], [torch.zeros(5)]
    with warnings.catch_warnings(record=True) as record:  # pyproject's filters stay in force
        out = ops.sine_mlp(x, ws, bs, [30.0], True, precision=precision)
        again = ops.sine_mlp(x, ws, bs, [30.0], True, precision=precision)
    assert [str(r.message) for r in record if "runs in exact" in str(r.message)] != []
    assert len(record) == 1  # once
    exact = ops.sine_mlp(x, ws, bs, [30.0], True)
    assert torch.equal(out, exact) and torch.equal(again, exact)
