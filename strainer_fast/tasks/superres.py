"""Super-resolution: fit an INR at full resolution through an area-downsampling operator.

The observation is the image averaged over ``scale`` x ``scale`` blocks; the network is
rendered on the full-resolution grid and the same average maps the render to the
observation grid before the MSE. PSNR / SSIM compare the render with the original image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..data import default_split, list_images, load_images
from ..fit import FitResult, fit_many
from ..models import resolve_device
from ..report import write_report
from .common import (TASK_INITS, add_model_options, add_transfer_option, mri_encoder,
                     parse_inits, save_png, steps_to_reach, task_config)

__all__ = ["SUPERRES_CPU", "SUPERRES_GPU", "downsample", "area_operator", "superres",
           "add_parser", "run"]

# CPU: 64x64 targets (16x16 observations at --scale 4), a width-128 STRAINER-10 encoder
# pretrained on the MRI train split; GPU: the paper-size networks.
SUPERRES_CPU = dict(size=64, width=128, layers=6, shared=5, pretrain_steps=1500, steps=300,
                    log_every=10)
SUPERRES_GPU = dict(size=176, width=256, layers=6, shared=5, pretrain_steps=5000, steps=2000,
                    log_every=50)


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


def superres(observed: torch.Tensor, scale: int, inits: list[str], cfg: dict, opts: dict, *,
             reference: torch.Tensor | None = None, encoder: str | None = None
             ) -> tuple[dict[str, FitResult], str | None]:
    """Fits observations [K, h, w, C] at (h*scale, w*scale) from each init.

    cfg: size, width, layers, shared, w0, lr, steps, pretrain_steps, log_every and
    strainer_lr (``fit_many``'s ``transfer_lr`` for the STRAINER init); opts: seed,
    device, backend, precision, progress. ``reference`` [K, H, W, C]: the ground truth for
    PSNR / SSIM. Returns (init -> result, where the STRAINER encoder came from).
    """
    h, w = observed.shape[1:3]
    big = (h * scale, w * scale)
    net = dict(width=cfg["width"], layers=cfg["layers"], w0=cfg["w0"])
    weights, source = None, None
    if "strainer" in inits:
        weights, source = mri_encoder(encoder, net, shared=cfg["shared"], size=cfg["size"],
                                      steps=cfg["pretrain_steps"], lr=cfg["lr"], opts=opts)
    results = {}
    for init in inits:
        results[init] = fit_many(
            observed, init, init_weights=weights if init == "strainer" else None,
            steps=cfg["steps"], lr=cfg["lr"], log_every=cfg["log_every"],
            operator=area_operator(*big, scale), render_size=big, reference=reference,
            transfer_lr=cfg["strainer_lr"] if init == "strainer" else (1.0, 1.0),
            desc=f"superres {init}", **net, **opts)
    return results, source


def add_parser(sub: argparse._SubParsersAction, common: Callable) -> None:
    """Registers ``superres``; ``common(parser)`` adds the CLI's device/seed options."""
    p = sub.add_parser("superres", help="super-resolve images through an area-downsampling "
                                        "operator (default: the embedded MRI test slices)")
    p.add_argument("image", nargs="*", help="image files / folders (default: MRI test split)")
    p.add_argument("--scale", type=int, default=4, help="downsampling factor (default 4)")
    p.add_argument("--init", default="siren,strainer",
                   help=f"comma list of {', '.join(TASK_INITS)} (default: both, compared)")
    p.add_argument("--encoder", help="STRAINER checkpoint (default: pretrain on the embedded "
                                     "MRI train split, cached)")
    p.add_argument("--input-lowres", action="store_true",
                   help="the images are already low resolution: upsample them (no metrics)")
    p.add_argument("--out", required=True, help="output folder")
    add_model_options(p, "full-resolution side in px (CPU default 64)")
    add_transfer_option(p)
    common(p)


def _native_side(path: Path) -> int:
    """Shorter side in px of an image file (.npy or any PIL format)."""
    try:
        if path.suffix.lower() == ".npy":
            return min(np.load(path, mmap_mode="r").shape[:2])
        with Image.open(path) as im:
            return min(im.size)
    except (ValueError, OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None


def run(args: argparse.Namespace, opts: dict) -> None:
    """``strainer-fast superres``: writes the report, metrics.json and PNGs to ``--out``."""
    inits = parse_inits(args.init)
    if args.scale < 1:
        raise ValueError(f"--scale must be >= 1, got {args.scale}")
    sources = args.image or default_split()[1]
    if args.input_lowres and args.size is None:
        args.size = _native_side(list_images(sources[0])[0]) * args.scale
    cfg = dict(task_config(args, SUPERRES_CPU, SUPERRES_GPU), strainer_lr=args.strainer_lr)
    if cfg["size"] % args.scale:
        raise ValueError(f"--size {cfg['size']} is not divisible by --scale {args.scale}")
    t0 = time.perf_counter()
    if args.input_lowres:
        observed, names = load_images(sources, cfg["size"] // args.scale, args.gray)
        reference = None
    else:
        reference, names = load_images(sources, cfg["size"], args.gray)
        observed = downsample(reference, args.scale)
    results, source = superres(observed, args.scale, inits, cfg, opts, reference=reference,
                               encoder=args.encoder)
    out = Path(args.out)
    for i, name in enumerate(names):
        stem = Path(name).stem
        save_png(observed[i], out / "observed" / f"{stem}.png")
        for init, r in results.items():
            save_png(r.recon[i], out / init / f"{stem}.png")
    cfg = dict(cfg, scale=args.scale, inits=inits, encoder=source, input_lowres=args.input_lowres,
               seed=opts["seed"], images=[str(s) for s in sources])
    device = str(resolve_device(args.device))
    total = time.perf_counter() - t0
    if reference is None:
        (out / "metrics.json").write_text(json.dumps(
            {"title": "super-resolution (no ground truth)", "config": cfg, "device": device,
             "signals": names, "total_s": total}, indent=1))
        print(f"upsampled {len(names)} image(s) x{args.scale}; wrote {out}", file=sys.stderr)
        return
    summary = _summary(results)
    notes = (f"Observation: the {cfg['size']}x{cfg['size']} images area-averaged by "
             f"{args.scale} (files in `observed/`); the INR is fitted at full resolution "
             f"through the same average; metrics at full resolution against the originals. "
             f"Full-resolution outputs: `<init>/`. STRAINER encoder: {source}.\n\n"
             f"{summary['text']}\n\nTotal wall time (incl. any pretraining): {total:.1f} s.")
    write_report(out, results, reference, names, cfg, device=device,
                 title=f"super-resolution x{args.scale}", notes=notes,
                 summary=summary)
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
