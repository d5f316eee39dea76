"""Helpers shared by the task commands: cache folder, the embedded-MRI encoder, curve maths."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import __version__
from ..checkpoint import load_strainer
from ..data import default_split, load_images
from ..models import Layers, resolve_device
from ..pretrain import pretrain

__all__ = ["add_model_options", "add_transfer_option", "cache_dir", "cached_encoder",
           "mri_encoder", "parse_inits", "parse_transfer_lr", "save_png", "steps_to_reach",
           "task_config"]

TASK_INITS = ("siren", "strainer")


def cache_dir(kind: str) -> Path:
    """``$STRAINER_FAST_CACHE/kind`` (default ``$XDG_CACHE_HOME/strainer_fast/kind``,
    ``~/.cache/strainer_fast/kind``), created on demand."""
    root = os.environ.get("STRAINER_FAST_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "strainer_fast")
    path = Path(root) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def parse_inits(text: str) -> list[str]:
    """"siren,strainer" -> ["siren", "strainer"] (each of TASK_INITS, at least one)."""
    inits = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in inits if m not in TASK_INITS]
    if bad or not inits:
        raise ValueError(f"--init takes a comma list of {', '.join(TASK_INITS)}, got {text!r}")
    return list(dict.fromkeys(inits))


def cached_encoder(encoder: str | None, expect: dict, name: str, key: dict,
                   build: Callable[[Path], object]) -> tuple[Layers, str]:
    """Encoder layers for ``--init strainer`` and where they came from.

    With ``encoder`` (a checkpoint path) its encoder is used (``expect``: config keys that
    must match). Otherwise ``build(path)`` pretrains one and saves it to ``path`` in
    ``cache_dir("encoders")``, named ``name`` plus a hash of ``key`` (every setting that
    changes it), so later runs with the same settings reuse it.
    """
    if encoder:
        return load_strainer(encoder, expect).encoder_layers(), str(encoder)
    key = dict(key, version=__version__)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir("encoders") / f"{name}_{digest}.pt"
    if not path.is_file():
        print(f"pretraining the {name} encoder -> {path}", file=sys.stderr, flush=True)
        build(path)
    return load_strainer(path, expect).encoder_layers(), str(path)


def mri_encoder(encoder: str | None, net: dict, *, shared: int, size: int, steps: int,
                lr: float, opts: dict) -> tuple[Layers, str]:
    """``cached_encoder`` for images: a STRAINER-10 pretrained on the embedded MRI train
    split at ``size`` x ``size`` (grayscale); ``net``: width, layers, w0."""

    def build(path: Path) -> None:
        train, names = load_images(default_split()[0], size, gray=True)
        pretrain(train, shared=shared, steps=steps, lr=lr, out=path, names=names, **net, **opts)

    key = dict(net, shared=shared, size=size, steps=steps, lr=lr, seed=opts["seed"],
               precision=opts["precision"])
    return cached_encoder(encoder, dict(net, in_features=2), "mri_strainer10", key, build)


def steps_to_reach(steps: list[int], curve: list[float], value: float) -> int | None:
    """First logged step whose ``curve`` value is >= ``value`` (None if never)."""
    for step, v in zip(steps, curve):
        if v >= value:
            return step
    return None


def save_png(image: torch.Tensor | np.ndarray, path: Path) -> None:
    """Saves an image [H, W, C] (C in 1, 3) or [H, W] with values in [0, 1] as 8-bit PNG."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
    arr = np.clip(np.asarray(arr, dtype=np.float64), 0, 1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(arr * 255).astype(np.uint8)).save(path)


def task_config(args: argparse.Namespace, cpu: dict, gpu: dict) -> dict:
    """The device's default config overridden by the given options (checked >= 1); the
    logging interval (``log_every`` / ``eval_every``) is capped at ``steps``."""
    cfg = dict(gpu if resolve_device(args.device).type == "cuda" else cpu, w0=args.w0,
               lr=args.lr)
    for key in cpu:
        value = getattr(args, key, None)
        if value is not None:
            if value < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {value}")
            cfg[key] = value
    for key in ("log_every", "eval_every"):
        if key in cfg:
            cfg[key] = min(cfg[key], cfg["steps"])
    return cfg


def add_transfer_option(p: argparse.ArgumentParser) -> None:
    """--strainer-lr ENC,DEC: the inverse problems' learning-rate multipliers of STRAINER."""
    p.add_argument("--strainer-lr", default="0.03,10", type=parse_transfer_lr,
                   help="for --init strainer: learning rates of the pretrained encoder and "
                        "of the fresh decoder as multiples of --lr (default 0.03,10: keep "
                        "the encoder's prior, fit the decoder fast; 1,1 = the paper's "
                        "protocol, all weights at --lr)")


def parse_transfer_lr(text: str) -> tuple[float, float]:
    """'ENC,DEC' -> two finite multipliers >= 0."""
    try:
        enc, dec = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ENC,DEC multipliers, got {text!r}") from None
    if not all(math.isfinite(v) and v >= 0 for v in (enc, dec)):
        raise argparse.ArgumentTypeError(f"multipliers must be finite and >= 0, got {text!r}")
    return enc, dec


def add_model_options(p: argparse.ArgumentParser, size_help: str) -> None:
    """--size and the network / schedule options; unset ones take the device's default."""
    p.add_argument("--size", type=int, help=size_help)
    for name in ("width", "layers", "shared", "steps", "pretrain-steps", "log-every"):
        p.add_argument(f"--{name}", type=int, help="override the device's default")
    p.add_argument("--w0", type=float, default=30.0)
    p.add_argument("--lr", type=float, default=1e-4)
