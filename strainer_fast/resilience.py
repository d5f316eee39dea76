"""Fault tolerance for ``fit.train_loop``: training-state checkpoints, resume, divergence guard.

A ``TrainGuard`` is handed to ``train_loop`` (via ``pretrain`` / ``fit_many``):

- every ``every`` steps it writes this rank's full training state (weights, Adam state with
  its learning rate, RNG state, step, training wall time, logged curves) atomically to
  ``state_dir/rank{r}of{w}.step{N}.pt``, keeping the newest ``keep`` files;
- ``resume=True`` loads the newest step that every rank has on disk, so a killed run
  continues where it stopped and (training being deterministic: full-batch steps, no data
  shuffling) ends with the same weights as an uninterrupted run;
- a non-finite loss, or a non-finite weight found at a snapshot, never reaches a checkpoint:
  the run rolls back to the last good in-memory snapshot (taken every ``snapshot_every``
  steps and at every checkpoint), multiplies the learning rate by ``lr_factor``, prints one
  line saying so, and continues; after ``max_restores`` roll-backs it raises RuntimeError.

State files are loaded with ``torch.load(weights_only=True)``. A finished run deletes its
state files.
"""

from __future__ import annotations

import copy
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .checkpoint import atomic_save

__all__ = ["TrainGuard", "STATE_FORMAT"]

STATE_FORMAT = "strainer_fast/train-state/1"


def _rng_state() -> dict:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _all_finite(model: nn.Module) -> bool:
    return all(bool(p.detach().isfinite().all()) for p in model.parameters())


