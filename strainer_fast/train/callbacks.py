"""Composable training behaviour for ``Trainer``: progress bar, divergence guard,
training-state checkpoints / resume, distributed gradient sync, stabilisers, best iterate,
precision schedule."""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import _extension, distributed
from ..checkpoint import atomic_save
from ..stability import _bcast, check_independent, make_stabilizer
from ..value_range import DEFAULT_VALUE_RANGE, ValueRange, resolve
from .engine import STATE_FORMAT, Callback, Trainer

__all__ = ["Progress", "DivergenceGuard", "Checkpointer", "GradSync", "Stabilize", "KeepBest",
           "PrecisionSchedule", "PRECISION_SCHEDULES", "say"]

PRECISION_SCHEDULES = ("bf16-then-exact",)


def say(text: str) -> None:
    """One status line on stderr (rank 0 only)."""
    if distributed.rank_world()[0] == 0:
        print(f"strainer-fast: {text}", file=sys.stderr, flush=True)


def steps_on_disk(state_dir: Path, pattern: str) -> list[int]:
    """Sorted steps of the state files in ``state_dir`` whose name matches ``pattern`` (one
    group: the step)."""
    if not state_dir.is_dir():
        return []
    pat = re.compile(pattern)
    return sorted(int(m.group(1)) for p in state_dir.iterdir() if (m := pat.match(p.name)))


