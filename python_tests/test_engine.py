"""The training engine: log points, the host reads the loss only every few steps, callback
state through roll-back, and resume of a run with random batches (generator state)."""

from __future__ import annotations

import pytest
import torch

from strainer_fast.models import Strainer
from strainer_fast.train import (Callback, Checkpointer, DivergenceGuard, Trainer, batch_mse,
                                 train)


def _random_batches(seed: int):
    gen = torch.Generator().manual_seed(seed)
    target_fn = lambda c: torch.sin(3 * c.sum(-1, keepdim=True))[None]  # noqa: E731

    def batches(step: int):
        coords = torch.rand(64, 2, generator=gen) * 2 - 1
        return coords, target_fn(coords)

    return gen, batches


def test_log_points_and_loss_read_every_k_steps(monkeypatch):
    model = Strainer(1, width=8, layers=3, shared=1, seed=0)
    gen, batches = _random_batches(0)
    reads, logged = [], []
    real = Trainer.loss_finite

    def spy(self):
        reads.append(self.step)
        return real(self)

    monkeypatch.setattr(Trainer, "loss_finite", spy)

    class Log(Callback):
        def log(self, t):
            logged.append(t.step)

    train(model, batch_mse(model, batches), 30, lr=1e-3, log_every=10, progress=False,
          callbacks=[Log(), DivergenceGuard(check_every=10)], generator=gen)
    assert logged == [0, 10, 20, 30]
    assert reads == [10, 20, 30]  # no host read of the loss on the other 27 steps


class Crash(Exception):
    pass


def test_resume_restores_the_batch_generator(tmp_path):
    def run(ckpt=None, crash_at=None):
        model = Strainer(1, width=8, layers=3, shared=1, seed=0)
        gen, batches = _random_batches(1)

        class Stop(Callback):
            def after_step(self, t, mse):
                if t.step == crash_at:
                    raise Crash
                return False

        cbs = [Stop()] + ([ckpt] if ckpt else [])
        train(model, batch_mse(model, batches), 25, lr=1e-3, progress=False, callbacks=cbs,
              generator=gen)
        return model

    full = run()
    with pytest.raises(Crash):
        run(Checkpointer(tmp_path, every=10), crash_at=17)
    ckpt = Checkpointer(tmp_path, every=10, resume=True)
    again = run(ckpt)
    assert ckpt.resumed_from == 10
    for p, q in zip(again.parameters(), full.parameters()):
        assert torch.equal(p, q)  # same batches after the resume


def test_trainer_rejects_bad_arguments():
    model = Strainer(1, width=4, layers=2, shared=1)
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="steps must be >= 0"):
        Trainer(model, lambda s: torch.zeros(1), -1, opt)
    with pytest.raises(ValueError, match="log_every must be >= 0"):
        Trainer(model, lambda s: torch.zeros(1), 1, opt, log_every=-2)


def test_a_callback_stops_the_run_early(monkeypatch):
    """``Trainer.stop``: the step it is called at is the last, a log point, and the divergence
    guard reads the loss there; ``stopped`` holds the reason (None for a full run)."""
    model = Strainer(1, width=8, layers=3, shared=1, seed=0)
    gen, batches = _random_batches(2)
    reads, logged = [], []
    real = Trainer.loss_finite
    monkeypatch.setattr(Trainer, "loss_finite", lambda self: reads.append(self.step) or
                        real(self))

    class StopAt7(Callback):
        def log(self, t):
            logged.append(t.step)

        def after_step(self, t, mse):
            if t.step == 7:
                t.stop("seven")
            return False

    t = train(model, batch_mse(model, batches), 30, lr=1e-3, log_every=5, progress=False,
              callbacks=[StopAt7(), DivergenceGuard(check_every=10)], generator=gen)
    assert t.step == 7 and t.stopped == "seven"
    assert logged == [0, 5, 7] and reads == [7]
    t = train(model, batch_mse(model, batches), 4, lr=1e-3, progress=False, generator=gen)
    assert t.step == 4 and t.stopped is None
