"""Training objectives: per-signal losses [S] of a model at one step, and the chunked
full-grid render that evaluates a model whose training saw only point batches."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..data import coord_grid
from ..value_range import DEFAULT_VALUE_RANGE, ValueRange, resolve

__all__ = ["image_mse", "batch_mse", "image_batches", "image_points", "image_error_points",
           "render", "EVAL_CHUNK", "SAMPLING", "ERROR_REFRESH_EVERY", "ERROR_FLOOR"]

EVAL_CHUNK = 1 << 16  # points per no-grad forward of ``render`` (bounds evaluation memory)
SAMPLING = ("uniform", "error")  # how the ``points`` pixels of a step are drawn
ERROR_REFRESH_EVERY = 10  # steps between full-grid refreshes of sampling="error"'s error map
ERROR_FLOOR = 0.1  # share of sampling="error"'s draw probability spread uniformly over pixels


def image_mse(model: nn.Module, images: torch.Tensor, *,
              operator: Callable[[torch.Tensor], torch.Tensor] | None = None,
              render_size: tuple[int, int] | None = None, points: int | None = None,
              generator: torch.Generator | None = None,
              value_range: str | ValueRange = DEFAULT_VALUE_RANGE,
              sampling: str = "uniform") -> Callable[[int], torch.Tensor]:
    """MSE of each signal: images [S, H, W, C] in [0, 1], mapped to ``value_range``
    (``value_range.ValueRange``), against the model's output. ``points`` None: the full
    grid every step. ``points`` N: N pixels per step from ``generator``, so a step's memory
    is bounded by N, not by H * W; ``sampling`` (one of ``SAMPLING``) "uniform": drawn
    uniformly (with replacement, shared by all signals; ``image_points``), "error": per
    signal, favouring the pixels of large error (``image_error_points``). Inverse problems
    (full grid only): the model is rendered on a ``render_size`` (H', W') grid and
    ``operator`` maps the render [S, H'*W', C] to the images' grid."""
    if sampling not in SAMPLING:
        raise ValueError(f"sampling must be one of {SAMPLING}, got {sampling!r}")
    if sampling == "error" and points is None:
        raise ValueError("sampling='error' draws point batches: it needs points (N pixels "
                         "per step)")
    if operator is None and render_size in (None, tuple(images.shape[1:3])):
        if sampling == "error":
            return batch_mse(model, image_error_points(model, images, points, generator,
                                                       value_range))
        return batch_mse(model, image_batches(images, points, generator, value_range))
    if points is not None:
        raise ValueError("point minibatches (points) need the full grid of an operator's "
                         "render; use points=None for inverse problems")
    coords = coord_grid(*(render_size or images.shape[1:3])).to(images.device)
    target = resolve(value_range).to_target(images)
    forward = operator or (lambda out: out)

    def objective(step: int) -> torch.Tensor:
        return ((forward(model(coords)) - target) ** 2).mean(dim=(1, 2))

    return objective


