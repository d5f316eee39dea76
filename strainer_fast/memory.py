"""Up-front memory estimates: a configuration that cannot fit is refused with a clear
error before any model, output folder or file is made (not by the OOM killer).

The estimate of a run's peak bytes is conservative, not exact: parameters with their
gradients and two Adam moments, the signal with its full-size copies (training target,
render, reconstruction), the float64 SSIM maps of image metrics, plus the larger of one
training step's saved activations (points x width x layers x ``SAVED`` float32 tensors per
signal) and one chunked evaluation. Checked against measured peaks by
``benchmarks/bench_memory.py`` (README, "Signals larger than memory").
"""

from __future__ import annotations

from pathlib import Path

import torch

from .train.objectives import EVAL_CHUNK

__all__ = ["WontFit", "available_bytes", "mlp_params", "run_bytes", "check_fits",
           "largest_points", "SAVED"]

# float32 [S, points, width] tensors per layer alive at a step's peak: measured 1.7 with the
# fused CPU op and 2.0 with the plain-PyTorch reference (ru_maxrss, width 64-256, 1-3 signals)
SAVED = 3
_HEADROOM = 0.8  # use at most this share of the available memory


class WontFit(ValueError):
    """The requested configuration needs more memory than the device has available."""


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory of ``device`` in bytes: ``torch.cuda.mem_get_info`` on CUDA, else
    /proc/meminfo MemAvailable; None where it cannot be read (then nothing is checked)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def mlp_params(in_features: int, width: int, layers: int, out_features: int) -> int:
    """Parameters of one sine MLP (``layers`` layers in all, the last one linear)."""
    sizes = [in_features] + [width] * (layers - 1) + [out_features]
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


def run_bytes(*, signals: int, grid: int, channels: int, points: int | None, width: int,
              layers: int, in_features: int = 2, chunk: int = EVAL_CHUNK,
              metrics: bool = True) -> int:
    """Estimated peak bytes of fitting / pretraining ``signals`` signals of ``grid`` points
    (pixels or voxels, ``in_features``-D coordinates) and ``channels`` values each, with
    ``points`` per step (None: the full grid) on ``signals`` networks of ``width`` x
    ``layers`` (float32, Adam).
    ``metrics``: image PSNR / SSIM on the full grid (skimage SSIM keeps ~16 float64 maps of
    one signal and both images of all signals in float64)."""
    batch = grid if points is None else min(points, grid)
    weights = 4 * signals * mlp_params(in_features, width, layers, channels) * 4  # w, g, m, v
    # the signal, its training target, render and metrics copies; coordinates and a copy
    signal = 4 * grid * (signals * channels * 4 + 2 * in_features)
    step = 4 * signals * batch * (width * layers * SAVED + in_features + 2 * channels)
    evaluation = 4 * signals * min(chunk, grid) * width * 3
    ssim = 8 * grid * channels * (2 * signals + 16) if metrics else 0
    return weights + signal + ssim + max(step, evaluation)


def largest_points(budget: int, **run: int) -> int | None:
    """The largest power of two of points per step whose ``run_bytes`` fits ``budget``
    (None: not even 1024 do, i.e. the signal itself is too large)."""
    best, n = None, 1024
    while n < run["grid"] and run_bytes(**dict(run, points=n)) <= budget:
        best, n = n, n * 2
    return best


def check_fits(device: torch.device | str, what: str, *, flag: str = "--points",
               **run: int) -> int:
    """Raises ``WontFit`` when ``run_bytes(**run)`` exceeds 80% of the device's available
    memory; the message names the option to use (``flag``: the points option's
    command-line name, also given as the API keyword ``points=``). Returns the estimate."""
    need = run_bytes(**run)
    avail = available_bytes(device)
    if avail is None or need <= _HEADROOM * avail:
        return need
    gib = 1024 ** 3
    where = "GPU memory" if torch.device(device).type == "cuda" else "RAM (MemAvailable)"
    head = (f"{what} needs about {need / gib:.1f} GiB at its peak but only "
            f"{avail / gib:.1f} GiB of {where} are available")
    fit = largest_points(int(_HEADROOM * avail), **{k: v for k, v in run.items()
                                                    if k != "points"})
    small = "the signal alone (its copies and full-grid metrics) is too large for this " \
            "machine: use a smaller --size / --res"
    if run.get("points") is None:
        batches = f"train on random point minibatches, {flag} N (points=N in the API)"
        if fit is None:
            raise WontFit(f"{head}: {batches}; but even then {small}")
        raise WontFit(f"{head}: {batches}, e.g. {flag} {min(fit, 65536)} (at most {fit} fit)")
    if fit is None:
        raise WontFit(f"{head}; {small}")
    raise WontFit(f"{head}: use a smaller {flag} (at most {fit} fit)")
