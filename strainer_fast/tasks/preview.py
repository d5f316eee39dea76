"""Shaded PNG previews of occupancy volumes, so results can be seen without a 3D viewer.

Each view turns the volume (bool [R, R, R] indexed [x, y, z], y up) by a yaw about y and a
pitch about x, takes the depth of the first occupied voxel along each viewing ray (looking
along -z), and shades it with a Lambert light from the depth map's normals.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..report import pyplot

__all__ = ["VIEWS", "render", "save_preview"]

VIEWS = {"front": (0.0, 0.0), "three-quarter": (35.0, 20.0), "side": (90.0, 0.0)}
_LIGHT = np.array([-0.4, 0.5, 0.77])


def _turn(vol: np.ndarray, yaw: float, pitch: float) -> torch.Tensor:
    """Volume resampled (nearest) in view space, indexed [z, y, x] for grid_sample."""
    r = vol.shape[0]
    a, b = math.radians(yaw), math.radians(pitch)
    ry = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = torch.tensor([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rot = (ry @ rx).float()  # view -> object coordinates
    g = torch.linspace(-1, 1, r)
    z, y, x = torch.meshgrid(g, g, g, indexing="ij")
    obj = torch.stack([x, y, z], -1) @ rot.T  # object (x, y, z) of each view voxel
    # grid_sample reads input [N, C, D=x, H=y, W=z] at (W, H, D) = (z, y, x).
    src = torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32))[None, None]
    out = F.grid_sample(src, obj[..., [2, 1, 0]][None], mode="nearest", align_corners=True)
    return out[0, 0] > 0.5


def render(vol: np.ndarray, yaw: float = 0.0, pitch: float = 0.0) -> np.ndarray:
    """Shaded image [R, R] in [0, 1] (background 1) of a bool volume seen from +z after
    turning it by ``yaw`` / ``pitch`` degrees; rows go from +y (top) to -y."""
    view = _turn(vol, yaw, pitch).numpy()  # [z, y, x]
    r = view.shape[0]
    hit = view.any(0)
    first = r - 1 - np.argmax(view[::-1], axis=0)  # largest z index occupied (nearest)
    depth = np.where(hit, first * (2.0 / (r - 1)) - 1, -1.0)
    dzdy, dzdx = np.gradient(depth, 2.0 / (r - 1))
    normal = np.stack([-dzdx, -dzdy, np.ones_like(depth)], -1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    shade = 0.25 + 0.75 * np.clip(normal @ (_LIGHT / np.linalg.norm(_LIGHT)), 0, 1)
    shade *= 0.75 + 0.25 * (depth + 1) / 2  # nearer is brighter
    img = np.where(hit, shade, 1.0)
    return img[::-1]  # row 0 = +y


def save_preview(volumes: dict[str, np.ndarray], path: str | Path, title: str = "") -> None:
    """One row per labelled volume, one column per view in ``VIEWS``, saved as PNG."""
    plt = pyplot()
    rows = list(volumes)
    fig, axes = plt.subplots(len(rows), len(VIEWS), figsize=(2.6 * len(VIEWS), 2.6 * len(rows)),
                             squeeze=False)
    for i, label in enumerate(rows):
        for j, (view, (yaw, pitch)) in enumerate(VIEWS.items()):
            ax = axes[i][j]
            ax.imshow(render(volumes[label], yaw, pitch), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(view, fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
