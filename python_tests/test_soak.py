"""Soak: repeated pretrain + fit cycles (with training-state checkpoints and resume) in one
process must not grow its resident memory (read from /proc/self/statm).

Default: ~20 s of cycles after a short warm-up; ``STRAINER_SOAK_SECONDS=300`` soaks for
that long instead."""

from __future__ import annotations

import gc
import os
import statistics
import time
from pathlib import Path

import pytest
import torch

from strainer_fast.fit import fit_many
from strainer_fast.pretrain import pretrain
from strainer_fast.train import Checkpointer

SECONDS = float(os.environ.get("STRAINER_SOAK_SECONDS", "20"))
STATM = Path("/proc/self/statm")


def rss_mb() -> float:
    gc.collect()
    return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cycle(images: torch.Tensor, state: Path) -> None:
    kw = dict(width=48, layers=3, device="cpu", progress=False)
    model = pretrain(images, shared=2, steps=20, lr=1e-3,
                     checkpoint=Checkpointer(state / "p", every=5), **kw)
    fit_many(images[:2], "strainer", init_weights=model.encoder_layers(), steps=20, lr=1e-3,
             log_every=5, checkpoint=Checkpointer(state / "f", every=5), **kw)


@pytest.mark.skipif(not STATM.exists(), reason="needs /proc/self/statm (Linux)")
def test_no_memory_growth(tmp_path):
    images = torch.rand(4, 24, 24, 3, generator=torch.Generator().manual_seed(0))
    for _ in range(3):  # warm-up: allocator pools, kernels, lazy imports
        cycle(images, tmp_path)
    samples, t0 = [rss_mb()], time.monotonic()
    while time.monotonic() - t0 < SECONDS or len(samples) < 8:
        cycle(images, tmp_path)
        samples.append(rss_mb())
    half = len(samples) // 2
    growth = statistics.median(samples[half:]) - statistics.median(samples[:half])
    leaked_per_cycle = (samples[-1] - samples[0]) / (len(samples) - 1)
    print(f"soak: {len(samples) - 1} cycles, RSS {samples[0]:.1f} -> {samples[-1]:.1f} MiB")
    assert growth < 8.0, f"RSS grew {growth:.1f} MiB between halves: {samples}"
    assert leaked_per_cycle < 0.5, f"{leaked_per_cycle:.2f} MiB per cycle: {samples}"
    assert not any(tmp_path.rglob("*.pt"))  # finished runs leave no training state