def load_state_file(path: Path, fmt: str, kind: str) -> dict:
    """A saved training state of format ``fmt``; a clear error for a corrupt or foreign file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt / foreign file
        raise ValueError(f"{path}: not a readable training state ({type(exc).__name__})"
                         ) from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise ValueError(f"{path}: not a strainer_fast {kind}")
    return state


def check_fingerprint(path: Path, mine: dict, state: dict) -> None:
    """Refuses to resume from ``state`` when the settings that shape the run differ."""
    theirs = state.get("fingerprint", {})
    diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if diff:
        raise ValueError(f"{path}: cannot resume, settings differ from the saved run: "
                         + ", ".join(diff))


class Progress(Callback):
    """tqdm bar with the live training PSNR (mean over signals, dB, on [0, 1] pixels of
    targets in ``value_range``), read every ``every`` steps (the only host sync it adds)."""

    order = 90

    def __init__(self, desc: str, every: int = 10,
                 value_range: str | ValueRange = DEFAULT_VALUE_RANGE) -> None:
        self.desc, self.every, self.bar = desc, every, None
        self.value_range = resolve(value_range)

    def begin(self, t: Trainer) -> None:
        self.bar = tqdm(total=t.steps, initial=t.step, desc=self.desc, leave=False,
                        dynamic_ncols=True)

    def after_step(self, t: Trainer, mse: torch.Tensor) -> bool:
        self.bar.update(1)
        if t.step % self.every == 0 or t.at_last_step(t.step):
            self.bar.set_postfix(psnr=f"{self.value_range.psnr(mse).mean().item():.2f}")
        return False

    def restored(self, t: Trainer) -> None:
        self.bar.reset(total=t.steps)
        self.bar.update(t.step)

    def end(self, t: Trainer) -> None:
        self.bar.close()


def _all_finite(model: torch.nn.Module) -> bool:
    return all(bool(p.detach().isfinite().all()) for p in model.parameters())


class DivergenceGuard(Callback):
    """Rolls back to the last good state on a non-finite loss or weight.

    The loss flag is read every ``check_every`` steps, at the last step (also one a
    callback ``stop`` s at: the guard runs after the default-order callbacks) and whenever a
    snapshot is due (every ``snapshot_every`` steps and before every saved training state);
    weights are checked at snapshots. A roll-back restores the snapshot, multiplies the
    learning rates by ``lr_factor`` and prints one line; after ``max_restores`` it raises
    RuntimeError. Decisions are collective across ranks.
    """

    order = 70
    key = "divergence"

    def __init__(self, *, snapshot_every: int = 100, check_every: int = 10,
                 lr_factor: float = 0.5, max_restores: int = 8) -> None:
        self.snapshot_every, self.check_every = snapshot_every, check_every
        self.lr_factor, self.max_restores = lr_factor, max_restores
        self.restores = 0
        self.snap: dict | None = None

    def state_dict(self) -> dict:
        return {"restores": self.restores}

    def load_state_dict(self, state: dict) -> None:
        self.restores = state["restores"]

    def begin(self, t: Trainer) -> None:
        self.snap = t.state_dict()

    def after_step(self, t: Trainer, mse: torch.Tensor) -> bool:
        step = t.step
        snapshot = step % self.snapshot_every == 0 or any(c.wants_state(step)
                                                          for c in t.callbacks)
        if not (snapshot or step % self.check_every == 0 or t.at_last_step(step)):
            return False
        if not t.loss_finite():
            return self._restore(t, f"non-finite loss at or before step {step}")
        if snapshot:
            if not distributed.all_ok(_all_finite(t.model)):
                return self._restore(t, f"non-finite weights after step {step}")
            self.snap = t.verified = t.state_dict()
        return False

    def _restore(self, t: Trainer, reason: str) -> bool:
        if self.restores >= self.max_restores:
            raise RuntimeError(f"training diverged: {reason}, after {self.restores} roll-backs; "
                               "giving up (try a lower --lr)")
        lrs = [g["lr"] * self.lr_factor for g in t.opt.param_groups]
        restores = self.restores + 1
        t.load_state_dict(self.snap)
        self.restores = restores
        for g, lr in zip(t.opt.param_groups, lrs):
            g["lr"] = lr
        say(f"{reason}: rolled back to step {t.step}, learning rate lowered to {lrs[0]:.3g}")
        return True


class Checkpointer(Callback):
    """Training-state files and resume for one rank of a run.

    Every ``every`` steps the verified training state goes atomically to
    ``state_dir/rank{r}of{w}.step{N}.pt`` (the newest ``keep`` are kept). ``resume`` loads
    the newest step every rank has; ``fingerprint`` (run settings) must match the saved one.
    A finished run deletes its files. Files are read with ``torch.load(weights_only=True)``.
    """

    order = 80

    def __init__(self, state_dir: str | Path, *, every: int = 0, resume: bool = False,
                 fingerprint: dict | None = None, keep: int = 2) -> None:
        if every < 0:
            raise ValueError(f"checkpoint interval must be >= 0, got {every}")
        self.state_dir = Path(state_dir)
        self.every, self.resume_run, self.keep = every, resume, max(keep, 1)
        self.fingerprint = dict(fingerprint or {})
        self.rank, self.world = distributed.rank_world()
        self.resumed_from: int | None = None

    def _file(self, step: int) -> Path:
        return self.state_dir / f"rank{self.rank}of{self.world}.step{step:09d}.pt"

    def _steps_on_disk(self) -> list[int]:
        return steps_on_disk(self.state_dir, rf"rank{self.rank}of{self.world}\.step(\d+)\.pt$")

    def _read(self, step: int, t: Trainer) -> dict:
        path = self._file(step)
        state = load_state_file(path, STATE_FORMAT, "training state")
        mine = {k: tuple(v.shape) for k, v in t.model.state_dict().items()}
        saved = {k: tuple(v.shape) for k, v in state["model"].items()}
        if mine != saved:
            raise ValueError(f"{path}: training state is from a different model "
                             "(parameter shapes differ); cannot resume")
        check_fingerprint(path, self.fingerprint, state)
        return state

    def resume(self, t: Trainer) -> None:
        mine = set(self._steps_on_disk())
        if self.resume_run:
            common = set.intersection(*(set(s) for s in distributed.all_gather(sorted(mine))))
            if common:
                state = self._read(max(common), t)
                t.load_state_dict(state)
                self.resumed_from = t.step
                say(f"resumed from step {t.step} ({self.state_dir})")
            elif any(distributed.all_gather(bool(mine))):
                raise ValueError(f"{self.state_dir}: the ranks' training states share no "
                                 "step; cannot resume")
            else:
                say(f"no training state in {self.state_dir}; starting from step 0")
        elif self.every and any(distributed.all_gather(bool(mine))):
            raise ValueError(f"{self.state_dir} holds the training state of an earlier run; "
                             "continue it with --resume or delete the folder")

    def wants_state(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0

    def after_step(self, t: Trainer, mse: torch.Tensor) -> bool:
        if self.wants_state(t.step):
            state = t.verified if t.verified and t.verified["step"] == t.step else t.state_dict()
            atomic_save(dict(state, fingerprint=self.fingerprint), self._file(t.step))
            for old in self._steps_on_disk()[:-self.keep]:
                self._file(old).unlink(missing_ok=True)
        return False

    def end(self, t: Trainer) -> None:
        for step in self._steps_on_disk():
            self._file(step).unlink(missing_ok=True)
        distributed.all_gather(None)  # every rank has deleted its files (a barrier)
        if self.state_dir.is_dir() and self.rank == 0:
            try:
                self.state_dir.rmdir()
            except OSError:  # other ranks' files still there, or foreign files
                pass


class GradSync(Callback):
    """Data-parallel pretraining: after backward, one all_reduce(SUM) of the flattened
    encoder gradients and the loss; the loss becomes the global loss."""

    order = 10

    def after_backward(self, t: Trainer, loss: torch.Tensor) -> torch.Tensor:
        return distributed.sum_encoder_grads(t.model, loss)


class Stabilize(Callback):
    """Test-time stabilisation mode ``mode`` (``stability.STABILIZE``); "off" does nothing."""

    order = 20

    def __init__(self, mode: str) -> None:
        self.mode, self.impl = mode, None

    def begin(self, t: Trainer) -> None:
        self.impl = make_stabilizer(self.mode, t.model, t.opt, t.steps)

    def before_step(self, t: Trainer, mse: torch.Tensor) -> None:
        self.impl.before_step(t.step + 1, mse)

    def after_step(self, t: Trainer, mse: torch.Tensor) -> bool:
        self.impl.after_step(t.step, mse)
        return False



class KeepBest(Callback):
    """Keeps, per network, the weights of the iterate with the lowest loss, and loads them
    into the model when the run completes (``fit_many(keep="best")``).

    Needs K independent networks (``Strainer``, shared=0; every parameter [K, ...]): a
    shared-encoder model (pretraining) is refused, as no per-network choice exists there.
    Only the weights are kept, not the optimizer state. ``per_step`` True: every iterate
    competes, scored by its training loss (the per-signal losses ``before_step`` gets
    belong to the weights before that step's update) and, at the end, the final weights by
    one more no-grad evaluation of the objective; a random-batch objective makes this a
    noisy choice. ``per_step`` False: only the weights ``offer``-ed compete (e.g. full-grid
    losses at the log points). Everything stays on the device (``torch.where``): no host
    sync per step. The kept weights, losses and steps are saved with the training state
    (``key``), so they survive roll-backs and resumes.

    Outside a ``Trainer``: ``attach(model)``, ``offer(step, loss)`` for each candidate,
    ``restore()``.
    """

    order = 25  # ends before the curves (order 30), which then describe the kept weights
    key = "keep_best"

    def __init__(self, per_step: bool = True) -> None:
        self.per_step = per_step
        self.params: list[torch.Tensor] = []
        self.weights: list[torch.Tensor] | None = None
        self.kept_loss: torch.Tensor | None = None  # [K] lowest loss so far (inf: none yet)
        self.kept_step: torch.Tensor | None = None  # [K] updates applied to the kept weights

    def attach(self, model: torch.nn.Module) -> None:
        """Watches ``model``'s parameters; a loaded state moves to their device."""
        check_independent(model, "keep='best'")
        self.params = list(model.parameters())
        dev = self.params[0].device
        if self.weights is None:
            self.weights = [p.detach().clone() for p in self.params]
            self.kept_loss = torch.full((model.signals,), float("inf"), device=dev)
            self.kept_step = torch.zeros(model.signals, dtype=torch.long, device=dev)
        else:
            self.weights = [w.to(dev) for w in self.weights]
            self.kept_loss, self.kept_step = self.kept_loss.to(dev), self.kept_step.to(dev)

    def offer(self, step: int, loss: torch.Tensor) -> None:
        """Candidate: the current weights, after ``step`` updates, with per-network losses
        [K]; kept where lower than the kept loss (a NaN loss never is)."""
        loss = loss.detach().to(self.kept_loss)
        better = loss < self.kept_loss
        self.kept_loss = torch.where(better, loss, self.kept_loss)
        self.kept_step = self.kept_step.masked_fill(better, step)
        with torch.no_grad():
            for w, p in zip(self.weights, self.params):
                w.copy_(torch.where(_bcast(better, p), p, w))

    def restore(self) -> None:
        """Loads the kept weights into the model."""
        with torch.no_grad():
            for w, p in zip(self.weights, self.params):
                p.copy_(w)

    def begin(self, t: Trainer) -> None:
        self.attach(t.model)

    def before_step(self, t: Trainer, mse: torch.Tensor) -> None:
        if self.per_step:
            self.offer(t.step, mse)

    def end(self, t: Trainer) -> None:
        if self.per_step:
            with torch.no_grad():
                self.offer(t.step, t.objective(t.step))
        self.restore()

    def state_dict(self) -> dict:
        return {"weights": self.weights, "loss": self.kept_loss, "step": self.kept_step}

    def load_state_dict(self, state: dict) -> None:
        # a roll-back hands device copies; a resume's CPU tensors move in ``attach``
        self.weights, self.kept_loss = state["weights"], state["loss"]
        self.kept_step = state["step"]


class PrecisionSchedule(Callback):
    """``"bf16-then-exact"`` (``fit_many(precision_schedule=...)``; off by default, no gain
    on validation): the model runs its fused ops in bf16 until its training PSNR stalls,
    then exact to the end.

    Switch rule: every ``every`` steps the mean over signals of the step's training PSNR
    (dB, a device scalar) is recorded; when it rose by less than ``min_gain_db`` per step over
    the last ``window`` steps, the model switches to "exact" for good (``switched_at``: the
    step). One host read every ``every`` steps until the switch, none after it. On a CPU
    without bf16 instructions (``_extension.CPU_HAS_NATIVE_BF16`` False) it warns and runs
    exact throughout. The switch step and the PSNR record are saved with the training state
    (``key``), so a roll-back or a resume keeps the phase. ``model``: one whose
    ``precision`` attribute is read at every forward (``models.Strainer``); the returned
    model keeps the precision of the last phase.
    """

    order = 60
    key = "precision_schedule"

    def __init__(self, schedule: str = "bf16-then-exact", *, every: int = 10, window: int = 20,
                 min_gain_db: float = 0.05) -> None:
        if schedule not in PRECISION_SCHEDULES:
            raise ValueError(f"precision_schedule must be one of {PRECISION_SCHEDULES}, got "
                             f"{schedule!r}")
        if every < 1 or window < every or window % every:
            raise ValueError(f"window ({window}) must be a positive multiple of every "
                             f"({every})")
        self.every, self.window, self.min_gain_db = every, window, min_gain_db
        self.switched_at: int | None = None
        self.history: list[torch.Tensor] = []  # mean training PSNR at the recent checks
        self.active = True
        self.model: torch.nn.Module | None = None

    def _apply(self) -> None:
        exact = not self.active or self.switched_at is not None
        self.model.precision = "exact" if exact else "bf16"

    def begin(self, t: Trainer) -> None:
        if not hasattr(t.model, "precision"):
            raise ValueError("a precision schedule needs a model with a precision attribute "
                             f"(Strainer), got {type(t.model).__name__}")
        self.model = t.model
        device = next(t.model.parameters()).device
        self.history = [h.to(device) for h in self.history]
        if device.type == "cpu" and not _extension.CPU_HAS_NATIVE_BF16:
            warnings.warn("strainer_fast: this CPU has no bf16 instructions (AVX512-BF16/AMX); "
                          "the precision schedule runs exact only", RuntimeWarning,
                          stacklevel=2)
            self.active = False
        self._apply()

    def after_step(self, t: Trainer, mse: torch.Tensor) -> bool:
        if not self.active or self.switched_at is not None or t.step % self.every:
            return False
        self.history = [*self.history, (-10 * torch.log10(mse.clamp_min(1e-30))).mean()]
        self.history = self.history[-(self.window // self.every + 1):]
        if (len(self.history) > self.window // self.every
                and bool(self.history[-1] - self.history[0] < self.window * self.min_gain_db)):
            self.switched_at = t.step
            self._apply()
        return False

    def restored(self, t: Trainer) -> None:
        self._apply()

    def state_dict(self) -> dict:
        return {"switched_at": self.switched_at, "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.switched_at, self.history = state["switched_at"], list(state["history"])
