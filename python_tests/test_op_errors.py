"""Bad input to the ops raises clear errors, from Python and from the compiled op itself."""

import math
import warnings

import pytest
import torch

from strainer_fast import ops
from strainer_fast import _extension
from conftest import requires_cpu_kernel


def layers(widths, signals=None, dtype=torch.float32):
    lead = () if signals is None else (signals,)
    ws = [torch.randn(*lead, o, i, dtype=dtype) * 0.1 for i, o in zip(widths[:-1], widths[1:])]
    bs = [torch.zeros(*lead, o, dtype=dtype) for o in widths[1:]]
    return ws, bs


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: (torch.rand(4), *layers([2, 3]), [30.0, 30.0][:1]), ValueError, r"x must be \[N, in\]"),
        (lambda: (torch.rand(4, 3), *layers([2, 3]), [30.0]), ValueError, "expects 2 inputs but receives 3"),
        (lambda: (torch.rand(4, 2), *layers([2, 3, 1]), [30.0]), ValueError, "got 1 omegas for 2 layers"),
        (lambda: (torch.rand(4, 2), [], [], []), ValueError, "layer list is empty"),
        (lambda: (torch.rand(4, 2), *layers([2, 3]), [math.nan]), ValueError, "not finite"),
        (lambda: (torch.rand(4, 2), *layers([2, 3]), [math.inf]), ValueError, "not finite"),
        (lambda: (torch.rand(4, 2).double(), *layers([2, 3]), [30.0]), TypeError, "mixed dtypes"),
        (lambda: (torch.rand(4, 2).half(), *layers([2, 3]), [30.0]), TypeError, "float32 or float64"),
        (lambda: (torch.rand(4, 2), [torch.rand(3, 2)], [torch.rand(4)], [30.0]), ValueError, "bias has 4 entries for 3 outputs"),
        (lambda: (torch.rand(4, 2), [torch.rand(3, 2)], [], [30.0]), ValueError, "1 weights but 0 biases"),
        (lambda: (torch.rand(4, 2), [torch.rand(1, 3, 2)], [torch.rand(1, 3)], [30.0]), ValueError, r"must be \[out, in\]"),
        (lambda: (torch.rand(4, 2), [torch.rand(0, 2)], [torch.rand(0)], [30.0]), ValueError, "zero outputs"),
    ],
)
def test_sine_mlp_bad_input(make, exc, match):
    x, ws, bs, om = make()
    for backend in ("auto", "reference"):
        with pytest.raises(exc, match=match):
            ops.sine_mlp(x, ws, bs, om, backend=backend)


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: (torch.rand(3, 4, 2), *layers([2, 3], 2), [30.0]), ValueError, "x holds 3 signals but the weights hold 2"),
        (lambda: (torch.rand(1, 3, 4, 2), *layers([2, 3], 2), [30.0]), ValueError, r"\[N, in\] or \[S, N, in\]"),
        (lambda: (torch.rand(4, 2), [torch.rand(2, 3, 2), torch.rand(3, 1, 3)], [torch.rand(2, 3), torch.rand(3, 1)], [1.0, 1.0]), ValueError, "expected 2"),
        (lambda: (torch.rand(4, 2), *layers([2, 3]), [30.0]), ValueError, r"\[S, out, in\]"),
        (lambda: (torch.rand(4, 2), [torch.rand(0, 3, 2)], [torch.rand(0, 3)], [1.0]), ValueError, "zero signals"),
    ],
)
def test_batched_bad_input(make, exc, match):
    x, ws, bs, om = make()
    for backend in ("auto", "reference"):
        with pytest.raises(exc, match=match):
            ops.batched_sine_mlp(x, ws, bs, om, backend=backend)


