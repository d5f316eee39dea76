"""The training engine: one loop (``Trainer``), composable callbacks, objectives.

``train(model, objective, steps, ...)`` is what every job calls: it adds the divergence
guard and the progress bar to the given callbacks and runs the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..value_range import DEFAULT_VALUE_RANGE, ValueRange
from .callbacks import (Checkpointer, DivergenceGuard, GradSync, KeepBest, PrecisionSchedule,
                        Progress, Stabilize)
from .engine import STATE_FORMAT, Callback, Trainer
from .objectives import batch_mse, image_mse

__all__ = ["train", "Trainer", "Callback", "Checkpointer", "DivergenceGuard", "GradSync",
           "Progress", "Stabilize", "KeepBest", "PrecisionSchedule", "image_mse", "batch_mse",
           "STATE_FORMAT"]


def train(model: nn.Module, objective: Callable[[int], torch.Tensor], steps: int, *,
          lr: float = 1e-4, optimizer: torch.optim.Optimizer | None = None,
          callbacks: Sequence[Callback] = (), log_every: int = 0, progress: bool = True,
          desc: str = "train", generator: torch.Generator | None = None,
          value_range: str | ValueRange = DEFAULT_VALUE_RANGE) -> Trainer:
    """Runs ``steps`` steps of ``optimizer`` (default: Adam over ``model.parameters()`` at
    ``lr``) on the sum of ``objective(step)`` [S]; returns the finished ``Trainer``.

    A ``DivergenceGuard`` is added unless one is given; ``progress`` adds a ``Progress`` bar
    titled ``desc`` (its PSNR reads the losses as MSEs of targets in ``value_range``).
    """
    cbs = list(callbacks)
    if not any(isinstance(c, DivergenceGuard) for c in cbs):
        cbs.append(DivergenceGuard())
    if progress:
        cbs.append(Progress(desc, value_range=value_range))
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    return Trainer(model, objective, steps, opt, callbacks=cbs, log_every=log_every,
                   generator=generator).run()
