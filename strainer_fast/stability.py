"""Opt-in stabilised test-time fitting, and statistics of PSNR drops while fitting.

Fitting a SIREN with Adam (lr 1e-4) sometimes loses several dB in a few steps and takes
many steps to recover. ``fit_many(..., stabilize=MODE)`` (the ``train.Stabilize`` callback)
picks one of ``STABILIZE``:

- ``"off"``: the paper's plain Adam (default);
- ``"cosine"``: linear learning-rate warm-up over the first 5% of the steps, then cosine
  decay to 10% of the base rate;
- ``"decay"``: the same cosine decay from the first step on, no warm-up;
- ``"clip"``: per-network gradient-norm clipping at 3x that network's running mean norm;
- ``"revert"``: when a network's training PSNR falls more than 1 dB below its best so far,
  its weights and Adam moments go back to the best iterate and its step size is halved.

- ``"decay+clip"`` / ``"decay+revert"``: the decay schedule with that per-network stabiliser;
- ``"wsd"``: warm-up-free "stable then decay": the base rate for the first half of the
  steps, then cosine decay to 10% of it over the second half;
- ``"amsgrad"``: Adam's AMSGrad variant (the second-moment estimate never decreases, so the
  step size cannot grow as the gradients shrink); ``"amsgrad+clip"``: with clipping.

``"clip"`` and ``"revert"`` act per network and need independent networks (``shared=0``,
as in ``fit_many``), so K batched fits stay equal to K separate ones.

Whatever the mode, ``fit_many`` returns the best iterate by default (``keep="best"``, the
``train.KeepBest`` callback), so a drop at the end of a fit no longer lowers its result.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .models import Strainer

__all__ = ["STABILIZE", "Stabilizer", "make_stabilizer", "find_drops", "drop_stats",
           "check_independent"]

STABILIZE = ("off", "cosine", "decay", "clip", "revert", "decay+clip", "decay+revert",
             "amsgrad", "amsgrad+clip", "wsd")


def find_drops(curve, threshold_db: float = 1.0, start: int = 0) -> list[dict]:
    """Drops in one PSNR-vs-step curve [T] (dB).

    A drop episode runs from the first step below the best PSNR so far until the curve gets
    back to that best (or ends); it counts when its depth (best - lowest PSNR in it) exceeds
    ``threshold_db``. ``start``: only the curve from index ``start`` on is looked at for
    depths (the best so far still counts every earlier index), so an episode that began
    earlier counts by its depth from ``start`` on. Returns one dict per drop: start and end
    index (end exclusive), depth_db, steps (length) and recovered (bool).
    """
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1:
        raise ValueError(f"curve must be 1-D, got shape {c.shape}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if c.size == 0:
        return []
    below = np.maximum.accumulate(c) - c
    inside = np.concatenate([[False], below > 0, [False]])
    edges = np.flatnonzero(inside[1:] != inside[:-1])
    starts, ends = edges[0::2], edges[1::2]
    if starts.size == 0:
        return []
    depths = np.maximum.reduceat(np.where(np.arange(c.size) >= start, below, 0.0), starts)
    return [dict(start=int(s), end=int(e), depth_db=float(d), steps=int(e - s),
                 recovered=bool(e < c.size))
            for s, e, d in zip(starts, ends, depths) if d > threshold_db]


def drop_stats(curves, threshold_db: float = 1.0, start: int = 0) -> dict:
    """Summary over curves [T, K] (dB, one column per signal): per-signal drop counts,
    all drop depths (dB), steps spent in drops, and final / best PSNR per signal.
    ``start``: drops are looked for from curve index ``start`` on (``find_drops``)."""
    c = np.asarray(curves, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"curves must be [T, K], got shape {c.shape}")
    per = [find_drops(c[:, k], threshold_db, start) for k in range(c.shape[1])]
    depths = [d["depth_db"] for drops in per for d in drops]
    return dict(threshold_db=threshold_db, start=start, count=[len(d) for d in per],
                depths_db=depths, max_depth_db=max(depths, default=0.0),
                steps_in_drops=[sum(d["steps"] for d in drops) for drops in per],
                final_psnr=c[-1].tolist(), best_psnr=c.max(0).tolist())


class Stabilizer:
    """Plain Adam (``"off"``). ``train.Stabilize`` calls ``before_step`` after the backward pass
    and ``after_step`` after ``opt.step()``, with the step's per-network MSE [S]."""

    def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
        self.model, self.opt, self.steps = model, opt, steps
        self.params = [p for g in opt.param_groups for p in g["params"]]

    def before_step(self, step: int, mse: torch.Tensor) -> None:
        pass

    def after_step(self, step: int, mse: torch.Tensor) -> None:
        pass


class _Cosine(Stabilizer):
    warmup_fraction = 0.05

    def __init__(self, model, opt, steps) -> None:
        super().__init__(model, opt, steps)
        self.base = [g["lr"] for g in opt.param_groups]
        self.warmup = max(1, steps // 20) if self.warmup_fraction else 0

    def before_step(self, step, mse) -> None:
        if step <= self.warmup:
            f = step / self.warmup
        else:
            t = (step - self.warmup) / max(1, self.steps - self.warmup)
            f = 0.1 + 0.45 * (1 + math.cos(math.pi * t))
        for g, lr in zip(self.opt.param_groups, self.base):
            g["lr"] = lr * f


def check_independent(model: torch.nn.Module, what: str) -> None:
    """ValueError unless ``model`` is K independent networks (``Strainer``, shared=0), each
    parameter's first dimension indexing the network; ``what`` names the option."""
    if not isinstance(model, Strainer) or len(model.enc_w):
        raise ValueError(f"{what} needs independent networks (Strainer, shared=0)")


def _bcast(v: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (p.dim() - 1)))