def test_bad_backend_and_precision():
    ws, bs = layers([2, 3])
    x = torch.rand(4, 2)
    with pytest.raises(ValueError, match="backend must be one of"):
        ops.sine_mlp(x, ws, bs, [30.0], backend="gpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        ops.sine_mlp(x, ws, bs, [30.0], precision="fp8")
    with pytest.raises(ValueError, match="tensors are on cpu"):
        ops.sine_mlp(x, ws, bs, [30.0], backend="cuda")
    with pytest.raises(ValueError, match="only precision='exact'"):
        ops.sine_mlp(x, ws, bs, [30.0], backend="reference", precision="bf16")


def test_auto_falls_back_to_reference_with_one_warning(monkeypatch):
    monkeypatch.setattr(_extension, "_KERNEL_DEVICES", frozenset())
    monkeypatch.setattr(ops, "_warned_fallback", set())
    ws, bs = layers([2, 5, 1])
    x = torch.rand(6, 2)
    with pytest.warns(RuntimeWarning, match="no compiled kernel for cpu"):
        out = ops.sine_mlp(x, ws, bs, [30.0, 30.0], True)
    torch.testing.assert_close(out, ops.sine_mlp(x, ws, bs, [30.0, 30.0], True, backend="reference"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ops.sine_mlp(x, ws, bs, [30.0, 30.0], True)  # warned once only
    with pytest.raises(RuntimeError, match="built without a compiled cpu kernel"):
        ops.sine_mlp(x, ws, bs, [30.0, 30.0], True, backend="cpu")


@requires_cpu_kernel
@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.rand(4, 2), [torch.rand(1, 3, 3)], [torch.rand(1, 3)], [1.0]), "expects 3 inputs but receives 2"),
        ((torch.rand(4, 2), [], [], []), "layer list is empty"),
        ((torch.rand(4, 2), [torch.rand(1, 3, 2)], [torch.rand(1, 3)], [math.nan]), "not finite"),
        ((torch.rand(4, 2), [torch.rand(1, 3, 2)], [torch.rand(1, 3)], [1.0, 2.0]), "omegas"),
        ((torch.rand(4, 2), [torch.rand(1, 3, 2).double()], [torch.rand(1, 3)], [1.0]), "mixed dtypes"),
        ((torch.rand(4, 2).int(), [torch.rand(1, 3, 2)], [torch.rand(1, 3)], [1.0]), "float32 or float64"),
        ((torch.rand(2, 4, 2), [torch.rand(3, 3, 2)], [torch.rand(3, 3)], [1.0]), "x has 2 signals"),
        ((torch.rand(4, 2), [torch.rand(1, 3, 2)], [torch.rand(1, 4)], [1.0]), "biases\\[0\\] has 4 entries"),
    ],
)
def test_compiled_op_validates_arguments(args, match):
    with pytest.raises(RuntimeError, match=match):
        torch.ops.strainer_fast.fused_mlp_forward(*args, True, False, 0)


@requires_cpu_kernel
def test_compiled_backward_validates_saved_tensors():
    x, w, b = torch.rand(4, 2), [torch.rand(1, 3, 2), torch.rand(1, 1, 3)], [torch.rand(1, 3), torch.rand(1, 1)]
    bwd = torch.ops.strainer_fast.fused_mlp_backward
    # CPU saved layout: hidden activations (L - 1), then the sine layers' cosines.
    with pytest.raises(RuntimeError, match=r"grad_out of layer 1 must be \[1, 4, 1\]"):
        bwd(torch.rand(1, 5, 1), x, w, b, [torch.rand(1, 4, 3), torch.rand(1, 4, 3)], [1.0, 1.0], True, False, 0)
    with pytest.raises(RuntimeError, match="backward got 1 saved tensors"):
        bwd(torch.rand(1, 4, 1), x, w, b, [torch.rand(1, 4, 3)], [1.0, 1.0], True, False, 0)
    with pytest.raises(RuntimeError, match="hidden of layer 0 must be"):
        bwd(torch.rand(1, 4, 1), x, w, b, [torch.rand(1, 4, 2), torch.rand(1, 4, 3)], [1.0, 1.0], True, False, 0)
    with pytest.raises(RuntimeError, match="cosine of layer 0 must be"):
        bwd(torch.rand(1, 4, 1), x, w, b, [torch.rand(1, 4, 3), torch.rand(1, 4, 3).double()], [1.0, 1.0], True,
            False, 0)
    with pytest.raises(RuntimeError, match="unknown precision code 3"):
        bwd(torch.rand(1, 4, 1), x, w, b, [torch.rand(1, 4, 3), torch.rand(1, 4, 3)], [1.0, 1.0], True, False, 3)


@requires_cpu_kernel
def test_tf32_code_runs_exact_on_cpu():
    """Precision code 2 (tf32) is accepted by the raw CPU op and computes the exact path."""
    x, w, b = torch.rand(6, 2), [torch.rand(2, 5, 2), torch.rand(2, 3, 5)], [torch.rand(2, 5), torch.rand(2, 3)]
    fwd = torch.ops.strainer_fast.fused_mlp_forward
    out2, saved2 = fwd(x, w, b, [30.0, 30.0], True, True, 2)
    out0, saved0 = fwd(x, w, b, [30.0, 30.0], True, True, 0)
    assert torch.equal(out2, out0) and all(torch.equal(a, c) for a, c in zip(saved2, saved0))
    with pytest.raises(RuntimeError, match="tf32' needs float32"):
        fwd(x.double(), [t.double() for t in w], [t.double() for t in b], [30.0, 30.0], True, False, 2)
