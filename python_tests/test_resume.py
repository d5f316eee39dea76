"""Training-state checkpoints: kill -9 + --resume equals an uninterrupted run; divergence
roll-back; refusing to resume a different run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from strainer_fast.fit import fit_many
from strainer_fast.models import Strainer
from strainer_fast.pretrain import pretrain
from strainer_fast.train import Callback, Checkpointer, DivergenceGuard, image_mse, train
from strainer_fast.train import callbacks as train_callbacks
from conftest import cli_command, cli_env

TINY = ["--size", "12", "--width", "16", "--layers", "3", "--shared", "2", "--lr", "1e-3",
        "--no-progress", "--device", "cpu"]


def run(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(cli_command(*args), env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(root / f"i{i}.png")
    return root


def test_kill9_then_resume_equals_uninterrupted(folder, tmp_path):
    args = ["pretrain", "--data", str(folder), "--steps", "400", "--checkpoint-every", "40",
            *TINY]
    killed = tmp_path / "killed.pt"
    state = Path(f"{killed}.state")
    proc = run(*args, "--out", str(killed))
    deadline = time.monotonic() + 240
    while not list(state.glob("rank0of1.step*.pt")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert proc.poll() is None, "run ended before it could be killed; raise --steps"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = sorted(state.glob("rank0of1.step*.pt"))
    assert saved and not killed.exists()  # killed mid-run: a state, no final checkpoint
    resumed = run(*args, "--out", str(killed), "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resumed from step" in err and "resumed from step 0 " not in err
    assert not state.exists()  # a finished run removes its training state
    full = run(*args, "--out", str(tmp_path / "full.pt"))
    assert full.wait(timeout=300) == 0
    a, b = (torch.load(p, weights_only=True) for p in (killed, tmp_path / "full.pt"))
    for wa, wb in zip(a["weights"] + a["biases"], b["weights"] + b["biases"]):
        assert torch.equal(wa, wb)  # bitwise: same data order, RNG and Adam state


class Crash(Exception):
    pass


def test_fit_resume_in_process_equals_uninterrupted(tmp_path, monkeypatch):
    img = torch.rand(1, 10, 10, 1, generator=torch.Generator().manual_seed(0))
    kw = dict(width=16, layers=3, steps=30, lr=1e-3, log_every=5, device="cpu", progress=False)
    full = fit_many(img, "siren", **kw)

    class CrashAt22(Callback):
        def after_step(self, t, mse):
            if t.step == 22:
                raise Crash
            return False

    with pytest.raises(Crash):
        fit_many(img, "siren", checkpoint=Checkpointer(tmp_path, every=10),
                 callbacks=[CrashAt22()], **kw)
    ckpt = Checkpointer(tmp_path, every=10, resume=True)
    again = fit_many(img, "siren", checkpoint=ckpt, **kw)
    assert ckpt.resumed_from == 20
    assert again.step == full.step and again.psnr == full.psnr  # curves survive the restart
    for p, q in zip(again.model.parameters(), full.model.parameters()):
        assert torch.equal(p, q)


def test_divergence_rolls_back_lowers_lr_and_never_saves_nan(tmp_path, monkeypatch, capsys):
    saved = []

    def checked_save(obj, path):
        assert all(v.isfinite().all() for v in obj["model"].values())
        saved.append(obj["step"])
        return real_save(obj, path)

    real_save = train_callbacks.atomic_save
    monkeypatch.setattr(train_callbacks, "atomic_save", checked_save)
    model = Strainer(2, width=16, layers=3, shared=2, seed=0)
    images = torch.rand(2, 8, 8, 1, generator=torch.Generator().manual_seed(0))
    poisoned = []

    class Poison(Callback):
        def log(self, t):
            if t.step == 17 and not poisoned:  # corrupt a weight once, mid-run
                with torch.no_grad():
                    model.enc_w[0][0, 0] = float("nan")
                poisoned.append(t.step)

    guard = DivergenceGuard()
    train(model, image_mse(model, images), 30, lr=1e-3, log_every=1, progress=False,
          callbacks=[Poison(), guard, Checkpointer(tmp_path, every=5)])
    assert poisoned and guard.restores == 1
    assert all(p.isfinite().all() for p in model.parameters())
    assert saved == [5, 10, 15, 20, 25, 30]  # step 20 rewritten only after the roll-back
    err = capsys.readouterr().err
    assert "non-finite loss" in err and "rolled back to step 15" in err
    assert "learning rate lowered to 0.0005" in err


def test_persistent_divergence_gives_up_cleanly(tmp_path):
    images = torch.full((1, 6, 6, 1), float("nan"))
    with pytest.raises(RuntimeError, match="training diverged.*giving up"):
        pretrain(images, width=8, layers=2, shared=1, steps=5, device="cpu", progress=False,
                 checkpoint=Checkpointer(tmp_path, every=1))


def test_resume_refuses_other_settings_and_models(tmp_path):
    images = torch.rand(2, 6, 6, 1, generator=torch.Generator().manual_seed(0))
    kw = dict(width=8, layers=2, shared=1, steps=4, device="cpu", progress=False)

    ckpt = Checkpointer(tmp_path, every=2, fingerprint={"lr": 1e-4})
    ckpt.end = lambda t: None  # keep the state files, as a killed run would
    pretrain(images, checkpoint=ckpt, **kw)
    with pytest.raises(ValueError, match="training state of an earlier run; continue it with"):
        pretrain(images, checkpoint=Checkpointer(tmp_path, every=2, fingerprint={"lr": 1e-4}),
                 **kw)
    with pytest.raises(ValueError, match="settings differ from the saved run: lr"):
        pretrain(images, checkpoint=Checkpointer(tmp_path, resume=True,
                                                 fingerprint={"lr": 1e-3}), **kw)
    with pytest.raises(ValueError, match="different model"):
        pretrain(images, checkpoint=Checkpointer(tmp_path, resume=True,
                                                 fingerprint={"lr": 1e-4}),
                 **dict(kw, width=16))
    (tmp_path / "rank0of1.step000000004.pt").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="not a readable training state"):
        pretrain(images, checkpoint=Checkpointer(tmp_path, resume=True,
                                                 fingerprint={"lr": 1e-4}), **kw)


def test_cli_fit_checkpoints_and_cleans_up(folder, tmp_path, capsys):
    from strainer_fast.cli import main

    out = tmp_path / "fit"
    args = ["fit", str(folder / "i0.png"), "--init", "siren", "--out", str(out), "--steps", "6",
            "--log-every", "3", "--checkpoint-every", "2",
            *[a for a in TINY if a not in ("--shared", "2")]]
    assert main(args) == 0
    assert (out / "report.md").exists() and not (out / "train_state").exists()
    assert main([*args, "--resume"]) == 0  # nothing to resume: says so, starts at 0
    assert "no training state" in capsys.readouterr().err
