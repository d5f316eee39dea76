"""A numpy emulation of the CUDA kernels' tf32 numerics, for the sm90-vs-sm80 bounds of
test_cuda.py and the factor docs/cuda-numerics.md states (test_tf32_emulation.py).

Which GEMM runs where comes from the launcher's own dispatch rules (``_C.dispatch_plan``), and
each GEMM's operands are rounded as its kernel does (CUTLASS 4.2 headers): the sm80 kernels
convert fp32 to tf32 in registers with ``NumericConverter<tfloat32_t, float,
round_to_nearest>``, which is ``cvt.rn.tf32.f32`` (round to nearest even) when compiled for
sm_90a -- the code an H100 runs, also with STRAINER_FAST_CUDA_SM90=0 -- and
``round_half_ulp_truncate`` (ties away) for sm_80; the sm_90a (wgmma) kernels hand fp32 to
TMA and the tensor cores with no rounding step, modelled as truncation (the low 13 mantissa
bits dropped). Accumulation, bias, sin / cos and the epilogues are fp32; ATen layers (inputs
narrower than 16) are exact fp32 GEMMs. Errors are measured against float64 math on the same
fp32 inputs, as the GPU tests do: the output's max abs error, then each gradient's relative
L2 error (x, W_0.., b_0..).
"""

from __future__ import annotations

import numpy as np
import torch

from strainer_fast._extension import _C

H100_SMS = 132


def siren_net(signals, points, widths, shared, dtype=torch.float32, seed=0, omega=30.0):
    """SIREN-initialised stack on the CPU: x [N, in] or [S, N, in]; weights [S, out, in];
    biases [S, out] (test_cuda.make_net moves these to the GPU)."""
    g = torch.Generator().manual_seed(seed)
    shape = (points, widths[0]) if shared else (signals, points, widths[0])
    x = torch.rand(shape, generator=g, dtype=dtype) * 2 - 1
    weights, biases = [], []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        bound = 1.0 / fan_in if i == 0 else (6.0 / fan_in) ** 0.5 / omega
        weights.append((torch.rand(signals, fan_out, fan_in, generator=g, dtype=dtype) * 2 - 1)
                       * bound)
        biases.append((torch.rand(signals, fan_out, generator=g, dtype=dtype) * 2 - 1)
                      / fan_in**0.5)
    return x, weights, biases


def probe_for(shape, seed=1) -> torch.Tensor:
    """The fixed random linear loss's weights (test_cuda.run)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _tf32(a: np.ndarray, truncate: bool) -> np.ndarray:
    i = a.astype(np.float32).view(np.int32).astype(np.int64)
    if not truncate:
        i = i + (0xFFF + ((i >> 13) & 1))
    return (i & ~0x1FFF).astype(np.uint32).view(np.float32).astype(np.float64)


def gemm_modes(signals, points, widths, shared, sm90: bool) -> dict[tuple[str, int], str]:
    """{(gemm, layer): "fp32" | "rn" | "rz"} for gemm in fwd, dx, dw, dx0, under tf32."""
    modes = {}
    for backward, layer, name in _C.dispatch_plan(signals, points, list(widths), shared, True,
                                                  True, 2, 4, H100_SMS, sm90):
        site = name.split("/")[0]
        if not backward:
            gemm = "fwd"
        elif site.startswith("bwd.dw."):
            gemm = "dw"
        elif site.startswith(("bwd.gate.", "bwd.dx.")):
            gemm = "dx"
        elif site.startswith("bwd.dx0."):
            gemm = "dx0"
        else:
            continue  # elementwise kernels, the bias reduction
        mode = "fp32" if "/tf32" not in name else "rz" if ".sm90" in site else "rn"
        assert modes.setdefault((gemm, layer), mode) == mode, (gemm, layer, name)
    return modes


def _forward_backward(x, ws, bs, probe, omega, modes):
    """Output and gradients (x, W.., b..) of sum(out * probe), last layer linear; modes None:
    float64 throughout, else fp32 values with each GEMM's operands rounded per ``modes``."""
    f32 = (lambda a: a) if modes is None else (lambda a: a.astype(np.float32).astype(np.float64))

    def mm(a, b, gemm, layer):
        mode = "fp64" if modes is None else modes[(gemm, layer)]
        if mode in ("rn", "rz"):
            a, b = _tf32(a, mode == "rz"), _tf32(b, mode == "rz")
        return f32(a @ b)

    L = len(ws)
    scale = [omega if l < L - 1 else 1.0 for l in range(L)]
    wf = [f32(w * s) for w, s in zip(ws, scale)]
    bf = [f32(b * s) for b, s in zip(bs, scale)]
    hs, zs, h = [], [], x if x.ndim == 3 else x[None]
    for l in range(L):
        hs.append(h)
        z = f32(mm(h, wf[l].transpose(0, 2, 1), "fwd", l) + bf[l][:, None, :])
        zs.append(z)
        h = z if l == L - 1 else f32(np.sin(z))
    dz, gw, gb = probe, [None] * L, [None] * L
    for l in reversed(range(L)):
        hin = np.broadcast_to(hs[l], (ws[l].shape[0],) + hs[l].shape[1:])
        gw[l] = f32(mm(dz.transpose(0, 2, 1), hin, "dw", l) * scale[l])
        # db: the dW GEMM's ones column (rounded dz) or an exact reduction
        rounded = modes is not None and modes[("dw", l)] != "fp32"
        dz_db = _tf32(dz, modes[("dw", l)] == "rz") if rounded else dz
        gb[l] = f32(dz_db.sum(1) * scale[l])
        if l == 0:
            gx = mm(dz, wf[0], "dx0", 0)
            gx = f32(gx.sum(0)) if x.ndim == 2 else gx
        else:
            dz = f32(mm(dz, wf[l], "dx", l) * np.cos(zs[l - 1]))
    return h, [gx, *gw, *gb]


def emulated_errors(signals, points, widths, shared, sm90: bool, omega=30.0) -> list[float]:
    """[max abs error of the output, relative L2 error of each gradient] of the tf32 kernels
    with (sm90) or without the sm_90a kernels, on test_cuda.make_net's problem."""
    x, weights, biases = siren_net(signals, points, widths, shared)
    x = x.double().numpy()
    ws, bs = [w.double().numpy() for w in weights], [b.double().numpy() for b in biases]
    probe = probe_for((signals, points, widths[-1])).double().numpy()
    ref_out, ref_grads = _forward_backward(x, ws, bs, probe, omega, None)
    out, grads = _forward_backward(x, ws, bs, probe, omega,
                                   gemm_modes(signals, points, widths, shared, sm90))
    errs = [float(np.abs(out - ref_out).max())]
    errs += [float(np.linalg.norm(g - r) / max(np.linalg.norm(r), 1e-12))
             for g, r in zip(grads, ref_grads)]
    return errs


def sm90_over_sm80(signals, points, widths, shared) -> list[float]:
    """Expected error ratios (sm_90a kernels / sm80 kernels), entry by entry."""
    e90 = emulated_errors(signals, points, widths, shared, True)
    e80 = emulated_errors(signals, points, widths, shared, False)
    return [a / b for a, b in zip(e90, e80)]
