"""Loads the compiled extension and registers the fused ops' autograd and fake kernels."""

from __future__ import annotations

import torch

try:
    from . import _C  # noqa: F401  (importing registers torch.ops.strainer_fast.*)

    _IMPORT_ERROR: str | None = None
except ImportError as exc:  # a source checkout that was not built
    _C = None
    _IMPORT_ERROR = str(exc)

_FWD = "strainer_fast::fused_mlp_forward"
_BWD = "strainer_fast::fused_mlp_backward"


def _kernel_devices() -> frozenset[str]:
    if _C is None:
        return frozenset()
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    return frozenset(dev for dev, key in (("cpu", "CPU"), ("cuda", "CUDA")) if has(_FWD, key))


_KERNEL_DEVICES = _kernel_devices()  # fixed at import (and readable by torch.compile)


def compiled_kernel_available(device_type: str) -> bool:
    """True if a compiled fused kernel exists for ``device_type`` ("cpu" or "cuda")."""
    return device_type in _KERNEL_DEVICES


CPU_HAS_NATIVE_BF16 = bool(_C is not None and _C.cpu_has_native_bf16())


def import_error() -> str | None:
    """Why the compiled extension could not be imported (None when it was)."""
    return _IMPORT_ERROR


def _layout(x, weights, last_linear):
    if not weights or x.dim() not in (2, 3) or any(w.dim() != 3 for w in weights):
        raise ValueError("strainer_fast: fused_mlp_forward needs x [N, in] or [S, N, in] and a "
                         "non-empty list of weights [S, out, in]")
    signals, points = weights[0].shape[0], x.shape[-2]
    widths = [w.shape[1] for w in weights]
    sine = [not (last_linear and i == len(weights) - 1) for i in range(len(weights))]
    return signals, points, widths, sine


def _forward_fake(x, weights, biases, omegas, last_linear, save, precision):
    """out [S, N, out] and the saved tensors, whose layout depends on the device: on CUDA the
    sine layers' pre-activations z; elsewhere (CPU) the hidden activations, then the cosines."""
    signals, points, widths, sine = _layout(x, weights, last_linear)
    out = x.new_empty((signals, points, widths[-1]))
    if not save:
        return out, []
    sine_widths = [w for w, s in zip(widths, sine) if s]
    if x.device.type == "cuda":
        return out, [x.new_empty((signals, points, w)) for w in sine_widths]
    hidden = [x.new_empty((signals, points, w)) for w in widths[:-1]]
    return out, hidden + [x.new_empty((signals, points, w)) for w in sine_widths]


def _backward_fake(grad, x, weights, biases, saved, omegas, last_linear, need_x, precision):
    grad_x = x.new_empty(x.shape) if need_x else x.new_empty((0,))
    return grad_x, [w.new_empty(w.shape) for w in weights], [b.new_empty(b.shape) for b in biases]


def _setup_context(ctx, inputs, output):
    x, weights, biases, omegas, last_linear, save, precision = inputs
    _, saved = output
    if not save and ctx.needs_input_grad is not None and any(ctx.needs_input_grad[:3]):
        raise RuntimeError("strainer_fast: forward was called without save_for_backward")
    # The saved tensors are outputs only for backward: without these, autograd would fill a
    # zero gradient for each of them on every backward pass.
    ctx.mark_non_differentiable(*saved)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(x, *weights, *biases, *saved)
    ctx.layout = (len(weights), omegas, last_linear, precision)


def _backward(ctx, grad_out, _grad_saved):
    if torch.is_grad_enabled():
        raise RuntimeError(
            "strainer_fast: double backward (create_graph=True) through the fused sine-MLP ops "
            "is not supported; use backend='reference' for higher-order gradients"
        )
    n_layers, omegas, last_linear, precision = ctx.layout
    if grad_out is None:  # undefined output gradient (materialisation is off): no gradients
        return None, [None] * n_layers, [None] * n_layers, None, None, None, None
    tensors = ctx.saved_tensors
    x = tensors[0]
    weights = list(tensors[1 : 1 + n_layers])
    biases = list(tensors[1 + n_layers : 1 + 2 * n_layers])
    saved = list(tensors[1 + 2 * n_layers :])
    need_x = bool(ctx.needs_input_grad[0])
    grad_x, grad_w, grad_b = torch.ops.strainer_fast.fused_mlp_backward(
        grad_out, x, weights, biases, saved, omegas, last_linear, need_x, precision
    )
    return (grad_x if need_x else None), grad_w, grad_b, None, None, None, None


if _C is not None:
    torch.library.register_fake(_FWD)(_forward_fake)
    torch.library.register_fake(_BWD)(_backward_fake)
    torch.library.register_autograd(_FWD, _backward, setup_context=_setup_context)