class _Clip(Stabilizer):
    factor, beta = 3.0, 0.99

    def __init__(self, model, opt, steps) -> None:
        super().__init__(model, opt, steps)
        check_independent(model, "stabilize='clip'")
        self.mean: torch.Tensor | None = None

    def before_step(self, step, mse) -> None:
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()
        if self.mean is None:
            self.mean = norm.clone()
        scale = (self.factor * self.mean / norm.clamp_min(1e-30)).clamp(max=1.0)
        for g in grads:
            g.mul_(_bcast(scale, g))
        self.mean.mul_(self.beta).add_((1 - self.beta) * norm * scale)


class _Revert(Stabilizer):
    drop_db, lr_factor = 1.0, 0.5

    def __init__(self, model, opt, steps) -> None:
        super().__init__(model, opt, steps)
        check_independent(model, "stabilize='revert'")
        self.best = torch.full((model.signals,), -math.inf, device=self.params[0].device)
        self.scale = torch.ones_like(self.best)
        self.snap = [p.detach().clone() for p in self.params]
        self.snap_m = [torch.zeros_like(p) for p in self.params]
        self.snap_v = [torch.zeros_like(p) for p in self.params]
        self.prev = [torch.empty_like(p) for p in self.params]
        self.dropped = torch.zeros_like(self.best, dtype=torch.bool)
        self.reverts = torch.zeros((), dtype=torch.long, device=self.best.device)

    def before_step(self, step, mse) -> None:
        # mse belongs to the weights before this step's update. PSNR up to the value range's
        # constant 10 log10(width^2): only differences (drops) are compared.
        cur = -10 * torch.log10(mse.detach().clamp_min(1e-30))
        better = cur > self.best
        self.dropped = cur < self.best - self.drop_db
        self.best = torch.where(better, cur, self.best)
        with torch.no_grad():  # masks, not host reads: no sync per step
            for i, p in enumerate(self.params):
                self.prev[i].copy_(p)
                state = self.opt.state.get(p, {})
                m = _bcast(better, p)
                self.snap[i].copy_(torch.where(m, p, self.snap[i]))
                if "exp_avg" in state:
                    self.snap_m[i].copy_(torch.where(m, state["exp_avg"], self.snap_m[i]))
                    self.snap_v[i].copy_(torch.where(m, state["exp_avg_sq"], self.snap_v[i]))

    def after_step(self, step, mse) -> None:
        self.scale = torch.where(self.dropped, self.scale * self.lr_factor, self.scale)
        self.reverts += self.dropped.sum()
        with torch.no_grad():
            for i, p in enumerate(self.params):
                # per-network step size: scale this step's update
                p.copy_(self.prev[i] + _bcast(self.scale, p) * (p - self.prev[i]))
                m = _bcast(self.dropped, p)
                state = self.opt.state[p]
                p.copy_(torch.where(m, self.snap[i], p))
                state["exp_avg"].copy_(torch.where(m, self.snap_m[i], state["exp_avg"]))
                state["exp_avg_sq"].copy_(torch.where(m, self.snap_v[i], state["exp_avg_sq"]))


class _Decay(_Cosine):
    warmup_fraction = 0.0


class _WSD(_Cosine):
    warmup_fraction = 0.0

    def before_step(self, step, mse) -> None:
        half = self.steps // 2
        t = max(0, step - half) / max(1, self.steps - half)
        for g, lr in zip(self.opt.param_groups, self.base):
            g["lr"] = lr * (0.1 + 0.45 * (1 + math.cos(math.pi * t)))


class _AMSGrad(Stabilizer):
    def __init__(self, model, opt, steps) -> None:
        super().__init__(model, opt, steps)
        if not isinstance(opt, torch.optim.Adam):
            raise ValueError("stabilize='amsgrad' needs torch.optim.Adam, got "
                             f"{type(opt).__name__}")
        for g in opt.param_groups:
            g["amsgrad"] = True


class _Chain(Stabilizer):
    """Several stabilisers in order (a schedule first, then a per-network one)."""

    def __init__(self, parts: list[Stabilizer]) -> None:
        super().__init__(parts[0].model, parts[0].opt, parts[0].steps)
        self.parts = parts

    def before_step(self, step, mse) -> None:
        for s in self.parts:
            s.before_step(step, mse)

    def after_step(self, step, mse) -> None:
        for s in self.parts:
            s.after_step(step, mse)


_MODES = {"off": Stabilizer, "cosine": _Cosine, "decay": _Decay, "clip": _Clip,
          "amsgrad": _AMSGrad, "wsd": _WSD,
          "revert": _Revert}


def make_stabilizer(mode: str, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    steps: int) -> Stabilizer:
    """The stabiliser for ``mode`` (one of ``STABILIZE``; "a+b" chains a and b)."""
    if mode not in STABILIZE:
        raise ValueError(f"stabilize must be one of {STABILIZE}, got {mode!r}")
    parts = [_MODES[m](model, opt, steps) for m in mode.split("+")]
    return parts[0] if len(parts) == 1 else _Chain(parts)