def image_batches(images: torch.Tensor, points: int | None, generator: torch.Generator | None,
                  value_range: str | ValueRange = DEFAULT_VALUE_RANGE
                  ) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """(coords, target in ``value_range``) of images [S, H, W, C] in [0, 1] for each step:
    the full grid (``coord_grid``, ``ValueRange.to_target``; made once) when ``points`` is
    None, else a fresh batch of ``points`` pixels from ``generator`` (``image_points``)."""
    if points is not None:
        return image_points(images, points, generator, value_range)
    grid = (coord_grid(*images.shape[1:3]).to(images.device),
            resolve(value_range).to_target(images))

    def full(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return grid

    return full


def image_points(images: torch.Tensor, points: int, generator: torch.Generator | None,
                 value_range: str | ValueRange = DEFAULT_VALUE_RANGE
                 ) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """Point batches of images [S, H, W, C] in [0, 1] for ``batch_mse``: each call draws
    ``points`` pixel indices from ``generator`` (CPU) and returns (coords [N, 2] equal to
    the ``coord_grid`` rows of those pixels, target [S, N, C] in ``value_range``); nothing of
    full-grid size is allocated."""
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    s, h, w, c = images.shape
    flat, vr = images.reshape(s, h * w, c), resolve(value_range)
    axes = [torch.linspace(-1, 1, n).to(images.device) for n in (h, w)]  # as coord_grid

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, h * w, (points,), generator=generator).to(images.device)
        coords = torch.stack([axes[0][idx // w], axes[1][idx % w]], 1)
        return coords, vr.encode(flat[:, idx])

    return batches


def image_error_points(model: nn.Module, images: torch.Tensor, points: int,
                       generator: torch.Generator | None,
                       value_range: str | ValueRange = DEFAULT_VALUE_RANGE, *,
                       refresh_every: int = ERROR_REFRESH_EVERY, floor: float = ERROR_FLOOR
                       ) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """Error-guided point batches of images [S, H, W, C] in [0, 1] for ``batch_mse``.

    Signal s draws its ``points`` pixels (with replacement) with probability
    ``(1 - floor) * e_s / sum(e_s) + floor / (H * W)``: e [S, H * W] is the squared error of
    ``model``'s full-grid render (``render``, no grad; mean over channels), kept on the
    device and refreshed at every step that is a multiple of ``refresh_every``, at the first
    call and after a roll-back to an earlier step (so a run resumed at a step that is not a
    multiple of ``refresh_every`` draws from a newer map than the uninterrupted run); the
    uniform ``floor`` lets every pixel be drawn. The uniforms come from ``generator`` (CPU, as in ``image_points``) and are mapped
    through each signal's CDF on the device (``torch.searchsorted``): no host sync. The
    refresh runs inside the objective, so its cost counts in the training wall time; it
    keeps one float64 map [S, H * W] on the device. Returns (coords [S, N, 2], the
    ``coord_grid`` rows of the drawn pixels; target [S, N, C] in ``value_range``).
    """
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    if refresh_every < 1:
        raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")
    if not 0 < floor <= 1:
        raise ValueError(f"floor must be in (0, 1], got {floor}")
    s, h, w, c = images.shape
    flat, vr = images.reshape(s, h * w, c), resolve(value_range)
    grid = coord_grid(h, w).to(images.device)
    kept: dict = {"cdf": None, "step": -1}  # the CDF [S, H * W] (float64) and its step

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if kept["cdf"] is None or step % refresh_every == 0 or step < kept["step"]:
            kept["cdf"] = None  # free the old map before the render
            err = ((render(model, grid) - vr.encode(flat)) ** 2).mean(-1).double()
            err.nan_to_num_(nan=0.0, posinf=0.0)  # a diverged step: the floor only
            err.div_(err.sum(1, keepdim=True).clamp_min(torch.finfo(err.dtype).tiny))
            kept["cdf"] = err.mul_(1 - floor).add_(floor / (h * w)).cumsum_(1)
            kept["step"] = step
        cdf = kept["cdf"]
        u = torch.rand(s, points, generator=generator, dtype=torch.float64).to(images.device)
        idx = torch.searchsorted(cdf, u * cdf[:, -1:]).clamp_max(h * w - 1)  # [S, N]
        return grid[idx], vr.encode(flat.gather(1, idx[..., None].expand(-1, -1, c)))

    return batches


def batch_mse(model: nn.Module, batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]]
              ) -> Callable[[int], torch.Tensor]:
    """MSE of each signal on ``batches(step)`` = (coords [N, in] or [S, N, in], target
    [S, N, C])."""

    def objective(step: int) -> torch.Tensor:
        coords, target = batches(step)
        return ((model(coords) - target) ** 2).mean(dim=(1, 2))

    return objective


def render(model: nn.Module, coords: torch.Tensor, chunk: int = EVAL_CHUNK) -> torch.Tensor:
    """The model's output [S, N, C] at coords [N, in], without gradients, ``chunk`` points
    per forward: memory beyond the output is bounded by ``chunk``, not by N."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    with torch.no_grad():
        if coords.shape[0] <= chunk:
            return model(coords)
        first = model(coords[:chunk])
        out = first.new_empty(first.shape[0], coords.shape[0], first.shape[2])
        out[:, :chunk] = first
        for start in range(chunk, coords.shape[0], chunk):
            out[:, start:start + chunk] = model(coords[start:start + chunk])
    return out
