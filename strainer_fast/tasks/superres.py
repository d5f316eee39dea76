"""Super-resolution: fit an INR at full resolution through an area-downsampling operator.

The observation is the image averaged over ``scale`` x ``scale`` blocks; the network is
rendered on the full-resolution grid and the same average maps the render to the
observation grid before the MSE. PSNR / SSIM compare the render with the original image.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..config import SuperresJob, to_dict, validate, write_config
from ..data import default_split, list_images, load_images
from ..fit import FitResult, fit_many
from ..jobs import check_image_job
from ..models import Encoder, resolve_device
from ..report import write_outputs, write_report
from .common import (fit_kwargs, parse_inits, resolve_image_task, save_png, steps_to_reach,
                     task_encoder)

__all__ = ["downsample", "area_operator", "superres", "superres_job"]


def downsample(images: torch.Tensor, scale: int) -> torch.Tensor:
    """Area average over ``scale`` x ``scale`` blocks: [K, H, W, C] -> [K, H/s, W/s, C].

    Linear, preserves constants; its adjoint spreads each value / scale^2 over its block.
    """
    k, h, w, c = images.shape
    if scale < 1 or h % scale or w % scale:
        raise ValueError(f"image size {h}x{w} is not divisible by --scale {scale}")
    return F.avg_pool2d(images.permute(0, 3, 1, 2), scale).permute(0, 2, 3, 1)


def area_operator(height: int, width: int, scale: int):
    """The forward operator for ``fit_many``: render [S, H*W, C] -> [S, (H/s)*(W/s), C]."""

    def op(out: torch.Tensor) -> torch.Tensor:
        s, _, c = out.shape
        low = downsample(out.reshape(s, height, width, c), scale)
        return low.reshape(s, -1, c)

    return op


def superres(observed: torch.Tensor, scale: int, init: str | Encoder = "siren", *,
             reference: torch.Tensor | None = None, steps: int = 300, lr: float = 1e-4,
             log_every: int = 10, transfer_lr: tuple[float, float] = (0.03, 10.0),
             **kwargs: Any) -> FitResult:
    """Fits observations [K, h, w, C] in [0, 1] at (h*scale, w*scale) through the area
    average, from ``init`` ("siren" or a pretrained ``Encoder``). ``reference``
    [K, H, W, C]: the ground truth for PSNR / SSIM. ``transfer_lr``: the STRAINER init's
    encoder / decoder learning-rate multipliers (``fit_many``; ignored for SIREN).
    ``kwargs``: more ``fit_many`` options (width, layers, w0, seed, device, ...). The
    result's ``recon`` is the full-resolution render."""
    h, w = observed.shape[1:3]
    big = (h * scale, w * scale)
    is_strainer = not isinstance(init, str) or init == "strainer"
    kwargs.setdefault("desc", f"superres {'strainer' if is_strainer else init}")
    return fit_many(observed, init, steps=steps, lr=lr, log_every=log_every,
                    operator=area_operator(*big, scale), render_size=big, reference=reference,
                    transfer_lr=transfer_lr if is_strainer else (1.0, 1.0), **kwargs)


def _native_side(path: Path) -> int:
    """Shorter side in px of an image file (.npy or any PIL format)."""
    try:
        if path.suffix.lower() == ".npy":
            return min(np.load(path, mmap_mode="r").shape[:2])
        with Image.open(path) as im:
            return min(im.size)
    except (ValueError, OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None


def superres_job(cfg: SuperresJob) -> None:
    """``strainer-fast superres``: writes the report, metrics.json, config.json and PNGs."""
    inits = parse_inits(cfg.inits)
    validate(cfg)
    if cfg.fit.points:
        raise ValueError("--points does not apply to superres: the downsampling operator needs "
                         "the full-resolution render every step")
    sources = cfg.images = cfg.images or [str(p) for p in default_split()[1]]
    if cfg.input_lowres and cfg.size is None:
        cfg.size = _native_side(list_images(sources[0])[0]) * cfg.scale
    t0 = time.perf_counter()
    given = resolve_image_task(cfg, "superres")
    if cfg.size % cfg.scale:
        raise ValueError(f"--size {cfg.size} is not divisible by --scale {cfg.scale}")
    encoder, source = task_encoder(cfg, given, inits)
    if cfg.input_lowres:
        observed, names = load_images(sources, cfg.size // cfg.scale, cfg.gray)
        reference = None
    else:
        reference, names = load_images(sources, cfg.size, cfg.gray)
        observed = downsample(reference, cfg.scale)
    check_image_job(cfg.runtime.device, "super-resolving", len(names), cfg.size, cfg.gray,
                    None, cfg.model.width, cfg.model.layers)
    out = Path(cfg.out)
    write_config(out / "config.json", "superres", cfg)
    results = {}
    for init in inits:
        start, kw = fit_kwargs(cfg, encoder, init)
        results[init] = superres(observed, cfg.scale, start, reference=reference, **kw)
    for i, name in enumerate(names):
        stem = Path(name).stem
        save_png(observed[i], out / "observed" / f"{stem}.png")
        for init, r in results.items():
            save_png(r.recon[i], out / init / f"{stem}.png")
    device = str(resolve_device(cfg.runtime.device))
    total = time.perf_counter() - t0
    extra = dict(encoder_source=source)
    if reference is None:
        write_outputs(out, title="super-resolution (no ground truth)",
                      config=dict(to_dict(cfg), **extra), device=device,
                      metrics=dict(signals=names, total_s=total),
                      notes=f"Upsampled {len(names)} image(s) x{cfg.scale}: `<init>/`.")
        print(f"upsampled {len(names)} image(s) x{cfg.scale}; wrote {out}", file=sys.stderr)
        return
    summary = _summary(results)
    notes = (f"Observation: the {cfg.size}x{cfg.size} images area-averaged by "
             f"{cfg.scale} (files in `observed/`); the INR is fitted at full resolution "
             f"through the same average; metrics at full resolution against the originals. "
             f"Full-resolution outputs: `<init>/`. STRAINER encoder: {source}.\n\n"
             f"{summary['text']}\n\nTotal wall time (incl. any pretraining): {total:.1f} s.")
    write_report(out, results, reference, names, cfg, device=device,
                 title=f"super-resolution x{cfg.scale}", notes=notes, summary=summary,
                 extra_config=extra)
    print(summary["text"], file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)


def _summary(results: dict[str, FitResult]) -> dict:
    """Steps STRAINER needs to reach SIREN's final mean PSNR (when both were fitted)."""
    summary: dict = {"final_psnr": {m: float(np.mean(r.psnr[-1])) for m, r in results.items()}}
    text = ", ".join(f"{m} final mean PSNR {v:.2f} dB" for m, v in summary["final_psnr"].items())
    if {"siren", "strainer"} <= results.keys():
        siren, strainer = results["siren"], results["strainer"]
        target = summary["final_psnr"]["siren"]
        reach = steps_to_reach(strainer.step, [float(np.mean(v)) for v in strainer.psnr], target)
        summary.update(siren_final_step=siren.step[-1], strainer_steps_to_siren_final=reach)
        text += (f". STRAINER reaches SIREN's final {target:.2f} dB (step {siren.step[-1]}) "
                 + (f"at step {reach} ({reach / siren.step[-1]:.2f} of SIREN's steps)."
                    if reach is not None else "within no logged step."))
    summary["text"] = text
    return summary
