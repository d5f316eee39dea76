"""The levers of a fit, off by default (no gain on validation): per-part learning rates on the
command line, encoder freezing (``freeze``, stable rank), error-guided pixel sampling
(``sampling="error"``) and the bf16-then-exact precision schedule."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import count_host_reads, requires_cpu_kernel
from PIL import Image
from torch import nn

import strainer_fast._extension as extension
from strainer_fast.checkpoint import save_checkpoint
from strainer_fast.cli import main
from strainer_fast.fit import fit_many
from strainer_fast.levers import freeze_depth, stable_rank
from strainer_fast.metrics import psnr
from strainer_fast.models import Encoder, Strainer
from strainer_fast.train import Callback, PrecisionSchedule
from strainer_fast.train.objectives import (
    ERROR_FLOOR,
    ERROR_REFRESH_EVERY,
    image_error_points,
)

RUN = dict(device="cpu", progress=False)
BACKENDS = ["reference", pytest.param("cpu", marks=requires_cpu_kernel)]


def _images(k: int = 2, size: int = 12) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size),
                          indexing="ij")
    a = 0.5 + 0.4 * torch.sin(5 * x) * torch.cos(3 * y)
    return torch.stack([a, a.flip(0), a.flip(1)][:k])[..., None]


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    return q


def _encoder() -> Encoder:
    """Three 16-wide encoder layers of stable rank <= 2, 16 and 1: "auto" freezes 2."""
    g = torch.Generator().manual_seed(1)
    first = torch.rand(16, 2, generator=g) - 0.5
    second = (0.1 * _orthogonal(16, 2)).float()
    third = 0.05 * torch.outer(torch.rand(16, generator=g), torch.rand(16, generator=g))
    biases = [0.1 * torch.rand(16, generator=g) for _ in range(3)]
    return Encoder(list(zip([first, second, third], biases)), depth=4, w0=30.0)


# -- stable rank and freezing -------------------------------------------------------------
def test_stable_rank_of_matrices_with_known_singular_values():
    u, v = _orthogonal(5, 0)[:, :3], _orthogonal(4, 1)[:, :3]
    w = u @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)) @ v.T  # [5, 4]
    assert float(stable_rank(w)) == pytest.approx((9 + 4 + 1) / 9, rel=1e-9)
    assert float(stable_rank(torch.outer(torch.rand(6), torch.rand(3)))) == pytest.approx(1.0)
    batch = stable_rank(torch.stack([torch.eye(4), 2 * torch.eye(4)]))
    assert batch.shape == (2,) and torch.allclose(batch, torch.full((2,), 4.0,
                                                                    dtype=torch.float64))
    assert float(stable_rank(torch.zeros(3, 3))) == 0.0
    with pytest.raises(ValueError, match="out, in"):
        stable_rank(torch.ones(3))


def test_freeze_depth_auto_and_bad_values():
    enc = _encoder().layers
    ranks = [float(stable_rank(w)) for w, _ in enc]
    assert ranks[1] == pytest.approx(16.0) and ranks[0] <= 2 + 1e-9
    assert ranks[2] == pytest.approx(1.0)
    assert freeze_depth("auto", "strainer", enc) == 2  # up to and including layer 1
    assert freeze_depth(3, "strainer", enc) == 3 and freeze_depth(0, "siren", None) == 0
    for bad, message in [(-1, "int >= 0"), (True, "int >= 0"), ("two", "int >= 0"),
                         (1.0, "int >= 0"), (4, "encoder has 3 layers")]:
        with pytest.raises(ValueError, match=message):
            freeze_depth(bad, "strainer", enc)
    with pytest.raises(ValueError, match="STRAINER init"):
        freeze_depth(1, "siren", None)
    with pytest.raises(ValueError, match="STRAINER init"):
        fit_many(_images(), "siren", freeze="auto", steps=1, width=16, layers=3, **RUN)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frozen_layers_stay_bit_identical_and_the_rest_trains(backend):
    enc = _encoder()
    kw = dict(steps=5, lr=1e-3, log_every=0, keep="last", backend=backend, **RUN)
    r = fit_many(_images(), enc, freeze=2, **kw)
    model = r.model
    for i in range(2):
        w, b = enc.layers[i]
        assert torch.equal(model.dec_w[i], w.expand_as(model.dec_w[i]))
        assert torch.equal(model.dec_b[i], b.expand_as(model.dec_b[i]))
        assert not model.dec_w[i].requires_grad
    assert not torch.equal(model.dec_w[2], enc.layers[2][0].expand_as(model.dec_w[2]))
    start = fit_many(_images(), enc, **dict(kw, steps=0)).model
    assert not torch.equal(model.dec_w[3], start.dec_w[3])  # the decoder trains
    auto = fit_many(_images(), enc, freeze="auto", **kw).model  # "auto" = 2 here
    for p, q in zip(auto.parameters(), model.parameters()):
        assert torch.equal(p, q)
    both = fit_many(_images(), enc, freeze=1, transfer_lr=(0.5, 2.0), **kw).model
    assert torch.equal(both.dec_w[0], enc.layers[0][0].expand_as(both.dec_w[0]))
    assert not torch.equal(both.dec_w[1], enc.layers[1][0].expand_as(both.dec_w[1]))


# -- error-guided sampling ------------------------------------------------------------------
class Constant(nn.Module):
    """Outputs ``value`` at every coordinate: coords [.., N, 2] -> [S, N, 1]."""

    def __init__(self, signals: int) -> None:
        super().__init__()
        self.signals, self.value = signals, 0.0

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return torch.full((self.signals, coords.shape[-2], 1), self.value)


def _squares(size: int = 16) -> torch.Tensor:
    """Two black images [2, size, size, 1] with a white 4x4 square (top left, bottom right)."""
    img = torch.zeros(2, size, size, 1)
    img[0, :4, :4] = 1
    img[1, -4:, -4:] = 1
    return img


def _pixel(coords: torch.Tensor, size: int) -> torch.Tensor:
    """Flat pixel indices of ``coord_grid`` coordinates [.., 2]."""
    rc = ((coords + 1) / 2 * (size - 1)).round().long()
    return rc[..., 0] * size + rc[..., 1]


def test_error_sampling_favours_high_error_pixels_and_refreshes():
    images, model = _squares(), Constant(2)
    batches = image_error_points(model, images, 4096, torch.Generator().manual_seed(0), "unit")
    inside = ERROR_FLOOR * 16 / 256  # a pixel set's floor share
    coords, target = batches(0)  # output 0: the error is on the squares
    assert coords.shape == (2, 4096, 2) and target.shape == (2, 4096, 1)
    flat = images.reshape(2, -1, 1)
    pix = _pixel(coords, 16)
    assert torch.equal(target, flat.gather(1, pix[..., None]))  # targets of the drawn pixels
    share = target.mean((1, 2))
    assert torch.allclose(share, torch.full((2,), 1 - ERROR_FLOOR + inside), atol=0.03)
    seen = [set(pix[s].tolist()) for s in range(2)]
    for step in range(1, 2 * ERROR_REFRESH_EVERY):
        pix = _pixel(batches(step)[0], 16)
        for s in range(2):
            seen[s] |= set(pix[s].tolist())
    assert all(len(s) == 256 for s in seen)  # the floor reaches every pixel
    model.value = 1.0  # now the error is off the squares, but the map is not refreshed yet
    assert float(batches(ERROR_REFRESH_EVERY + 5)[1].mean()) > 0.8
    assert float(batches(2 * ERROR_REFRESH_EVERY)[1].mean()) < 0.05  # refreshed
    model.value = 0.0
    assert float(batches(ERROR_REFRESH_EVERY + 2)[1].mean()) > 0.8  # a roll-back refreshes


def test_error_sampling_is_seeded_and_checked():
    images = _squares()

    def draws(seed: int) -> list[torch.Tensor]:
        model = Constant(2)
        b = image_error_points(model, images, 64, torch.Generator().manual_seed(seed), "unit")
        return [b(step)[0] for step in range(12)]

    assert all(torch.equal(a, b) for a, b in zip(draws(3), draws(3)))
    assert not all(torch.equal(a, b) for a, b in zip(draws(3), draws(4)))
    for kw, message in [(dict(floor=0.0), "floor"), (dict(refresh_every=0), "refresh_every")]:
        with pytest.raises(ValueError, match=message):
            image_error_points(Constant(2), images, 8, None, **kw)
    net = dict(width=16, layers=3, steps=2, **RUN)
    with pytest.raises(ValueError, match="needs points"):
        fit_many(_images(), "siren", sampling="error", **net)
    with pytest.raises(ValueError, match="sampling must be one of"):
        fit_many(_images(), "siren", sampling="hard", points=8, **net)


@pytest.mark.parametrize("backend", BACKENDS)
def test_error_sampling_fit_is_reproducible_and_evaluated_on_the_full_grid(backend):
    kw = dict(width=16, layers=3, steps=12, lr=1e-3, log_every=6, points=40, backend=backend,
              **RUN)
    a = fit_many(_images(), "siren", sampling="error", **kw)
    b = fit_many(_images(), "siren", sampling="error", **kw)
    uniform = fit_many(_images(), "siren", **kw)
    assert a.train_psnr == b.train_psnr and a.train_psnr != uniform.train_psnr
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    assert a.recon.shape == (2, 12, 12, 1)  # the full-grid render, as without sampling
    assert psnr(a.recon, _images()).tolist() == pytest.approx(a.psnr[-1], abs=1e-4)


def test_error_sampling_adds_no_host_sync_per_step(monkeypatch):
    reads = count_host_reads(monkeypatch)

    def count(sampling: str, steps: int) -> int:
        reads[0] = 0
        fit_many(_images(), "siren", width=16, layers=3, steps=steps, lr=1e-3, log_every=0,
                 points=40, sampling=sampling, **RUN)
        return reads[0]

    extra = {steps: count("error", steps) - count("uniform", steps) for steps in (10, 40)}
    assert extra[10] == extra[40]


# -- precision schedule ---------------------------------------------------------------------
def _feed(schedule: PrecisionSchedule, model: nn.Module, psnr_at: dict[int, float]) -> None:
    t = SimpleNamespace(model=model, step=0)
    schedule.begin(t)
    for step, p in psnr_at.items():
        t.step = step
        schedule.after_step(t, torch.full((2,), 10 ** (-p / 10)))


def test_precision_schedule_switches_when_the_gain_stalls(monkeypatch):
    monkeypatch.setattr(extension, "CPU_HAS_NATIVE_BF16", True)
    model = Strainer(2, width=8, layers=3, shared=0)
    s = PrecisionSchedule()
    # +2 dB per 10 steps up to step 50, then flat: the 20-step gain first drops below
    # 20 * 0.05 = 1 dB at step 70 (step 60 still sees 40 -> 60: +2 dB)
    _feed(s, model, {t: 2 * min(t, 50) / 10 for t in range(1, 61)})
    assert s.switched_at is None and model.precision == "bf16"
    _feed(s, model, {t: 10.0 for t in range(61, 80)})
    assert s.switched_at == 70 and model.precision == "exact"
    again = PrecisionSchedule()
    again.load_state_dict(s.state_dict())  # a resume or a roll-back keeps the phase
    fresh = Strainer(2, width=8, layers=3, shared=0)
    again.begin(SimpleNamespace(model=fresh, step=70))
    assert fresh.precision == "exact"
    with pytest.raises(ValueError, match="precision_schedule must be one of"):
        PrecisionSchedule("bf16")


class Precisions(Callback):
    """Records the model's precision before every update."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def before_step(self, t, mse):
        self.seen.append(t.model.precision)


