"""STRAINER pretraining: one shared encoder + one decoder per training image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .checkpoint import save_checkpoint
from .fit import train_loop
from .models import Strainer, resolve_device

__all__ = ["pretrain"]


def pretrain(
    images: torch.Tensor,
    *,
    width: int = 256,
    layers: int = 6,
    shared: int = 5,
    w0: float = 30.0,
    steps: int = 5000,
    lr: float = 1e-4,
    seed: int = 0,
    device: str = "auto",
    backend: str = "auto",
    precision: str = "exact",
    progress: bool = True,
    out: str | Path | None = None,
    names: Sequence[str] | None = None,
) -> Strainer:
    """Trains a ``Strainer`` on images [S, H, W, C] in [0, 1] (paper: Adam, lr 1e-4, 5000
    steps, loss = sum over images of per-image MSE, one batched forward per step).

    Returns the model; with ``out`` also saves it as a checkpoint whose metadata holds the
    training image ``names``, ``steps`` and ``seed``.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [S, H, W, C], got shape {tuple(images.shape)}")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = Strainer(images.shape[0], in_features=2, out_features=images.shape[-1], width=width,
                     layers=layers, shared=shared, w0=w0, seed=seed, backend=backend,
                     precision=precision).to(dev)
    train_loop(model, images.to(dev, torch.float32), steps, lr, progress=progress,
               desc=f"pretrain STRAINER-{images.shape[0]}")
    if out is not None:
        save_checkpoint(model, out, signals=list(names or []), steps=steps, seed=seed, lr=lr,
                        size=list(images.shape[1:3]))
    return model
