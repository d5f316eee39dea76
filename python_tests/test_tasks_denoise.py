"""Denoising task: noise models and their statistics, best/final step, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from strainer_fast.cli import main
from strainer_fast.fit import FitResult
from strainer_fast.tasks.denoise import add_noise, best_and_final, parse_noise

TINY = ["--width", "16", "--layers", "3", "--shared", "2", "--lr", "1e-3", "--no-progress",
        "--device", "cpu"]


def test_gaussian_noise_has_zero_mean_and_sigma_std():
    clean = torch.rand(1, 256, 256, 1)
    noisy = add_noise(clean, "gaussian:0.1", seed=3)
    diff = (noisy - clean).double()
    assert abs(diff.mean().item()) < 2e-3
    assert abs(diff.std().item() - 0.1) < 2e-3
    assert noisy.min() < 0 or noisy.max() > 1  # not clipped: the statistics hold


def test_poisson_noise_counts_photons():
    tau, x = 50.0, 0.3
    clean = torch.full((1, 256, 256, 1), x)
    noisy = add_noise(clean, f"poisson:{tau:g}", seed=1).double()
    counts = noisy * tau
    torch.testing.assert_close(counts, counts.round())  # integer photon counts / tau
    assert abs(noisy.mean().item() - x) < 3e-3
    assert abs(noisy.var().item() - x / tau) < 4e-4  # Poisson: var = mean
    dark = add_noise(torch.zeros(1, 8, 8, 1), "poisson:10", seed=0)
    assert torch.all(dark == 0)


def test_noise_is_seeded():
    clean = torch.rand(1, 16, 16, 1)
    for spec in ("gaussian:0.05", "poisson:20"):
        a, b = add_noise(clean, spec, seed=7), add_noise(clean, spec, seed=7)
        torch.testing.assert_close(a, b)
        assert not torch.equal(a, add_noise(clean, spec, seed=8))


@pytest.mark.parametrize("spec", ["gauss:0.1", "gaussian", "gaussian:-1", "poisson:0",
                                  "poisson:nan", "poisson:abc"])
def test_bad_noise_specs(spec):
    with pytest.raises(ValueError, match="--noise must be"):
        parse_noise(spec)


def test_best_and_final_finds_the_peak_of_the_mean_curve():
    r = FitResult(model=None, step=[0, 10, 20, 30],
                  psnr=[[10, 12], [20, 22], [25, 21], [19, 19]])
    assert best_and_final(r) == dict(best_step=20, best_psnr=23.0, final_step=30,
                                     final_psnr=19.0)


def test_cli_denoise_writes_report_with_best_and_final(tmp_path, monkeypatch):
    monkeypatch.setenv("STRAINER_FAST_CACHE", str(tmp_path / "cache"))
    img = tmp_path / "a.png"
    g = np.linspace(0, 1, 20)
    Image.fromarray((np.outer(g, g) * 255).astype(np.uint8)).save(img)
    out = tmp_path / "dn"
    code = main(["denoise", str(img), "--noise", "poisson:30", "--size", "16", "--steps", "6",
                 "--pretrain-steps", "2", "--log-every", "3", "--out", str(out), *TINY])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    for init in ("siren", "strainer"):
        s = m["summary"][init]
        assert s["final_step"] == 6 and s["best_step"] in (0, 3, 6)
        assert s["best_psnr"] == max(m["methods"][init]["psnr"])
    assert m["summary"]["noisy_psnr"] > 10
    for name in ("report.md", "psnr.png", "noisy/a.png", "siren/a.png"):
        assert (out / name).is_file(), name


def test_cli_denoise_bad_noise_is_one_line(tmp_path, capsys):
    code = main(["denoise", "--noise", "salt:3", "--out", str(tmp_path / "x"), *TINY])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--noise must be" in err and len(err.splitlines()) == 1
