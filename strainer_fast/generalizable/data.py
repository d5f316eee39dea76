"""The generalizable INRs' training set (69 MNI axial slices, ``datasets/mri_slices``) and its
augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["slices_path", "load_slices", "augment"]


def slices_path() -> Path:
    """``slices.npz`` of the embedded training slices (see the README next to it)."""
    return Path(__file__).resolve().parents[1] / "datasets" / "mri_slices" / "slices.npz"


def load_slices(size: int = 64) -> tuple[torch.Tensor, list[int]]:
    """The 69 training slices as ([69, size, size, 1] in [0, 1], z voxel indices); resized
    from 128 px by area averaging (antialiased bilinear when enlarging)."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    with np.load(slices_path(), allow_pickle=False) as data:
        images = torch.from_numpy(data["images"].astype(np.float32) / 255.0)[:, None]
        z = [int(v) for v in data["z"]]
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                               align_corners=False).clamp(0, 1)
    return images.permute(0, 2, 3, 1).contiguous(), z


def augment(images: torch.Tensor, generator: torch.Generator, max_shift: int) -> torch.Tensor:
    """Random left-right flips (p = 0.5) and integer shifts of up to ``max_shift`` px in each
    direction (zero fill: the slices' background is 0) of images [B, H, W, C], per image."""
    b, h, w, _ = images.shape
    flip = torch.rand(b, generator=generator) < 0.5
    out = torch.where(flip.view(b, 1, 1, 1).to(images.device), images.flip(2), images)
    if max_shift <= 0:
        return out
    shifts = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=generator).tolist()
    padded = F.pad(out.permute(0, 3, 1, 2), [max_shift] * 4)
    crops = [padded[i, :, max_shift - dy:max_shift - dy + h, max_shift - dx:max_shift - dx + w]
             for i, (dy, dx) in enumerate(shifts)]
    return torch.stack(crops).permute(0, 2, 3, 1).contiguous()
