"""Image quality metrics on images [H, W, C] (or batches [S, H, W, C]) in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

__all__ = ["psnr", "ssim"]


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB with data range 1: shape [] for one image, [S] for a batch [S, H, W, C].

    Identical images give +inf.
    """
    if pred.shape != target.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    dims = tuple(range(pred.dim() - 3, pred.dim()))
    mse = ((pred.detach().double() - target.detach().double()) ** 2).mean(dim=dims)
    return (-10.0 * torch.log10(mse)).float()


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM (skimage, Gaussian-free 7x7 window, data range 1): [] or [S] like ``psnr``."""
    if pred.shape != target.shape:
        raise ValueError(f"ssim: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.dim() == 3:
        return ssim(pred[None], target[None])[0]
    a = pred.detach().cpu().double().numpy()
    b = target.detach().cpu().double().numpy()
    side = min(a.shape[1], a.shape[2])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"ssim needs images of at least 3x3 pixels, got {a.shape[1:3]}")
    vals = [structural_similarity(x, y, data_range=1.0, channel_axis=-1, win_size=win)
            for x, y in zip(a, b)]
    return torch.tensor(np.array(vals), dtype=torch.float32)
