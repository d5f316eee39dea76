"""Plain-PyTorch reference of the sine-MLP ops: the specification the fused kernels match."""

from __future__ import annotations

import torch


def sine_mlp(x, weights, biases, omegas, last_linear: bool) -> torch.Tensor:
    """x: [N, in]; weights[l]: [out, in]; biases[l]: [out] -> [N, out]."""
    h = x
    last = len(weights) - 1
    for i, (w, b, omega) in enumerate(zip(weights, biases, omegas)):
        z = torch.addmm(b, h, w.t())
        h = z if (last_linear and i == last) else torch.sin(omega * z)
    return h


def batched_sine_mlp(x, weights, biases, omegas, last_linear: bool) -> torch.Tensor:
    """x: [N, in] or [S, N, in]; weights[l]: [S, out, in]; biases[l]: [S, out] -> [S, N, out]."""
    h = x
    last = len(weights) - 1
    for i, (w, b, omega) in enumerate(zip(weights, biases, omegas)):
        z = torch.matmul(h, w.transpose(-1, -2)) + b.unsqueeze(-2)
        h = z if (last_linear and i == last) else torch.sin(omega * z)
    return h
