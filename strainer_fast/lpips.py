"""LPIPS (Zhang et al., CVPR 2018; AlexNet variant, v0.1) from weight files already on disk.

Nothing is downloaded. Two files are looked up in ``$STRAINER_FAST_LPIPS_DIR``, else in
torch's hub cache (``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``):

- ``alexnet-owt-7be5be79.pth``: torchvision's ImageNet AlexNet (keys ``features.{0,3,6,8,10}``);
- ``alex.pth``: the LPIPS linear heads of the ``lpips`` package (``weights/v0.1/alex.pth``,
  keys ``lin{0..4}.model.1.weight``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["BACKBONE_FILE", "HEADS_FILE", "lpips", "lpips_weights_dir"]

BACKBONE_FILE = "alexnet-owt-7be5be79.pth"
HEADS_FILE = "alex.pth"
# (state-dict index, stride, padding, max-pool before the conv) of AlexNet's five convs.
_CONVS = ((0, 4, 2, False), (3, 1, 2, True), (6, 1, 1, True), (8, 1, 1, False), (10, 1, 1, False))
_CHANNELS = (64, 192, 384, 256, 256)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_MIN_SIDE = 32


def lpips_weights_dir() -> Path:
    """The folder searched for the two weight files."""
    if os.environ.get("STRAINER_FAST_LPIPS_DIR"):
        return Path(os.environ["STRAINER_FAST_LPIPS_DIR"])
    torch_home = os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")
    return Path(torch_home) / "hub" / "checkpoints"


def _load(folder: Path) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[torch.Tensor]]:
    missing = [n for n in (BACKBONE_FILE, HEADS_FILE) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"LPIPS needs {', '.join(missing)} in {folder} (set STRAINER_FAST_LPIPS_DIR); "
            "nothing is downloaded")
    backbone = torch.load(folder / BACKBONE_FILE, map_location="cpu", weights_only=True)
    heads = torch.load(folder / HEADS_FILE, map_location="cpu", weights_only=True)
    try:
        convs = [(backbone[f"features.{i}.weight"], backbone[f"features.{i}.bias"])
                 for i, *_ in _CONVS]
        lins = [heads[f"lin{k}.model.1.weight"] for k in range(len(_CONVS))]
    except KeyError as e:
        raise ValueError(f"LPIPS weight files in {folder} lack the key {e}") from None
    for c, (w, _), lin in zip(_CHANNELS, convs, lins):
        if w.shape[0] != c or tuple(lin.shape) != (1, c, 1, 1):
            raise ValueError(f"LPIPS weight files in {folder} do not hold AlexNet-LPIPS weights")
    return convs, lins


def lpips(pred: torch.Tensor, target: torch.Tensor, weights_dir: str | Path | None = None
          ) -> torch.Tensor:
    """LPIPS distance (lower is closer) of images [H, W, C] or [S, H, W, C] in [0, 1],
    C = 1 or 3, sides >= 32 px: [] or [S]. Raises FileNotFoundError when the weights are
    not on disk."""
    if pred.shape != target.shape:
        raise ValueError(f"lpips: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.dim() == 3:
        return lpips(pred[None], target[None], weights_dir)[0]
    if pred.dim() != 4 or pred.shape[-1] not in (1, 3) or min(pred.shape[1:3]) < _MIN_SIDE:
        raise ValueError(f"lpips needs [S, H, W, 1|3] images with sides >= {_MIN_SIDE}, "
                         f"got {tuple(pred.shape)}")
    convs, lins = _load(Path(weights_dir) if weights_dir else lpips_weights_dir())
    shift = torch.tensor(_SHIFT).view(1, 3, 1, 1)
    scale = torch.tensor(_SCALE).view(1, 3, 1, 1)

    def taps(img: torch.Tensor) -> list[torch.Tensor]:
        h = img.detach().float().cpu().permute(0, 3, 1, 2).expand(-1, 3, -1, -1)
        h = ((h * 2 - 1) - shift) / scale
        out = []
        for (_, stride, pad, pool), (w, b) in zip(_CONVS, convs):
            if pool:
                h = F.max_pool2d(h, 3, 2)
            h = F.relu(F.conv2d(h, w.float(), b.float(), stride=stride, padding=pad))
            out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    with torch.no_grad():
        dist = sum(F.conv2d((a - b) ** 2, lin.float()).mean(dim=(1, 2, 3))
                   for a, b, lin in zip(taps(pred), taps(target), lins))
    return dist
