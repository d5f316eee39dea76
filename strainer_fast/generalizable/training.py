"""Training TransINR / IPC on the training engine (``train.train``: progress bar, divergence
guard, training-state checkpoints and resume), and the cached models ``compare`` uses."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .._version import __version__
from ..cache import cache_dir
from ..data import coord_grid, load_images, validation_split
from ..metrics import psnr
from ..models import resolve_device
from ..train import Callback, Checkpointer, train
from ..train.objectives import image_points
from ..value_range import DEFAULT_VALUE_RANGE, check_same, resolve
from .base import GeneralizableINR
from .checkpoint import load_generalizable, make_model, save_generalizable
from .data import augment, load_slices

__all__ = ["train_generalizable", "predict", "generalizable_model", "resolve_generalizable",
           "first_flat", "ARCH_KEYS"]

# Settings that shape a model (the rest of train_generalizable's arguments shape its training).
ARCH_KEYS = ("size", "width", "layers", "w0", "dim", "depth", "heads", "patch", "groups",
             "rank")


def predict(model: GeneralizableINR, images: torch.Tensor) -> torch.Tensor:
    """Feed-forward reconstructions [B, H, W, C] in [0, 1] of images [B, H, W, C]."""
    h, w = images.shape[1:3]
    with torch.no_grad():
        out = model.render(model(images), coord_grid(h, w).to(images.device))
    return resolve(model.config["value_range"]).to_pixels(out, h, w)


def first_flat(psnr: Sequence[float], min_gain: float) -> int | None:
    """Index of the first validation check whose PSNR (dB) gains less than ``min_gain`` dB
    over the check before it (a drop counts), or None: the curve has not flattened."""
    return next((i for i in range(1, len(psnr)) if psnr[i] - psnr[i - 1] < min_gain), None)


class _ValidationCurve(Callback):
    """Mean feed-forward PSNR (dB) of ``model`` on ``images`` [V, H, W, C] at step 0 and every
    ``every`` steps into ``curve`` ``{"step", "psnr"}``; with ``min_gain`` (dB) it ends the
    run at the first check that gains less than that over the previous one
    (``first_flat``)."""

    key = "validation"

    def __init__(self, model: GeneralizableINR, images: torch.Tensor, every: int,
                 min_gain: float | None) -> None:
        self.model, self.images, self.every, self.min_gain = model, images, every, min_gain
        self.curve: dict[str, list] = {"step": [], "psnr": []}

    def _check(self, t) -> None:
        self.curve["step"].append(t.step)
        self.curve["psnr"].append(float(psnr(predict(self.model, self.images),
                                             self.images).mean()))

    def begin(self, t) -> None:
        if not self.curve["step"]:  # not resumed with a curve
            self._check(t)

    def after_step(self, t, mse) -> bool:
        if t.step % self.every:
            return False
        self._check(t)
        v, s = self.curve["psnr"], self.curve["step"]
        if self.min_gain is not None and first_flat(v, self.min_gain) == len(v) - 1:
            t.stop(f"flat: validation PSNR {v[-2]:.2f} -> {v[-1]:.2f} dB from step {s[-2]} "
                   f"to {s[-1]} ({v[-1] - v[-2]:+.3f} dB < {self.min_gain:g} dB)")
        return False

    def state_dict(self) -> dict:
        return {k: list(v) for k, v in self.curve.items()}

    def load_state_dict(self, state: dict) -> None:
        self.curve = {k: list(v) for k, v in state.items()}


def train_generalizable(
    kind: str,
    images: torch.Tensor | None = None,
    *,
    size: int = 32,
    width: int = 64,
    layers: int = 6,
    w0: float = 30.0,
    dim: int = 128,
    depth: int = 4,
    heads: int = 4,
    patch: int = 8,
    groups: int = 8,
    rank: int = 16,
    steps: int = 1000,
    batch: int = 16,
    points: int = 0,
    lr: float = 1e-4,
    max_shift: int | None = None,
    seed: int = 0,
    device: str = "auto",
    backend: str = "auto",
    precision: str = "exact",
    progress: bool = True,
    out: str | Path | None = None,
    checkpoint: Checkpointer | None = None,
    value_range: str = DEFAULT_VALUE_RANGE,
    validate_every: int = 0,
    min_gain: float | None = None,
) -> GeneralizableINR:
    """Trains a ``kind`` ("transinr" or "ipc") model: each step draws ``batch`` images
    (with replacement) from ``images`` [S, size, size, C] in [0, 1] (default: the 69 embedded
    MNI training slices at ``size``), augments them (``data.augment``; ``max_shift`` default
    size // 16 px), predicts their hyponets and takes one Adam step (``lr``) on the mean over
    the batch of each image's MSE, on all pixels (``points`` = 0) or on ``points`` random
    pixels shared by the batch. Architecture: ``width``/``layers``/``w0`` (hyponet),
    ``dim``/``depth``/``heads``/``patch`` (transformer), ``groups`` (TransINR) or ``rank``
    (IPC). ``value_range``: the range the pixels are mapped to for the loss (``value_range``;
    recorded in ``model.config``). The defaults are a reduced scale sized for a 2-core CPU;
    the report's settings are the ``gen_*`` keys of
    ``benchmarks/repro/preregistration.toml``.

    ``validate_every`` k > 0: the mean feed-forward PSNR on the 2 validation slices of
    ``data.validation_split()`` at step 0 and every k steps (``meta["validation_curve"]``);
    with ``min_gain`` (dB) training then stops at the first check that gains less than that
    over the previous one, ``steps`` being the most it runs (``first_flat``).

    Returns the trained model (on the device; ``model.meta``: ``steps`` trained (of
    ``max_steps``), ``stop`` (why it ended), wall time, the mean feed-forward PSNR on the
    validation slices, the validation curve or None); with ``out`` also saves it
    (``checkpoint.save_generalizable``). ``checkpoint``: training-state files / resume
    (``train.Checkpointer``).
    """
    if images is None:
        images, _ = load_slices(size)
    if images.dim() != 4 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be square [S, H, H, C], got {tuple(images.shape)}")
    if images.shape[1] != size:
        raise ValueError(f"images are {images.shape[1]} px but size={size}")
    for name, v in dict(steps=steps, batch=batch).items():
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if points < 0:
        raise ValueError(f"points must be >= 0, got {points}")
    if validate_every < 0:
        raise ValueError(f"validate_every must be >= 0, got {validate_every}")
    if min_gain is not None and not validate_every:
        raise ValueError("min_gain needs validation checks: set validate_every > 0")
    dev = resolve_device(device)
    val, _ = load_images(validation_split()[1], size)
    if val.shape[-1] != images.shape[-1]:
        if validate_every:
            raise ValueError(f"validation checks need {val.shape[-1]}-channel images (the "
                             f"validation slices), got {images.shape[-1]} channels")
        val = None
    else:
        val = val.to(dev)
    extra = dict(groups=groups) if kind == "transinr" else dict(rank=rank)
    model = make_model(kind, size=size, channels=images.shape[-1], width=width, layers=layers,
                       w0=w0, dim=dim, depth=depth, heads=heads, patch=patch, seed=seed,
                       backend=backend, precision=precision, value_range=value_range,
                       **extra).to(dev)
    vr = resolve(value_range)
    images = images.to(dev, torch.float32)
    grid = coord_grid(size, size).to(dev)
    shift = size // 16 if max_shift is None else max_shift
    g = torch.Generator().manual_seed(seed)

    def objective(step: int) -> torch.Tensor:
        idx = torch.randint(images.shape[0], (batch,), generator=g)
        batch_images = augment(images[idx.to(dev)], g, shift)
        if points:
            coords, target = image_points(batch_images, points, g, vr)(step)
        else:
            coords, target = grid, vr.to_target(batch_images)
        pred = model.render(model(batch_images), coords)
        return ((pred - target) ** 2).mean(dim=(1, 2))

    curve = _ValidationCurve(model, val, validate_every, min_gain) if validate_every else None
    t0 = time.perf_counter()
    t = train(model, objective, steps, lr=lr,
              callbacks=[c for c in (checkpoint, curve) if c is not None], progress=progress,
              desc=f"train {kind}", generator=g, value_range=vr)
    wall = time.perf_counter() - t0
    val_psnr = None if val is None else float(psnr(predict(model, val), val).mean())
    model.meta = dict(steps=t.step, max_steps=steps, stop=t.stopped or f"max steps ({steps})",
                      lr=lr, batch=batch, points=points, max_shift=shift, seed=seed,
                      train_images=int(images.shape[0]), wall_s=wall, validation_psnr=val_psnr,
                      validation_curve=None if curve is None else curve.curve)
    if out is not None:
        save_generalizable(model, out, **model.meta)
    return model


def generalizable_model(kind: str, checkpoint: str | Path | None = None, *,
                        verbose: bool = True, **settings) -> GeneralizableINR:
    """The model of ``checkpoint``, or (None) one trained by ``train_generalizable(kind,
    **settings)`` on the embedded slices and cached in ``cache_dir("generalizable")`` under
    a hash of every setting, so later calls with the same settings reuse it. A checkpoint
    whose architecture differs from the ``ARCH_KEYS`` in ``settings``, or that was trained
    under another ``value_range`` than the one in ``settings``, is a ValueError."""
    backend = settings.get("backend", "auto")
    precision = settings.get("precision", "exact")
    if checkpoint is None:
        key = dict(settings, kind=kind, version=__version__)
        key.pop("progress", None)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        checkpoint = cache_dir("generalizable") / f"{kind}_{digest}.pt"
        if not checkpoint.is_file():
            if verbose:
                print(f"training {kind} -> {checkpoint}", file=sys.stderr, flush=True)
            train_generalizable(kind, out=checkpoint, **settings)
    model = load_generalizable(checkpoint, backend=backend, precision=precision)
    if model.kind != kind:
        raise ValueError(f"{checkpoint}: a {model.kind} checkpoint, not {kind}")
    bad = [f"{k}={model.config[k]!r} in checkpoint but {settings[k]!r} requested"
           for k in ARCH_KEYS if k in model.config and settings.get(k) is not None
           and settings[k] != model.config[k]]
    if bad:
        raise ValueError(f"{checkpoint}: architecture conflict: " + "; ".join(bad))
    if settings.get("value_range") is not None:
        check_same(model.config["value_range"], settings["value_range"], str(checkpoint))
    return model.to(resolve_device(settings.get("device", "auto")))


def resolve_generalizable(kind: str, given: GeneralizableINR | str | Path | None,
                          images: torch.Tensor, **settings) -> GeneralizableINR:
    """The ``kind`` model for fitting images [K, H, H, C]: ``given`` (a model or a checkpoint
    path), else the cached one trained on the embedded MRI slices at H px with ``settings``
    (``generalizable_model``). Its size, channels and hyponet (width, layers, w0 in
    ``settings``) must fit the images, and its value range ``settings["value_range"]``
    (when given)."""
    h, w, c = images.shape[1:]
    if h != w:
        raise ValueError(f"{kind} needs square images, got {h}x{w}")
    if isinstance(given, GeneralizableINR):
        model = given
        if settings.get("value_range") is not None:
            check_same(model.config["value_range"], settings["value_range"], f"the {kind} model")
    elif given is None and c != 1:
        raise ValueError(f"{kind} is trained on the embedded grayscale MRI slices, but the "
                         f"images have {c} channels: use grayscale images or give a "
                         f"trained {kind} checkpoint")
    else:
        model = generalizable_model(kind, given, size=h, **settings)
    if model.kind != kind:
        raise ValueError(f"a {model.kind} model was given for {kind}")
    have = dict(size=h, channels=c, **{k: settings[k] for k in ("width", "layers", "w0")
                                       if settings.get(k) is not None})
    bad = [f"{k} {model.config[k]!r} (model) vs {v!r}" for k, v in have.items()
           if model.config[k] != v]
    if bad:
        raise ValueError(f"the {kind} model does not fit these images / networks: "
                         + "; ".join(bad))
    return model
