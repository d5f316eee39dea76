"""Denoising: fit the noisy observation, track PSNR against the clean image.

INRs fit the noise too once they have fitted the image, so the PSNR-vs-step curve against
the clean image peaks: the report gives the best logged step and the final step.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import DenoiseJob, validate, write_config
from ..data import default_split, load_images
from ..fit import FitResult, fit_many
from ..jobs import check_image_job
from ..models import Encoder, resolve_device
from ..report import write_report
from .common import fit_kwargs, parse_inits, resolve_image_task, save_png, task_encoder

__all__ = ["parse_noise", "add_noise", "denoise", "best_and_final", "denoise_job"]


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


def denoise(noisy: torch.Tensor, init: str | Encoder = "siren", *,
            clean: torch.Tensor | None = None, steps: int = 300, lr: float = 1e-4,
            log_every: int = 5, transfer_lr: tuple[float, float] = (0.03, 10.0),
            **kwargs: Any) -> FitResult:
    """Fits noisy images [K, H, W, C] from ``init`` ("siren" or a pretrained ``Encoder``);
    PSNR / SSIM against ``clean`` (default: the noisy images). ``transfer_lr``: the
    STRAINER init's encoder / decoder learning-rate multipliers (ignored for SIREN);
    ``kwargs``: more ``fit_many`` options."""
    is_strainer = not isinstance(init, str) or init == "strainer"
    kwargs.setdefault("desc", f"denoise {'strainer' if is_strainer else init}")
    return fit_many(noisy, init, steps=steps, lr=lr, log_every=log_every, reference=clean,
                    transfer_lr=transfer_lr if is_strainer else (1.0, 1.0), **kwargs)


def best_and_final(result: FitResult) -> dict:
    """Mean-PSNR peak and end of one fit: best_step, best_psnr, final_step, final_psnr."""
    curve = [float(np.mean(v)) for v in result.psnr]
    best = int(np.argmax(curve))
    return dict(best_step=result.step[best], best_psnr=curve[best],
                final_step=result.step[-1], final_psnr=curve[-1])


def denoise_job(cfg: DenoiseJob) -> None:
    """``strainer-fast denoise``: writes the report, metrics.json, config.json and PNGs."""
    inits = parse_inits(cfg.inits)
    parse_noise(cfg.noise)
    validate(cfg)
    t0 = time.perf_counter()
    encoder, source = task_encoder(cfg, resolve_image_task(cfg, "denoise"), inits)
    sources = cfg.images = cfg.images or [str(p) for p in default_split()[1]]
    clean, names = load_images(sources, cfg.size, cfg.gray)
    noisy = add_noise(clean, cfg.noise, cfg.runtime.seed)
    check_image_job(cfg.runtime.device, "denoising", len(names), cfg.size, cfg.gray,
                    cfg.fit.points or None, cfg.model.width, cfg.model.layers)
    out = Path(cfg.out)
    write_config(out / "config.json", "denoise", cfg)
    results = {}
    for init in inits:
        start, kw = fit_kwargs(cfg, encoder, init)
        results[init] = denoise(noisy, start, clean=clean, **kw)
    for i, name in enumerate(names):
        save_png(noisy[i], out / "noisy" / f"{Path(name).stem}.png")
        for init, r in results.items():
            save_png(r.recon[i], out / init / f"{Path(name).stem}.png")
    summary = {m: best_and_final(r) for m, r in results.items()}
    noisy_psnr = float(-10 * torch.log10(((noisy.clamp(0, 1) - clean) ** 2).mean()))
    text = "; ".join(f"{m}: best mean PSNR {s['best_psnr']:.2f} dB at step {s['best_step']}, "
                     f"final {s['final_psnr']:.2f} dB at step {s['final_step']}"
                     for m, s in summary.items())
    notes = (f"Noise {cfg.noise} (seed {cfg.runtime.seed}); PSNR of the noisy input (clipped "
             f"to [0, 1]) against the clean images: {noisy_psnr:.2f} dB (files in `noisy/`). "
             f"Metrics compare each fit with the clean images; the outputs in `<init>/` and "
             f"the final metrics are of the returned iterate (--keep {cfg.fit.keep}). "
             f"STRAINER encoder: {source}.\n\n{text}.\n\n"
             f"Total wall time (incl. any pretraining): {time.perf_counter() - t0:.1f} s.")
    write_report(out, results, clean, names, cfg,
                 device=str(resolve_device(cfg.runtime.device)),
                 title=f"denoising ({cfg.noise})", notes=notes,
                 summary=dict(summary, noisy_psnr=noisy_psnr),
                 extra_config=dict(encoder_source=source))
    print(text, file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
