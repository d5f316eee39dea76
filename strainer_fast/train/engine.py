"""The one training loop: pretraining, fitting, meta-learning and occupancy all run on it.

A ``Trainer`` repeats: zero the gradients, evaluate the ``objective`` (per-signal losses
[S]; their sum is differentiated unless the objective already set the gradients), let the
callbacks act (gradient sync, stabilisers), take one optimizer step, let the callbacks act
again (curves, divergence guard, checkpoints, progress). Everything beyond the bare loop is a
``Callback``. The loss is never read on the host inside the loop: a non-finite loss only sets
a flag on the device, which the divergence guard reads every few steps.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["STATE_FORMAT", "Callback", "Trainer"]

STATE_FORMAT = "strainer_fast/train-state/2"


class Callback:
    """A piece of training behaviour. Hooks run in ascending ``order``.

    ``key``: when set, ``state_dict()`` is saved with (and restored from) the training state,
    so the callback's records survive a roll-back or a resume.
    """

    order = 50
    key: str | None = None

    def resume(self, t: Trainer) -> None:
        """Before anything else: may load a saved state into ``t``."""

    def begin(self, t: Trainer) -> None:
        """Once, at ``t.step`` (0 or the resumed step)."""

    def after_backward(self, t: Trainer, loss: torch.Tensor) -> torch.Tensor:
        """Gradients are set; returns the loss to act on (e.g. summed over ranks)."""
        return loss

    def before_step(self, t: Trainer, mse: torch.Tensor) -> None:
        """Before the optimizer step; ``mse``: this step's per-signal losses [S]."""

    def after_step(self, t: Trainer, mse: torch.Tensor) -> bool:
        """After optimizer step ``t.step``; True when it rolled the training back."""
        return False

    def restored(self, t: Trainer) -> None:
        """The training was rolled back to ``t.step``."""

    def log(self, t: Trainer) -> None:
        """At the log points (step 0, every ``log_every`` steps, the last step)."""

    def end(self, t: Trainer) -> None:
        """The run completed."""

    def wants_state(self, step: int) -> bool:
        """True when this callback saves the training state after ``step``: the divergence
        guard then verifies it first."""
        return False

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Trainer:
    """``steps`` optimizer steps of ``model`` on ``objective(step) -> losses [S]``.

    ``generator``: the random source of the objective (e.g. point batches), saved with the
    training state so that a resumed run draws the same batches. ``log_every``: the log
    points of ``Callback.log`` (0: only the first and the last step). ``wall`` is the
    cumulative training time in seconds, log-point work (metrics) excluded. A callback may
    end the run early with ``stop(reason)``: the step it is called at becomes the last (a
    log point); ``stopped`` then holds the reason (None for a run of all ``steps``).
    """

    def __init__(self, model: nn.Module, objective: Callable[[int], torch.Tensor], steps: int,
                 optimizer: torch.optim.Optimizer, *, callbacks: Sequence[Callback] = (),
                 log_every: int = 0, generator: torch.Generator | None = None) -> None:
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if log_every < 0:
            raise ValueError(f"log_every must be >= 0, got {log_every}")
        self.model, self.objective, self.steps, self.opt = model, objective, steps, optimizer
        self.callbacks = sorted(callbacks, key=lambda c: c.order)
        self.log_every, self.generator = log_every, generator
        self.step, self.wall = 0, 0.0
        self.nonfinite: torch.Tensor | None = None  # device flag: a non-finite loss was seen
        self.verified: dict | None = None  # the last state the divergence guard checked
        self.stopped: str | None = None
        self._tick = 0.0

    # -- state ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Full training state (copies): weights, optimizer, step, wall time, RNG, records."""
        return {"format": STATE_FORMAT, "step": self.step, "wall": self.wall,
                "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                "optim": copy.deepcopy(self.opt.state_dict()),
                "rng": None if self.generator is None else self.generator.get_state(),
                "callbacks": {c.key: copy.deepcopy(c.state_dict()) for c in self.callbacks
                              if c.key}}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optim"])
        if self.generator is not None and state.get("rng") is not None:
            self.generator.set_state(state["rng"])
        for c in self.callbacks:
            if c.key and c.key in state["callbacks"]:
                c.load_state_dict(copy.deepcopy(state["callbacks"][c.key]))
        self.step, self.wall = state["step"], state["wall"]
        self.nonfinite = None
        self.stopped = None  # a roll-back goes on from the restored step

    def loss_finite(self) -> bool:
        """Whether every loss since the last call was finite (one host sync); resets."""
        bad = self.nonfinite is not None and bool(self.nonfinite)
        self.nonfinite = None
        return not bad

    def stop(self, reason: str) -> None:
        """Ends the run after the current step (its other callbacks and its log point still
        run); ``reason`` goes to ``stopped``."""
        self.stopped = reason

    def at_last_step(self, step: int) -> bool:
        """Whether ``step`` ends the run: ``steps`` reached, or a callback called ``stop``."""
        return step == self.steps or self.stopped is not None

    def at_log_point(self, step: int) -> bool:
        return step == 0 or self.at_last_step(step) or bool(self.log_every
                                                            and step % self.log_every == 0)

    # -- the loop ---------------------------------------------------------------------
    def _log(self) -> None:
        if any(p.is_cuda for p in self.model.parameters()):
            torch.cuda.synchronize()  # log points only: the wall time includes queued work
        self.wall += time.perf_counter() - self._tick
        for c in self.callbacks:
            c.log(self)
        self._tick = time.perf_counter()

    def run(self) -> Trainer:
        for c in self.callbacks:
            c.resume(self)
        for c in self.callbacks:
            c.begin(self)
        self._tick = time.perf_counter()
        if self.at_log_point(self.step):
            self._log()
        while self.step < self.steps and self.stopped is None:
            self.opt.zero_grad(set_to_none=True)
            mse = self.objective(self.step)
            loss = mse.sum()
            if loss.requires_grad:
                loss.backward()
            loss, mse = loss.detach(), mse.detach()
            for c in self.callbacks:
                loss = c.after_backward(self, loss)
            bad = ~torch.isfinite(loss)
            self.nonfinite = bad if self.nonfinite is None else self.nonfinite | bad
            for c in self.callbacks:
                c.before_step(self, mse)
            self.opt.step()
            self.step += 1
            rolled_back = False
            for c in self.callbacks:
                if c.after_step(self, mse):
                    rolled_back = True
                    break
            if rolled_back:
                self._tick = time.perf_counter()
                for c in self.callbacks:
                    c.restored(self)
            if self.at_log_point(self.step):  # a restored state excludes its log point
                self._log()
        for c in self.callbacks:
            c.end(self)
        return self
