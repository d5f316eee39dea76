"""Training objectives: per-signal losses [S] of a model at one step."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..data import coord_grid, to_target

__all__ = ["image_mse", "batch_mse"]


def image_mse(model: nn.Module, images: torch.Tensor, *,
              operator: Callable[[torch.Tensor], torch.Tensor] | None = None,
              render_size: tuple[int, int] | None = None) -> Callable[[int], torch.Tensor]:
    """Full-grid MSE of each signal: images [S, H, W, C] in [0, 1] against the model's
    output on [-1, 1]. Inverse problems: the model is rendered on a ``render_size``
    (H', W') grid and ``operator`` maps the render [S, H'*W', C] to the images' grid."""
    coords = coord_grid(*(render_size or images.shape[1:3])).to(images.device)
    target = to_target(images)
    forward = operator or (lambda out: out)

    def objective(step: int) -> torch.Tensor:
        return ((forward(model(coords)) - target) ** 2).mean(dim=(1, 2))

    return objective


def batch_mse(model: nn.Module, batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]]
              ) -> Callable[[int], torch.Tensor]:
    """MSE of each signal on ``batches(step)`` = (coords [N, in], target [S, N, C])."""

    def objective(step: int) -> torch.Tensor:
        coords, target = batches(step)
        return ((model(coords) - target) ** 2).mean(dim=(1, 2))

    return objective