class TrainGuard:
    """Checkpoint / resume / divergence policy of one training run on one rank.

    ``fingerprint``: run settings that must match on resume (e.g. lr, image names, size);
    ``all_ok(flag)`` and ``all_gather(obj)`` make decisions collective across ranks
    (defaults: a single process).
    """

    def __init__(
        self,
        state_dir: str | Path | None = None,
        *,
        every: int = 0,
        resume: bool = False,
        fingerprint: dict | None = None,
        snapshot_every: int = 100,
        lr_factor: float = 0.5,
        max_restores: int = 8,
        keep: int = 2,
        rank: int = 0,
        world: int = 1,
        all_ok: Callable[[bool], bool] = bool,
        all_gather: Callable[[object], list] = lambda obj: [obj],
    ) -> None:
        if every < 0:
            raise ValueError(f"checkpoint interval must be >= 0, got {every}")
        if (every or resume) and state_dir is None:
            raise ValueError("checkpointing / resume need a state folder")
        self.state_dir = None if state_dir is None else Path(state_dir)
        self.every, self.resume, self.keep = every, resume, max(keep, 1)
        self.fingerprint = dict(fingerprint or {})
        self.snapshot_every = every or snapshot_every
        self.lr_factor, self.max_restores = lr_factor, max_restores
        self.rank, self.world = rank, world
        self.all_ok, self.all_gather = all_ok, all_gather
        self.history: dict[str, list] = {}  # logged curves, saved and restored with the state
        self.restores = 0
        self.resumed_from: int | None = None
        self._snap: dict | None = None

    @classmethod
    def for_run(cls, state_dir: str | Path, *, every: int = 0, resume: bool = False,
                fingerprint: dict | None = None) -> TrainGuard:
        """A guard for this process's rank of the current ``torch.distributed`` run (or a
        single process)."""
        rank, world = distributed.rank_world()
        return cls(state_dir, every=every, resume=resume, fingerprint=fingerprint, rank=rank,
                   world=world, all_ok=distributed.all_ok, all_gather=distributed.all_gather)

    # -- state files ---------------------------------------------------------------------
    def _file(self, step: int) -> Path:
        assert self.state_dir is not None
        return self.state_dir / f"rank{self.rank}of{self.world}.step{step:09d}.pt"

    def _steps_on_disk(self) -> list[int]:
        if self.state_dir is None or not self.state_dir.is_dir():
            return []
        pat = re.compile(rf"rank{self.rank}of{self.world}\.step(\d+)\.pt$")
        return sorted(int(m.group(1)) for p in self.state_dir.iterdir()
                      if (m := pat.match(p.name)))

    def _state(self, step: int, wall: float, model: nn.Module,
               opt: torch.optim.Optimizer) -> dict:
        return {"format": STATE_FORMAT, "step": step, "wall": wall,
                "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "optim": copy.deepcopy(opt.state_dict()), "rng": _rng_state(),
                "history": copy.deepcopy(self.history), "fingerprint": self.fingerprint,
                "restores": self.restores}

    def _load(self, state: dict, model: nn.Module, opt: torch.optim.Optimizer) -> tuple[int, float]:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        _set_rng_state(state["rng"])
        for key, saved in state["history"].items():
            if key in self.history:
                self.history[key][:] = copy.deepcopy(saved)
        self.restores = state.get("restores", 0)
        return state["step"], state["wall"]

    def _read(self, step: int, model: nn.Module) -> dict:
        path = self._file(step)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt / foreign file
            raise ValueError(f"{path}: not a readable training state ({type(exc).__name__})"
                             ) from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"{path}: not a strainer_fast training state")
        mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        saved = {k: tuple(v.shape) for k, v in state["model"].items()}
        if mine != saved:
            raise ValueError(f"{path}: training state is from a different model "
                             "(parameter shapes differ); cannot resume")
        diff = sorted(k for k in set(self.fingerprint) | set(state["fingerprint"])
                      if self.fingerprint.get(k) != state["fingerprint"].get(k))
        if diff:
            raise ValueError(f"{path}: cannot resume, settings differ from the saved run: "
                             + ", ".join(diff))
        return state

    # -- hooks called by train_loop ------------------------------------------------------
    def begin(self, model: nn.Module, opt: torch.optim.Optimizer) -> tuple[int, float]:
        """(step, training wall s) to start from: the resumed state's or (0, 0.0)."""
        step, wall = 0, 0.0
        if self.resume:
            mine = set(self._steps_on_disk())
            common = set.intersection(*(set(s) for s in self.all_gather(sorted(mine))))
            if common:
                step, wall = self._load(self._read(max(common), model), model, opt)
                self.resumed_from = step
                self._say(f"resumed from step {step} ({self.state_dir})")
            elif any(self.all_gather(bool(mine))):
                raise ValueError(f"{self.state_dir}: the ranks' training states share no "
                                 "step; cannot resume")
            else:
                self._say(f"no training state in {self.state_dir}; starting from step 0")
        elif self.every and any(self.all_gather(bool(self._steps_on_disk()))):
            raise ValueError(f"{self.state_dir} holds the training state of an earlier run; "
                             "continue it with --resume or delete the folder")
        self._snap = self._state(step, wall, model, opt)
        return step, wall

    def check_loss(self, loss: float, step: int, model: nn.Module,
                   opt: torch.optim.Optimizer) -> tuple[int, float] | None:
        """Before the optimizer step: rolls back on a non-finite (global) loss."""
        if math.isfinite(loss):
            return None
        return self._restore(model, opt, f"non-finite loss ({loss}) at step {step + 1}")

    def after_step(self, step: int, wall: float, model: nn.Module,
                   opt: torch.optim.Optimizer) -> tuple[int, float] | None:
        """After optimizer step ``step``: snapshot / checkpoint, or roll back on NaN weights."""
        at_ckpt = bool(self.every) and step % self.every == 0
        if not (at_ckpt or step % self.snapshot_every == 0):
            return None
        if not self.all_ok(_all_finite(model)):
            return self._restore(model, opt, f"non-finite weights after step {step}")
        self._snap = self._state(step, wall, model, opt)
        if at_ckpt:
            atomic_save(self._snap, self._file(step))
            for old in self._steps_on_disk()[:-self.keep]:
                self._file(old).unlink(missing_ok=True)
        return None

    def finish(self) -> None:
        """The run completed: deletes this rank's state files."""
        for step in self._steps_on_disk():
            self._file(step).unlink(missing_ok=True)
        self.all_gather(None)  # every rank has deleted its files (a barrier)
        if self.state_dir is not None and self.state_dir.is_dir() and self.rank == 0:
            try:
                self.state_dir.rmdir()
            except OSError:  # other ranks' files still there, or foreign files
                pass

    def _restore(self, model: nn.Module, opt: torch.optim.Optimizer,
                 reason: str) -> tuple[int, float]:
        assert self._snap is not None, "begin() not called"
        if self.restores >= self.max_restores:
            raise RuntimeError(f"training diverged: {reason}, after {self.restores} roll-backs; "
                               "giving up (try a lower --lr)")
        lrs = [g["lr"] * self.lr_factor for g in opt.param_groups]
        restores = self.restores + 1
        step, wall = self._load(self._snap, model, opt)
        self.restores = restores
        for g, lr in zip(opt.param_groups, lrs):
            g["lr"] = lr
        self._say(f"{reason}: rolled back to step {step}, learning rate lowered to "
                  f"{lrs[0]:.3g}")
        return step, wall

    def _say(self, text: str) -> None:
        if self.rank == 0:
            print(f"strainer-fast: {text}", file=sys.stderr, flush=True)
