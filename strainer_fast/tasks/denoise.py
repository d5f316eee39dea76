"""Denoising: fit the noisy observation, track PSNR against the clean image.

INRs fit the noise too once they have fitted the image, so the PSNR-vs-step curve against
the clean image peaks: the report gives the best logged step and the final step.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..data import default_split, load_images
from ..fit import FitResult, fit_many
from ..models import resolve_device
from ..report import write_report
from .common import (TASK_INITS, add_model_options, add_transfer_option, mri_encoder,
                     parse_inits, save_png, task_config)

__all__ = ["DENOISE_CPU", "DENOISE_GPU", "parse_noise", "add_noise", "denoise", "add_parser",
           "run"]

DENOISE_CPU = dict(size=64, width=128, layers=6, shared=5, pretrain_steps=1500, steps=300,
                   log_every=5)
DENOISE_GPU = dict(size=178, width=256, layers=6, shared=5, pretrain_steps=5000, steps=2000,
                   log_every=20)


def parse_noise(spec: str) -> tuple[str, float]:
    """"gaussian:SIGMA" (SIGMA > 0, in [0, 1] intensity units) or "poisson:TAU" (TAU > 0
    photons at full intensity) -> (kind, value)."""
    kind, _, value = spec.partition(":")
    try:
        level = float(value)
    except ValueError:
        level = float("nan")
    if kind not in ("gaussian", "poisson") or not np.isfinite(level) or level <= 0:
        raise ValueError(f"--noise must be gaussian:SIGMA or poisson:TAU with a positive "
                         f"number, got {spec!r}")
    return kind, level


def add_noise(images: torch.Tensor, spec: str, seed: int = 0) -> torch.Tensor:
    """Noisy copy of images [..] in [0, 1], seeded (same seed -> same noise).

    gaussian:SIGMA: x + SIGMA * N(0, 1). poisson:TAU (photon counts, WIRE's protocol):
    Poisson(TAU * x) / TAU, mean x and variance x / TAU. Values are not clipped, so the
    noise keeps these statistics.
    """
    kind, level = parse_noise(spec)
    g = torch.Generator().manual_seed(seed)
    x = images.detach().cpu().float()
    if kind == "gaussian":
        noisy = x + level * torch.randn(x.shape, generator=g)
    else:
        noisy = torch.poisson(x.clamp(min=0) * level, generator=g) / level
    return noisy.to(images.device)


def denoise(noisy: torch.Tensor, clean: torch.Tensor, inits: list[str], cfg: dict,
            opts: dict, *, encoder: str | None = None
            ) -> tuple[dict[str, FitResult], str | None]:
    """Fits noisy images [K, H, W, C] from each init, PSNR / SSIM against ``clean``.

    cfg / opts as for ``superres.superres``. Returns (init -> result, encoder source).
    """
    net = dict(width=cfg["width"], layers=cfg["layers"], w0=cfg["w0"])
    weights, source = None, None
    if "strainer" in inits:
        weights, source = mri_encoder(encoder, net, shared=cfg["shared"], size=cfg["size"],
                                      steps=cfg["pretrain_steps"], lr=cfg["lr"], opts=opts)
    results = {init: fit_many(noisy, init, init_weights=weights if init == "strainer" else None,
                              steps=cfg["steps"], lr=cfg["lr"], log_every=cfg["log_every"],
                              reference=clean, desc=f"denoise {init}",
                              transfer_lr=cfg["strainer_lr"] if init == "strainer" else (1.0, 1.0),
                              **net, **opts)
               for init in inits}
    return results, source


def best_and_final(result: FitResult) -> dict:
    """Mean-PSNR peak and end of one fit: best_step, best_psnr, final_step, final_psnr."""
    curve = [float(np.mean(v)) for v in result.psnr]
    best = int(np.argmax(curve))
    return dict(best_step=result.step[best], best_psnr=curve[best],
                final_step=result.step[-1], final_psnr=curve[-1])


def add_parser(sub: argparse._SubParsersAction, common: Callable) -> None:
    """Registers ``denoise``; ``common(parser)`` adds the CLI's device/seed options."""
    p = sub.add_parser("denoise", help="denoise images with an INR fit (default: the embedded "
                                       "MRI test slices)")
    p.add_argument("image", nargs="*", help="clean image files / folders (default: MRI test "
                                            "split); the noise is added, seeded by --seed")
    p.add_argument("--noise", default="gaussian:0.1",
                   help="gaussian:SIGMA or poisson:TAU (default gaussian:0.1)")
    p.add_argument("--init", default="siren,strainer",
                   help=f"comma list of {', '.join(TASK_INITS)} (default: both, compared)")
    p.add_argument("--encoder", help="STRAINER checkpoint (default: pretrain on the embedded "
                                     "MRI train split, cached)")
    p.add_argument("--out", required=True, help="output folder")
    add_model_options(p, "image side in px (CPU default 64)")
    add_transfer_option(p)
    common(p)


def run(args: argparse.Namespace, opts: dict) -> None:
    """``strainer-fast denoise``: writes the report, metrics.json and PNGs to ``--out``."""
    inits = parse_inits(args.init)
    parse_noise(args.noise)
    cfg = dict(task_config(args, DENOISE_CPU, DENOISE_GPU), strainer_lr=args.strainer_lr)
    sources = args.image or default_split()[1]
    t0 = time.perf_counter()
    clean, names = load_images(sources, cfg["size"], args.gray)
    noisy = add_noise(clean, args.noise, opts["seed"])
    results, source = denoise(noisy, clean, inits, cfg, opts, encoder=args.encoder)
    out = Path(args.out)
    for i, name in enumerate(names):
        save_png(noisy[i], out / "noisy" / f"{Path(name).stem}.png")
        for init, r in results.items():
            save_png(r.recon[i], out / init / f"{Path(name).stem}.png")
    summary = {m: best_and_final(r) for m, r in results.items()}
    noisy_psnr = float(-10 * torch.log10(((noisy.clamp(0, 1) - clean) ** 2).mean()))
    text = "; ".join(f"{m}: best mean PSNR {s['best_psnr']:.2f} dB at step {s['best_step']}, "
                     f"final {s['final_psnr']:.2f} dB at step {s['final_step']}"
                     for m, s in summary.items())
    notes = (f"Noise {args.noise} (seed {opts['seed']}); PSNR of the noisy input (clipped to "
             f"[0, 1]) against the clean images: {noisy_psnr:.2f} dB (files in `noisy/`). "
             f"Metrics compare each fit with the clean images; outputs at the final step in "
             f"`<init>/`. STRAINER encoder: {source}.\n\n{text}.\n\n"
             f"Total wall time (incl. any pretraining): {time.perf_counter() - t0:.1f} s.")
    cfg = dict(cfg, noise=args.noise, inits=inits, encoder=source, seed=opts["seed"],
               images=[str(s) for s in sources])
    write_report(out, results, clean, names, cfg, device=str(resolve_device(args.device)),
                 title=f"denoising ({args.noise})", notes=notes,
                 summary=dict(summary, noisy_psnr=noisy_psnr))
    print(text, file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
