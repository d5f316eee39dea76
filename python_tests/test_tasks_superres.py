"""Super-resolution task: the area-downsampling operator, fitting through it, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from strainer_fast.cli import main
from strainer_fast.fit import fit_many
from strainer_fast.tasks.superres import area_operator, downsample

TINY = ["--width", "16", "--layers", "3", "--shared", "2", "--lr", "1e-3", "--no-progress",
        "--device", "cpu"]


def test_downsample_is_the_block_mean():
    x = torch.rand(2, 8, 12, 3, dtype=torch.float64)
    y = downsample(x, 4)
    assert y.shape == (2, 2, 3, 3)
    blocks = x.reshape(2, 2, 4, 3, 4, 3).mean(dim=(2, 4))
    torch.testing.assert_close(y, blocks)
    const = torch.full((1, 8, 8, 1), 0.37, dtype=torch.float64)
    torch.testing.assert_close(downsample(const, 2), torch.full((1, 4, 4, 1), 0.37,
                                                                dtype=torch.float64))


def test_downsample_adjoint_spreads_each_value_over_its_block():
    s = 4
    x = torch.rand(1, 8, 8, 2, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 2, 2, 2, dtype=torch.float64)
    (adj,) = torch.autograd.grad(downsample(x, s), x, grad_outputs=y)
    spread = y.repeat_interleave(s, 1).repeat_interleave(s, 2) / s ** 2
    torch.testing.assert_close(adj, spread)
    # <D x, y> = <x, D^T y>, and D D^T = I / s^2.
    torch.testing.assert_close((downsample(x, s) * y).sum(), (x * spread).sum())
    torch.testing.assert_close(downsample(spread, s), y / s ** 2)


def test_downsample_rejects_indivisible_sizes():
    with pytest.raises(ValueError, match="not divisible by --scale 3"):
        downsample(torch.rand(1, 8, 8, 1), 3)


def test_area_operator_matches_downsample_on_flat_outputs():
    out = torch.rand(3, 8 * 8, 2)
    op = area_operator(8, 8, 2)
    expect = downsample(out.reshape(3, 8, 8, 2), 2).reshape(3, 16, 2)
    torch.testing.assert_close(op(out), expect)


def test_fit_through_operator_renders_full_resolution_and_scores_against_reference():
    g = torch.linspace(0, 1, 16)
    hr = (0.5 + 0.4 * torch.sin(6 * g[:, None]) * torch.cos(4 * g[None, :]))[None, ..., None]
    lr = downsample(hr, 4)
    r = fit_many(lr, "siren", width=32, layers=3, steps=60, lr=1e-3, log_every=30,
                 operator=area_operator(16, 16, 4), render_size=(16, 16), reference=hr,
                 progress=False, device="cpu")
    assert r.recon.shape == (1, 16, 16, 1)
    assert r.step == [0, 30, 60]
    assert r.psnr[-1][0] > r.psnr[0][0] + 5
    # The fit matches the observation through the operator.
    obs_err = (downsample(r.recon, 4) - lr).abs().max().item()
    assert obs_err < 0.1
    nometric = fit_many(lr, "siren", width=16, layers=3, steps=2, log_every=1,
                        operator=area_operator(16, 16, 4), render_size=(16, 16),
                        progress=False, device="cpu")
    assert nometric.psnr == [] and nometric.recon.shape == (1, 16, 16, 1)


@pytest.fixture()
def images(tmp_path, monkeypatch):
    monkeypatch.setenv("STRAINER_FAST_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray((rng.random((24, 24)) * 255).astype(np.uint8)).save(folder / f"i{i}.png")
    return folder


def test_cli_superres_compares_inits_and_reports_steps_to_reach(images, tmp_path):
    out = tmp_path / "sr"
    code = main(["superres", str(images), "--scale", "4", "--size", "16", "--steps", "6",
                 "--pretrain-steps", "3", "--log-every", "2", "--out", str(out), *TINY])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["methods"]) == {"siren", "strainer"}
    assert m["methods"]["siren"]["step"] == [0, 2, 4, 6]
    assert "strainer_steps_to_siren_final" in m["summary"]
    assert m["config"]["encoder"] is None  # none given: pretrained + cached
    assert m["config"]["encoder_source"].startswith(str(tmp_path / "cache"))
    assert m["config"]["strainer_lr"] == [0.03, 10.0]  # the inverse-problem default
    for name in ("report.md", "psnr.png", "reconstructions.png", "observed/i0.png",
                 "strainer/i1.png"):
        assert (out / name).is_file(), name
    assert Image.open(out / "strainer" / "i0.png").size == (16, 16)
    assert Image.open(out / "observed" / "i0.png").size == (4, 4)


def test_cli_superres_input_lowres_upsamples_without_metrics(images, tmp_path):
    out = tmp_path / "up"
    code = main(["superres", str(images / "i0.png"), "--input-lowres", "--scale", "2",
                 "--init", "siren", "--steps", "2", "--out", str(out), *TINY])
    assert code == 0
    assert Image.open(out / "siren" / "i0.png").size == (48, 48)  # native 24 px x 2
    m = json.loads((out / "metrics.json").read_text())
    assert "methods" not in m and m["config"]["input_lowres"] is True


@pytest.mark.parametrize("args, message", [
    (["--scale", "3", "--size", "16"], "not divisible by --scale 3"),
    (["--init", "meta"], "--init takes a comma list"),
    (["--steps", "0"], "--steps must be >= 1"),
])
def test_cli_superres_errors_are_one_line(images, tmp_path, capsys, args, message):
    code = main(["superres", str(images), "--out", str(tmp_path / "x"), *args, *TINY])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("value, message", [("0.1", "expected ENC,DEC multipliers"),
                                            ("nan,1", "finite and >= 0")])
def test_cli_strainer_lr_flag_errors_are_one_line(images, tmp_path, capsys, value, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["superres", str(images), "--out", str(tmp_path / "x"), "--strainer-lr", value])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert message in err and len(err.splitlines()) == 1
