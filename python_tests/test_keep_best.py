"""Best iterate by default (``keep="best"``, ``train.KeepBest``): a fit whose last step is
spoilt returns the earlier weights, chosen by the training loss (never the reference), on
the device (no host sync per step), through a resume; ``keep="last"``; the CLI flag."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import count_host_reads

from strainer_fast.cli import main
from strainer_fast.data import coord_grid, to_target
from strainer_fast.fit import fit_many
from strainer_fast.models import Strainer
from strainer_fast.tasks.superres import area_operator, downsample
from strainer_fast.train import Callback, Checkpointer, KeepBest
from strainer_fast.train.objectives import render
from strainer_fast.value_range import VALUE_RANGES

NET = dict(width=16, layers=3, device="cpu", progress=False)
STEPS = 20


def _images(k: int = 2, size: int = 12) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size),
                          indexing="ij")
    a = 0.5 + 0.4 * torch.sin(5 * x) * torch.cos(3 * y)
    return torch.stack([a, a.flip(0), a.flip(1)][:k])[..., None]


class Spoil(Callback):
    """Shifts network ``net``'s output by ``shift`` (its last bias) after step ``at``, and
    records a copy of that network's weights before each update (``before``[s]: the
    weights after s updates)."""

    order = 40  # after the optimizer step, like the step's own update

    def __init__(self, at: int, net: int = 1, shift: float = 1.0) -> None:
        self.at, self.net, self.shift = at, net, shift
        self.before: dict[int, list[torch.Tensor]] = {}

    def before_step(self, t, mse):
        self.before[t.step] = [p[self.net].detach().clone() for p in t.model.parameters()]

    def after_step(self, t, mse):
        if t.step == self.at:
            with torch.no_grad():
                t.model.dec_b[-1][self.net] += self.shift
        return False


def _net_weights(model: Strainer, k: int) -> list[torch.Tensor]:
    return [p[k].detach() for p in model.parameters()]


@pytest.mark.parametrize("keep", ["best", "last"])
def test_spoilt_last_step_returns_the_best_iterate(keep):
    spoil = Spoil(at=STEPS)
    r = fit_many(_images(), "siren", steps=STEPS, lr=1e-3, log_every=5, keep=keep,
                 callbacks=[spoil], **NET)
    assert r.step == [0, 5, 10, 15, 20] and len(r.last_psnr) == 2
    if keep == "last":
        assert r.best_step == [STEPS, STEPS] and r.psnr[-1] == r.last_psnr
        return
    train = np.asarray(r.train_psnr)  # [s]: the weights after s updates
    best = int(train[:, 1].argmax())
    assert r.best_step[1] == best < STEPS and r.best_step[0] == STEPS  # net 0: not spoilt
    for got, want in zip(_net_weights(r.model, 1), spoil.before[best]):
        assert torch.equal(got, want)  # the weights, not a blend
    assert r.psnr[-1][1] > r.last_psnr[1] + 5  # the curve's end, recon: the returned model
    assert r.psnr[-1][0] == r.last_psnr[0] and r.final_psnr() == pytest.approx(
        np.mean(r.psnr[-1]))
    recon_psnr = -10 * torch.log10(((r.recon[1] - _images()[1]) ** 2).mean())
    assert float(recon_psnr) == pytest.approx(r.psnr[-1][1], abs=1e-3)


def test_inverse_problem_chooses_by_the_data_term_not_the_reference():
    """Super-resolution whose 'reference' is the init's own render: choosing by it would
    return step 0; choosing by the data term returns a late iterate."""
    hi = _images(1, 12)
    low = downsample(hi, 2)
    op = dict(operator=area_operator(12, 12, 2), render_size=(12, 12))
    init = fit_many(low, "siren", steps=0, keep="last", **op, **NET)
    r = fit_many(low, "siren", steps=STEPS, lr=1e-3, log_every=5, reference=init.recon, **op,
                 **NET)
    assert r.psnr[0][0] > 60  # the reference is the init's render
    assert r.best_step[0] > STEPS // 2 and r.psnr[-1][0] < r.psnr[0][0] - 10


@pytest.mark.parametrize("value_range", VALUE_RANGES)
def test_points_choose_among_log_points_by_the_full_grid_loss(value_range):
    images = _images()
    full_loss: dict[int, torch.Tensor] = {}
    target = to_target(images, value_range)  # the loss on the run's own targets

    class FullGrid(Callback):
        def log(self, t):
            out = render(t.model, coord_grid(12, 12))
            full_loss.setdefault(t.step, ((out - target) ** 2).mean(dim=(1, 2)))

    r = fit_many(images, "siren", steps=STEPS, lr=1e-3, log_every=5, points=40,
                 callbacks=[Spoil(at=STEPS), FullGrid()], value_range=value_range, **NET)
    steps = sorted(full_loss)
    losses = torch.stack([full_loss[s] for s in steps])
    assert r.best_step == [steps[i] for i in losses.argmin(0).tolist()]
    assert r.best_step[1] < STEPS


def test_resume_keeps_the_best(tmp_path):
    images = _images()
    kw = dict(steps=30, lr=1e-3, log_every=10, **NET)

    class Crash(Exception):
        pass

    class CrashAt(Callback):
        def after_step(self, t, mse):
            if t.step == 25:
                raise Crash
            return False

    full = fit_many(images, "siren", callbacks=[Spoil(at=12)], **kw)
    assert full.best_step[1] <= 12 < full.best_step[0]
    with pytest.raises(Crash):
        fit_many(images, "siren", checkpoint=Checkpointer(tmp_path, every=10),
                 callbacks=[Spoil(at=12), CrashAt()], **kw)
    ckpt = Checkpointer(tmp_path, every=10, resume=True)
    again = fit_many(images, "siren", checkpoint=ckpt, **kw)  # spoilt before the state
    assert ckpt.resumed_from == 20 and again.best_step == full.best_step
    for p, q in zip(again.model.parameters(), full.model.parameters()):
        assert torch.equal(p, q)


def test_no_host_sync_added_per_step(monkeypatch):
    """Counts host reads of tensors (item, bool, float, int, tolist) during whole fits: the
    difference between keep="best" and keep="last" does not grow with the steps."""
    reads = count_host_reads(monkeypatch)

    def count(keep: str, steps: int) -> int:
        reads[0] = 0
        fit_many(_images(), "siren", steps=steps, lr=1e-3, log_every=0, keep=keep, **NET)
        return reads[0]

    extra = {steps: count("best", steps) - count("last", steps) for steps in (10, 40)}
    assert extra[10] == extra[40]  # the end's reads only (the optimizer's are in both)


def test_keep_best_refuses_shared_encoders_and_bad_values():
    with pytest.raises(ValueError, match="independent networks"):
        KeepBest().attach(Strainer(2, width=8, layers=3, shared=1))
    with pytest.raises(ValueError, match="keep must be one of"):
        fit_many(_images(), "siren", steps=1, keep="first", **NET)


def test_cli_keep_flag_round_trip(tmp_path, capsys):
    img = tmp_path / "i.png"
    from PIL import Image

    Image.fromarray((_images(1)[0, ..., 0].numpy() * 255).astype(np.uint8)).save(img)
    out = tmp_path / "fit"
    args = ["fit", str(img), "--init", "siren", "--out", str(out), "--size", "12", "--width",
            "16", "--layers", "3", "--steps", "3", "--log-every", "1", "--no-progress",
            "--device", "cpu"]
    assert main([*args, "--keep", "last"]) == 0
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["fit"]["keep"] == "last"
    again = tmp_path / "again"
    assert main(["run", str(out / "config.json"), "--out", str(again)]) == 0
    assert json.loads((again / "config.json").read_text())["config"]["fit"]["keep"] == "last"
    assert main(args[:5] + [str(tmp_path / "d")] + args[6:]) == 0
    assert json.loads((tmp_path / "d" / "config.json").read_text())["config"]["fit"][
        "keep"] == "best"
    with pytest.raises(SystemExit):
        main([*args, "--keep", "first"])
    assert "invalid choice" in capsys.readouterr().err
