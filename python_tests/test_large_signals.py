"""Signals larger than memory: point-minibatch fitting and pretraining, chunked evaluation,
the up-front memory check, the --points flag, and loading large images without many copies.
Tiny sizes except where memory itself is measured (in subprocesses, ru_maxrss)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from strainer_fast import fit, memory
from strainer_fast.cli import main
from strainer_fast.data import coord_grid
from strainer_fast.fit import initial_model
from strainer_fast.meta import meta_init
from strainer_fast.pretrain import pretrain
from strainer_fast.train.objectives import image_mse, image_points, render

from conftest import cli_env

FAST = ["--no-progress", "--device", "cpu"]
NET = dict(width=32, layers=3, progress=False, device="cpu")


def smooth(size: int, channels: int = 1) -> torch.Tensor:
    """A smooth test pattern [size, size, C] in [0, 1]."""
    y, x = torch.meshgrid(torch.linspace(0, 3, size), torch.linspace(0, 3, size), indexing="ij")
    return torch.stack([(torch.sin(x + k) * torch.cos(y) + 1) / 2 for k in range(channels)], -1)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("large") / "img.png"
    Image.fromarray((smooth(20)[..., 0].numpy() * 255).astype(np.uint8)).save(path)
    return path


def test_point_batches_are_grid_rows_drawn_from_the_generator():
    images = torch.rand(2, 5, 7, 3)
    gen = torch.Generator().manual_seed(3)
    coords, target = image_points(images, 40, gen)(0)
    idx = torch.randint(0, 35, (40,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(coords, coord_grid(5, 7)[idx])
    assert torch.equal(target, images.reshape(2, 35, 3)[:, idx] * 2 - 1)
    with pytest.raises(ValueError, match="points must be >= 1"):
        image_points(images, 0, gen)


def test_minibatched_fit_converges_and_is_reproducible():
    img = smooth(32)
    runs = [fit(img, "siren", steps=150, lr=1e-3, log_every=50, points=256, seed=s, **NET)
            for s in (0, 0, 1)]
    psnr = [r.psnr[-1][0] for r in runs]
    assert psnr[0] > runs[0].psnr[0][0] + 10 and psnr[0] > 25  # full-grid PSNR of the fit
    assert runs[0].psnr == runs[1].psnr and torch.equal(runs[0].recon, runs[1].recon)
    assert runs[2].psnr != runs[0].psnr  # the seed draws other batches / inits
    assert runs[0].recon.shape == (1, 32, 32, 1)


def test_minibatched_pretraining_is_seeded():
    imgs = torch.stack([smooth(16), smooth(16).flip(0)])
    models = [pretrain(imgs, width=16, layers=3, shared=2, steps=20, lr=1e-3, points=64,
                       seed=s, progress=False, device="cpu") for s in (0, 0, 1)]
    enc = [m.encoder_layers()[0][0] for m in models]
    assert torch.equal(enc[0], enc[1]) and not torch.equal(enc[0], enc[2])


@pytest.mark.parametrize("method", ["fomaml", "reptile"])
def test_minibatched_meta_init_is_seeded_and_bounded(method, monkeypatch):
    imgs = torch.stack([smooth(16), smooth(16).flip(0)])
    kw = dict(width=16, layers=3, steps=4, lr=1e-3, progress=False, device="cpu")
    runs = [meta_init(imgs, method, points=32, seed=s, **kw) for s in (0, 0, 1)]
    full = meta_init(imgs, method, seed=0, **kw)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(runs[0], runs[1]))
    assert not torch.equal(runs[0][0][0], runs[2][0][0])  # other seed: init and batches
    assert not torch.equal(runs[0][1][0], full[1][0])  # same init, other pixels
    # memory bounded by the batch: RAM (patched) for 64 points a step, not the full grid
    run = dict(signals=2, grid=1024 ** 2, channels=1, width=16, layers=3)
    avail = memory.run_bytes(points=None, **run)
    assert memory.run_bytes(points=64, **run) < 0.8 * avail
    monkeypatch.setattr(memory, "available_bytes", lambda device: avail)
    huge = torch.zeros(1, 1, 1, 1).expand(2, 1024, 1024, 1)
    with pytest.raises(memory.WontFit, match="meta-learning on 2 image"):
        meta_init(huge, method, **kw)
    meta_init(huge, method, points=64, **dict(kw, steps=1))


def test_pretrain_weight_scale_flag_and_bad_values(image_file, tmp_path, capsys):
    enc = tmp_path / "enc.pt"
    tiny = ["--data", str(image_file), "--size", "8", "--width", "8", "--layers", "3",
            "--shared", "2", "--steps", "2", *FAST]
    assert main(["pretrain", *tiny, "--out", str(enc), "--weight-scale", "1.5"]) == 0
    assert torch.load(enc, weights_only=True)["meta"]["weight_scale"] == 1.5
    for bad in ("0", "-1", "nan", "inf"):
        out = tmp_path / f"bad{bad}.pt"
        assert main(["pretrain", *tiny, "--out", str(out), "--weight-scale", bad]) == 2
        assert "--weight-scale must be a finite number > 0" in capsys.readouterr().err
        assert not list(tmp_path.glob(f"bad{bad}*"))  # no partial output


def test_points_need_the_full_grid_of_an_operator():
    model = initial_model("siren", 1, 1, width=8, layers=2)
    with pytest.raises(ValueError, match="points=None for inverse problems"):
        image_mse(model, torch.rand(1, 4, 4, 1), operator=lambda out: out, points=8)


def test_chunked_render_equals_unchunked():
    model = initial_model("siren", 2, 3, width=32, layers=4)
    coords = coord_grid(37, 29)
    with torch.no_grad():
        whole = model(coords)
    for chunk in (1, 64, 1000, 10 ** 6):
        torch.testing.assert_close(render(model, coords, chunk), whole, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        render(model, coords, 0)


def test_memory_estimate_refuses_impossible_and_accepts_defaults():
    huge = torch.zeros(1, 1, 1).expand(16384, 16384, 1)  # no memory behind it
    with pytest.raises(memory.WontFit, match=r"--points N \(points=N in the API\)"):
        fit(huge, "siren", steps=1, progress=False, device="cpu")
    # the defaults: fit (178 px, width 256, 6 layers, full grid) and the CPU presets
    memory.check_fits("cpu", "fit", signals=1, grid=178 ** 2, channels=3, points=None,
                      width=256, layers=6)
    memory.check_fits("cpu", "demo", signals=10, grid=64 ** 2, channels=1, points=None,
                      width=128, layers=6)
    memory.check_fits("cpu", "occupancy", signals=10, grid=128 ** 3, channels=1,
                      points=16384, width=64, layers=5, in_features=3)


def test_cli_memory_error_comes_before_any_output(image_file, tmp_path):
    out = tmp_path / "fit"
    proc = subprocess.run([sys.executable, "-m", "strainer_fast", "fit", str(image_file),
                           "--init", "siren", "--size", "16384", "--gray", "--steps", "1", "--out",
                           str(out), *FAST], env=cli_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "--points" in proc.stderr and "GiB" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    enc = tmp_path / "enc.pt"
    assert main(["pretrain", "--data", str(image_file), "--out", str(enc), "--size", "16384",
                 *FAST]) == 2
    assert not list(tmp_path.glob("enc*"))
    occ = tmp_path / "occ"
    proc = subprocess.run([sys.executable, "-m", "strainer_fast", "occupancy", "fit", "--res",
                           "2048", "--init", "siren", "--out", str(occ), *FAST], env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "use a smaller --size / --res" in proc.stderr, proc.stderr
    assert not occ.exists()


def test_points_flag_round_trip_through_config_json(image_file, tmp_path):
    first, again = tmp_path / "a", tmp_path / "b"
    assert main(["fit", str(image_file), "--init", "siren", "--size", "16", "--width", "16",
                 "--layers", "3", "--steps", "6", "--log-every", "3", "--points", "32",
                 "--out", str(first), *FAST]) == 0
    saved = json.loads((first / "config.json").read_text())
    assert saved["config"]["fit"]["points"] == 32
    assert main(["run", str(first / "config.json"), "--out", str(again)]) == 0
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (first, again)]
    assert metrics[0]["methods"]["siren"]["psnr"] == metrics[1]["methods"]["siren"]["psnr"]
    enc = tmp_path / "enc.pt"
    assert main(["pretrain", "--data", str(image_file), "--out", str(enc), "--size", "16",
                 "--width", "16", "--layers", "3", "--shared", "2", "--steps", "2",
                 "--points", "64", *FAST]) == 0
    assert json.loads(enc.with_suffix(".config.json").read_text())["config"]["points"] == 64
    assert main(["superres", str(image_file), "--init", "siren", "--points", "64", "--out",
                 str(tmp_path / "sr"), *FAST]) == 2
    assert not (tmp_path / "sr").exists()


PEAK = """
import torch
{setup}
base = int(open("/proc/self/statm").read().split()[1]) * 4096
{run}
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(int(hwm.split()[1]) * 1024 - base)
"""


def peak_bytes(setup: str, run: str) -> int:
    """Peak RSS growth (bytes) of ``run`` after ``setup``, in a fresh interpreter (VmHWM:
    unlike ru_maxrss it does not inherit the forking parent's RSS)."""
    proc = subprocess.run([sys.executable, "-c", PEAK.format(setup=setup, run=run)],
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1])


