"""Fitting images from a generalizable INR: the feed-forward prediction alone, or test-time
optimisation (TTO) of every hyponet weight from the predicted ones, on the fused ops and the
same training loop, curves and options as ``fit.fit_many``, in the model's value range."""

from __future__ import annotations

import torch

from ..fit import FitResult, fit_callbacks
from ..models import Strainer
from ..train import image_mse, train
from ..value_range import resolve
from .base import GeneralizableINR

__all__ = ["fit_generalizable"]


def fit_generalizable(
    images: torch.Tensor,
    model: GeneralizableINR,
    *,
    tto: bool = True,
    steps: int = 2000,
    lr: float = 1e-4,
    log_every: int = 100,
    stabilize: str = "off",
    progress: bool = True,
    desc: str | None = None,
    points: int | None = None,
    seed: int = 0,
    keep: str = "best",
) -> FitResult:
    """Predicts the hyponets of images [K, H, W, C] in [0, 1] with ``model`` (a trained
    ``TransINR`` / ``IPC``; images at its size and channel count) and, with ``tto``, fits
    all their weights from there: K independent networks, Adam at ``lr`` for ``steps``
    steps, PSNR / SSIM every ``log_every`` steps (0: start and end only), as
    ``fit.fit_many``. Step 0 is the feed-forward prediction; without ``tto`` it is the only
    log point. ``points``: pixels per step drawn from a generator seeded ``seed`` (None:
    the full grid), as ``fit.fit_many``; so is ``keep`` (the iterate returned). Runs on the
    model's device, backend, precision and value range (``model.config["value_range"]``);
    PSNR is on [0, 1] pixels.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [K, H, W, C], got shape {tuple(images.shape)}")
    if log_every < 0:
        raise ValueError(f"log_every must be >= 0, got {log_every}")
    dev = model.base_b[0].device
    images = images.to(dev, torch.float32)
    with torch.no_grad():
        layers = [(w.contiguous(), b.contiguous()) for w, b in model(images)]
    net = Strainer.from_layers(layers, w0=model.config["w0"], shared=0, backend=model.backend,
                               precision=model.precision).to(dev)
    h, w = images.shape[1:3]
    result = FitResult(model=net)
    steps = steps if tto else 0
    name = model.kind + ("-tto" if tto else "")
    gen = None if points is None else torch.Generator().manual_seed(seed)
    vr = resolve(model.config["value_range"])
    train(net, image_mse(net, images, points=points, generator=gen, value_range=vr), steps,
          lr=lr, callbacks=fit_callbacks(result, images, (h, w), images, vr,
                                         stabilize=stabilize, keep=keep, points=points),
          log_every=log_every or steps, progress=progress and steps > 0,
          desc=desc or f"fit {name}", generator=gen, value_range=vr)
    return result