@requires_cpu_kernel
def test_precision_schedule_in_a_fit_and_its_host_reads(monkeypatch):
    monkeypatch.setattr(extension, "CPU_HAS_NATIVE_BF16", True)
    spy = Precisions()
    kw = dict(width=16, layers=3, lr=0.0, log_every=0, **RUN)  # lr 0: the PSNR never rises
    r = fit_many(_images(), "siren", steps=40, precision_schedule="bf16-then-exact",
                 callbacks=[spy], **kw)
    assert spy.seen == ["bf16"] * 30 + ["exact"] * 10 and r.model.precision == "exact"
    reads = count_host_reads(monkeypatch)

    def count(schedule: str | None, steps: int) -> int:
        reads[0] = 0
        fit_many(_images(), "siren", steps=steps, precision_schedule=schedule, **kw)
        return reads[0]

    extra = {steps: count("bf16-then-exact", steps) - count(None, steps) for steps in (40, 100)}
    assert extra[40] == extra[100]  # reads stop at the switch


def test_precision_schedule_without_bf16_warns_and_runs_exact(monkeypatch):
    monkeypatch.setattr(extension, "CPU_HAS_NATIVE_BF16", False)
    spy = Precisions()
    with pytest.warns(RuntimeWarning, match="runs exact only"):
        fit_many(_images(), "siren", width=16, layers=3, steps=4, lr=0.0, log_every=0,
                 precision_schedule="bf16-then-exact", callbacks=[spy], **RUN)
    assert spy.seen == ["exact"] * 4
    net = dict(width=16, layers=3, steps=1, precision_schedule="bf16-then-exact", **RUN)
    for kw in (dict(precision="bf16"), dict(backend="reference")):
        with pytest.raises(ValueError, match="precision_schedule sets the precision"):
            fit_many(_images(), "siren", **kw, **net)


