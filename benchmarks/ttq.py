"""Time-to-quality helpers shared by ``bench_time_to_quality.py`` and ``tune_weight_scale.py``:
one plain training loop for every method (full grid, sum of per-image MSE, Adam, optionally a
``strainer_fast.stability`` stabiliser), the per-step PSNR read from the training loss (no extra
forward), the library's best-iterate choice (``train.KeepBest``), drop statistics, and where a
curve crosses a target.

Values: targets are the pixels mapped to a ``strainer_fast.value_range`` range; every PSNR
is on [0, 1] pixels (``ValueRange.psnr`` of the training MSE), before clamping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import nn

from strainer_fast.data import coord_grid
from strainer_fast.fit import make_keeper
from strainer_fast.stability import drop_stats, make_stabilizer
from strainer_fast.value_range import DEFAULT_VALUE_RANGE, resolve

DROP_START = 100  # drops are counted from the weights after this many updates on


def fit_until(model: nn.Module, images: torch.Tensor, *, max_steps: int, lr: float = 1e-4,
              stop_psnr: float | None = None, stabilize: str = "off", keep: str = "best",
              drop_start: int = DROP_START, value_range: str = DEFAULT_VALUE_RANGE) -> dict:
    """Fits ``model`` (coords [N, 2] -> [K, N, C]) to images [K, H, W, C] in [0, 1].

    Step s (1-based) computes the loss of the weights after s - 1 updates, then updates.
    The targets are the pixels mapped to ``value_range`` (``strainer_fast.value_range``);
    every PSNR is the training MSE's on [0, 1] pixels, before clamping. ``stabilize``: a
    ``stability.STABILIZE`` mode, called as ``train.Stabilize`` does (horizon
    ``max_steps``); ``keep``: "best" keeps per image the weights of the lowest loss with the
    library's ``train.KeepBest`` (its per-step cost is in the wall time; the final weights
    compete), "last" the last iterate (any model). Stops after ``max_steps``
    or at the first step whose mean PSNR is >= ``stop_psnr`` (None: never). Returns
    ``psnr`` [step] (mean over the K images, dB), ``psnr_per_image`` [step][K], ``wall_s``
    [step] (cumulative wall seconds at the end of each step), ``cpu_s`` (process CPU
    seconds in all), ``steps``, ``returned_psnr`` [K] (the returned weights, full grid),
    ``returned_step`` [K] (their updates), ``best_psnr`` [K] (of the curve), and
    ``drops`` / ``drops_late`` (``stability.drop_stats`` of the per-image curves, drops
    > 1 dB, from index 0 / from the weights after ``drop_start`` updates) and
    ``value_range`` (its name).
    """
    k, h, w, _ = images.shape
    vr = resolve(value_range)
    coords, target = coord_grid(h, w), vr.to_target(images.float())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    stab = make_stabilizer(stabilize, model, opt, max_steps)
    keeper = make_keeper(keep)
    if keeper is not None:
        keeper.attach(model)
    per_image, wall = [], []
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(max_steps):
        opt.zero_grad(set_to_none=True)
        mse = ((model(coords) - target) ** 2).mean(dim=(1, 2))
        mse.sum().backward()
        stab.before_step(step + 1, mse.detach())
        if keeper is not None:
            keeper.offer(step, mse)
        opt.step()
        stab.after_step(step + 1, mse.detach())
        per_image.append(vr.psnr(mse.detach()).tolist())
        p = sum(per_image[-1]) / k
        wall.append(time.perf_counter() - t0)
        if stop_psnr is not None and p >= stop_psnr:
            break
        if not math.isfinite(p):
            raise RuntimeError(f"loss is not finite at step {len(per_image)}")
    cpu = time.process_time() - c0
    with torch.no_grad():
        if keeper is not None:
            keeper.offer(len(per_image), ((model(coords) - target) ** 2).mean(dim=(1, 2)))
            keeper.restore()
        returned = vr.psnr(((model(coords) - target) ** 2).mean(dim=(1, 2))).tolist()
    steps = len(per_image)
    return dict(psnr=[sum(v) / k for v in per_image], psnr_per_image=per_image, wall_s=wall,
                cpu_s=cpu, steps=steps, returned_psnr=returned,
                returned_step=([steps] * k if keeper is None else keeper.kept_step.tolist()),
                best_psnr=[max(c) for c in zip(*per_image)],
                drops=drop_stats(per_image), drops_late=drop_stats(per_image, start=drop_start),
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