def test_memory_estimate_bounds_a_measured_step_without_being_absurd():
    setup = ("from strainer_fast.fit import initial_model\n"
             "from strainer_fast.train import image_mse\n"
             "img = torch.rand(1, 256, 256, 1)\n"
             "model = initial_model('siren', 1, 1, width=128, layers=6)\n"
             "opt = torch.optim.Adam(model.parameters(), 1e-4)\n"
             "obj = image_mse(model, img, points=32768, generator=torch.Generator())")
    run = "for s in range(3):\n    opt.zero_grad(); obj(s).sum().backward(); opt.step()"
    measured = peak_bytes(setup, run)
    est = memory.run_bytes(signals=1, grid=256 ** 2, channels=1, points=32768, width=128,
                           layers=6)
    assert measured < est < 4 * measured, (measured, est)


def test_a_4096_px_image_loads_without_many_float_copies(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray((smooth(4096)[..., 0].numpy() * 255).astype(np.uint8)).save(path)
    grown = peak_bytes("from strainer_fast.data import load_images",
                       f"img, _ = load_images({str(path)!r}, 4096)\nassert img.shape == "
                       "(1, 4096, 4096, 1)")
    assert grown < 2.25 * 4096 ** 2 * 4  # the float result, the decoded bytes, little else
