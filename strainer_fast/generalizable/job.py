"""``strainer-fast generalizable train`` and the ``--gen-checkpoints`` flag of ``compare``."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import GeneralizableJob, validate, write_config
from ..train import Checkpointer
from ..value_range import range_fingerprint
from .checkpoint import KINDS
from .training import train_generalizable

__all__ = ["generalizable_job", "parse_checkpoints"]


def parse_checkpoints(text: str | None) -> dict[str, str]:
    """"transinr=T.pt,ipc=I.pt" -> {"transinr": "T.pt", "ipc": "I.pt"} (None -> {})."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        kind, sep, path = (v.strip() for v in item.partition("="))
        if not sep or kind not in KINDS or not path:
            raise ValueError(f"--gen-checkpoints: expected KIND=PATH with KIND in "
                             f"{', '.join(KINDS)}, got {item!r}")
        out[kind] = path
    return out


def generalizable_job(cfg: GeneralizableJob) -> None:
    """Trains the model, writes the checkpoint ``cfg.out`` and ``OUT`` minus .pt +
    .config.json."""
    validate(cfg)
    m, rt = cfg.model, cfg.runtime
    arch = dict(size=cfg.size, width=m.width, layers=m.layers, w0=m.w0, dim=cfg.dim,
                depth=cfg.depth, heads=cfg.heads, patch=cfg.patch, groups=cfg.groups,
                rank=cfg.rank)
    write_config(Path(cfg.out).with_suffix(".config.json"), "generalizable train", cfg)
    ckpt = Checkpointer(f"{cfg.out}.state", every=cfg.checkpoint_every, resume=cfg.resume,
                        fingerprint=dict(arch, kind=cfg.kind, lr=cfg.train.lr, batch=cfg.batch,
                                         points=cfg.points, seed=rt.seed,
                                         precision=rt.precision,
                                         **range_fingerprint(cfg.value_range)))
    model = train_generalizable(cfg.kind, steps=cfg.train.steps, lr=cfg.train.lr,
                                batch=cfg.batch, points=cfg.points, out=cfg.out,
                                checkpoint=ckpt, seed=rt.seed, device=rt.device,
                                backend=rt.backend, precision=rt.precision,
                                progress=rt.progress, value_range=cfg.value_range, **arch)
    print(f"wrote {cfg.out} ({cfg.kind}, {cfg.train.steps} steps, "
          f"{model.meta['wall_s']:.0f} s; validation PSNR "
          f"{model.meta['validation_psnr']:.2f} dB)", file=sys.stderr)