# -- the command line ---------------------------------------------------------------------
@requires_cpu_kernel
def test_cli_fit_levers_round_trip(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(extension, "CPU_HAS_NATIVE_BF16", True)
    img = tmp_path / "i.png"
    Image.fromarray((_images(1)[0, ..., 0].numpy() * 255).astype(np.uint8)).save(img)
    enc = save_checkpoint(Strainer(2, width=16, layers=4, shared=3), tmp_path / "enc.pt",
                          size=[12, 12])

    def fit(out: str, *extra: str) -> int:
        return main(["fit", str(img), "--init", "strainer", "--encoder", str(enc), "--out",
                     str(tmp_path / out), "--size", "12", "--steps", "3", "--log-every", "1",
                     "--no-progress", "--device", "cpu", *extra])

    def levers(out: str) -> tuple:
        saved = json.loads((tmp_path / out / "config.json").read_text())["config"]
        return tuple(saved[k] for k in ("strainer_lr", "freeze", "sampling",
                                        "precision_schedule"))

    assert fit("a", "--strainer-lr", "0.5,2", "--freeze", "auto", "--points", "40",
               "--sampling", "error", "--precision-schedule", "bf16-then-exact") == 0
    assert levers("a") == ([0.5, 2.0], "auto", "error", "bf16-then-exact")
    assert main(["run", str(tmp_path / "a" / "config.json"), "--out", str(tmp_path / "b")]) == 0
    assert levers("b") == levers("a")
    assert fit("c") == 0 and levers("c") == ([1.0, 1.0], 0, "uniform", None)  # all off
    assert fit("d", "--freeze", "2") == 0 and levers("d")[1] == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        fit("e", "--freeze", "first")
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "got 'first'" in err and len(err.splitlines()) == 1
    assert fit("e", "--freeze", "4") == 2
    assert "encoder has 3 layers" in capsys.readouterr().err
    assert fit("e", "--sampling", "error") == 2  # without --points
    assert "needs points" in capsys.readouterr().err
