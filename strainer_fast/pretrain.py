"""STRAINER pretraining: one shared encoder + one decoder per training image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from . import distributed
from .checkpoint import save_checkpoint
from .memory import check_fits
from .models import Strainer, resolve_device
from .train import Checkpointer, GradSync, image_mse, train
from .value_range import DEFAULT_VALUE_RANGE, ValueRange, resolve

__all__ = ["pretrain", "initial_strainer"]


def initial_strainer(total: int, start: int, stop: int, **config) -> Strainer:
    """The initial ``Strainer`` of signals [start, stop) of a ``total``-signal run: the same
    encoder and decoder values as ``Strainer(total, **config)`` (one seeded draw of all
    decoders, then sliced; transient memory for all decoders). ``config``: ``Strainer``
    arguments (width, layers, shared, w0, seed, ...)."""
    full = Strainer(total, **config)
    if (start, stop) == (0, total):
        return full
    dec = [(w[start:stop].detach(), b[start:stop].detach()) for w, b in zip(full.dec_w, full.dec_b)]
    return Strainer.from_layers(full.encoder_layers() + dec, w0=config.get("w0", 30.0),
                                shared=full.config["shared"],
                                backend=config.get("backend", "auto"),
                                precision=config.get("precision", "exact"))


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
    weight_scale: float = 1.0,
    progress: bool = True,
    out: str | Path | None = None,
    names: Sequence[str] | None = None,
    shard: tuple[int, int, int] | None = None,
    checkpoint: Checkpointer | None = None,
    points: int | None = None,
    value_range: str | ValueRange = DEFAULT_VALUE_RANGE,
) -> Strainer:
    """Trains a ``Strainer`` on images [S, H, W, C] in [0, 1] (paper: Adam, lr 1e-4, 5000
    steps, loss = sum over images of per-image MSE, one batched forward per step), from the
    SIREN init with weight scaling ``weight_scale`` (alpha, see ``models``; 1 = the paper's).

    ``value_range``: the range the pixels are mapped to ("signed" [-1, 1] or "unit" [0, 1],
    see ``value_range``); the model (``model.value_range``, ``model.encoder()``) and the
    checkpoint record it, and fits from the encoder must use the same range.

    Returns the model; with ``out`` also saves it as a checkpoint whose metadata holds the
    training image ``names``, ``steps``, ``seed`` and ``value_range``.

    Under ``torch.distributed`` (see ``distributed``), ``shard = (start, stop, total)``
    says that ``images`` are signals [start, stop) of ``total`` (default: this rank's block
    of ``images``); each rank trains its own decoders, encoder gradients are summed over
    ranks, ``names`` lists all ``total`` signals, and rank 0 gathers every decoder and
    writes ``out``. The returned model holds this rank's decoders (``model.encoder()`` is the
    pretrained ``Encoder``). ``checkpoint``: training-state files / resume
    (``train.Checkpointer``). ``points``: pixels per step (shared by the images), drawn
    from a generator seeded ``seed`` (saved with the training state); None: the full grid.
    A configuration that cannot fit in memory raises ``memory.WontFit`` up front.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [S, H, W, C], got shape {tuple(images.shape)}")
    dev, vr = resolve_device(device), resolve(value_range)
    rank, world = distributed.rank_world()
    if shard is None:
        start, stop = distributed.shard(images.shape[0], rank, world)
        images, shard = images[start:stop], (start, stop, images.shape[0])
    start, stop, total = shard
    if stop - start != images.shape[0]:
        raise ValueError(f"shard {shard} does not match {images.shape[0]} images")
    s, h, w, c = images.shape
    check_fits(dev, f"pretraining on {s} image(s) of {h}x{w} px", signals=s, grid=h * w,
               channels=c, points=points, width=width, layers=layers)
    model = initial_strainer(total, start, stop, in_features=2, out_features=images.shape[-1],
                             width=width, layers=layers, shared=shared, w0=w0, seed=seed,
                             backend=backend, precision=precision,
                             weight_scale=weight_scale).to(dev)
    callbacks = [c for c in (checkpoint, GradSync() if world > 1 else None) if c is not None]
    gen = None if points is None else torch.Generator().manual_seed(seed + rank)
    model.value_range = vr.name
    train(model, image_mse(model, images.to(dev, torch.float32), points=points, generator=gen,
                           value_range=vr),
          steps, lr=lr, callbacks=callbacks, progress=progress and rank == 0,
          desc=f"pretrain STRAINER-{total}", generator=gen, value_range=vr)
    if out is not None:
        dec = distributed.gather_decoders(model) if world > 1 else None
        if rank == 0:
            full = model if dec is None else Strainer.from_layers(
                model.encoder_layers() + dec, w0=w0, shared=shared, backend=backend,
                precision=precision)
            save_checkpoint(full, out, signals=list(names or []), steps=steps, seed=seed, lr=lr,
                            size=list(images.shape[1:3]), processes=world,
                            weight_scale=weight_scale, value_range=vr.name)
    return model
