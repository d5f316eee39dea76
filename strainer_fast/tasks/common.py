"""Helpers shared by the task jobs: init lists, curve maths, PNG output, the encoder and
architecture of an image task (given checkpoint or the cached MRI encoder)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..checkpoint import load_encoder
from ..config import apply_defaults, preset, validate
from ..jobs import mri_encoder, runtime_kwargs, use_encoder
from ..models import Encoder
from ..value_range import for_encoder

__all__ = ["TASK_INITS", "parse_inits", "steps_to_reach", "save_png", "resolve_image_task",
           "task_encoder",
           "fit_kwargs"]

TASK_INITS = ("siren", "strainer")


def parse_inits(text: str) -> list[str]:
    """"siren,strainer" -> ["siren", "strainer"] (each of TASK_INITS, at least one)."""
    inits = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in inits if m not in TASK_INITS]
    if bad or not inits:
        raise ValueError(f"--init takes a comma list of {', '.join(TASK_INITS)}, got {text!r}")
    return list(dict.fromkeys(inits))


def steps_to_reach(steps: list[int], curve: list[float], value: float) -> int | None:
    """First logged step whose ``curve`` value is >= ``value`` (None if never)."""
    for step, v in zip(steps, curve):
        if v >= value:
            return step
    return None


def save_png(image: torch.Tensor | np.ndarray, path) -> None:
    """Saves an image [H, W, C] (C in 1, 3) or [H, W] with values in [0, 1] as 8-bit PNG."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
    arr = np.clip(np.asarray(arr, dtype=np.float64), 0, 1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(arr * 255).astype(np.uint8)).save(path)


def resolve_image_task(cfg, task: str) -> Encoder | None:
    """Resolves an image task's config (an ``ImageTaskJob``) in place: the given
    encoder's architecture and value range (``value_range.for_encoder``), then the device
    preset, the logging interval capped at the steps. Returns the given encoder (or None)."""
    encoder = None
    if cfg.encoder:
        encoder = use_encoder(cfg.model, load_encoder(cfg.encoder))
    cfg.value_range = for_encoder(cfg.value_range,
                                  None if encoder is None else encoder.value_range,
                                  str(cfg.encoder)).name
    apply_defaults(cfg, preset(task, cfg.runtime.device))
    cfg.fit.log_every = min(cfg.fit.log_every, cfg.fit.steps)
    validate(cfg)
    return encoder


def task_encoder(cfg, given: Encoder | None, inits: list[str]
                 ) -> tuple[Encoder | None, str | None]:
    """(the STRAINER encoder, where it came from) when ``inits`` needs one: the given one
    or the cached MRI encoder of the config's architecture (pretrained on first use)."""
    if "strainer" not in inits:
        return None, None
    if given is not None:
        return given, cfg.encoder
    return mri_encoder(cfg.model, cfg.size, cfg.pretrain.steps, cfg.pretrain.lr, cfg.runtime,
                       cfg.value_range)


def fit_kwargs(cfg, encoder: Encoder | None, init: str) -> tuple[str | Encoder, dict]:
    """(init, ``fit_many`` keyword options) of one init of an image task config; the
    STRAINER init gets the ``--strainer-lr`` multipliers."""
    m, f = cfg.model, cfg.fit
    kw = dict(steps=f.steps, lr=f.lr, log_every=f.log_every, stabilize=f.stabilize,
              keep=f.keep, recipe=f.recipe, points=f.points or None,
              value_range=cfg.value_range,
              width=m.width, layers=m.layers, w0=m.w0, **runtime_kwargs(cfg.runtime))
    if init == "strainer":
        return encoder, dict(kw, transfer_lr=cfg.strainer_lr)
    return init, kw
