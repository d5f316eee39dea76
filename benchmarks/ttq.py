"""Time-to-quality helpers shared by ``bench_time_to_quality.py`` and ``tune_weight_scale.py``:
one plain training loop for every method (full grid, sum of per-image MSE, Adam), the per-step
PSNR read from the training loss (no extra forward), and where a curve crosses a target.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import nn

from strainer_fast.data import coord_grid
from strainer_fast.value_range import DEFAULT_VALUE_RANGE, resolve


def fit_until(model: nn.Module, images: torch.Tensor, *, max_steps: int, lr: float = 1e-4,
              stop_psnr: float | None = None, value_range: str = DEFAULT_VALUE_RANGE) -> dict:
    """Fits ``model`` (coords [N, 2] -> [K, N, C]) to images [K, H, W, C] in [0, 1].

    Step s (1-based) computes the loss of the weights after s - 1 updates, then updates.
    The targets are the pixels mapped to ``value_range`` (``strainer_fast.value_range``).
    Returns ``psnr`` [step] (mean over the K images of the training MSE's PSNR on [0, 1]
    pixels, before clamping, dB), ``wall_s`` [step] (cumulative wall seconds at the end of
    each step), ``cpu_s`` (process CPU seconds in all), ``steps`` and ``value_range``.
    Stops after ``max_steps`` or at the first step whose PSNR is >= ``stop_psnr``.
    """
    k, h, w, _ = images.shape
    vr = resolve(value_range)
    coords, target = coord_grid(h, w), vr.to_target(images.float())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    psnr, wall = [], []
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(max_steps):
        opt.zero_grad(set_to_none=True)
        mse = ((model(coords) - target) ** 2).mean(dim=(1, 2))
        mse.sum().backward()
        opt.step()
        p = float(vr.psnr(mse.detach()).mean())
        psnr.append(p)
        wall.append(time.perf_counter() - t0)
        if stop_psnr is not None and p >= stop_psnr:
            break
        if not math.isfinite(p):
            raise RuntimeError(f"loss is not finite at step {len(psnr)}")
    return dict(psnr=psnr, wall_s=wall, cpu_s=time.process_time() - c0, steps=len(psnr),
                value_range=vr.name)


def first_reach(curve: dict, target: float) -> dict | None:
    """{step, wall_s} of the first step whose PSNR >= ``target`` (None if never)."""
    for i, p in enumerate(curve["psnr"]):
        if p >= target:
            return dict(step=i + 1, wall_s=curve["wall_s"][i])
    return None


def scaled(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], alpha: float
           ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight * alpha, bias) of each layer (to scale a pretrained encoder)."""
    return [(w * alpha, b) for w, b in layers]
