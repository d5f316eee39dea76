"""The value range setting (strainer_fast.value_range, issue 29): the mapping and the PSNR
factor, different fits under the two ranges with PSNR on [0, 1] pixels either way, encoders
and TransINR / IPC models that record their range (checkpoints, legacy files) and are refused
under the other one, and the --value-range flag through the CLI into the saved configs."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from strainer_fast import config
from strainer_fast.checkpoint import load_encoder, load_strainer, save_checkpoint
from strainer_fast.cli import COMMANDS, build_parser, config_from_args, main
from strainer_fast.data import coord_grid, from_output, to_target
from strainer_fast.fit import fit, fit_many, initial_model
from strainer_fast.generalizable import (load_generalizable, resolve_generalizable,
                                         save_generalizable, train_generalizable)
from strainer_fast.jobs import compare
from strainer_fast.meta import meta_init
from strainer_fast.metrics import psnr
from strainer_fast.models import Strainer
from strainer_fast.pretrain import pretrain
from strainer_fast.tasks.common import save_png
from strainer_fast.value_range import (DEFAULT_VALUE_RANGE, LEGACY_VALUE_RANGE, VALUE_RANGES,
                                       resolve)

FAST = ["--no-progress", "--device", "cpu"]
NET = dict(width=16, layers=3, progress=False, device="cpu")


def smooth(k: int = 1, size: int = 10) -> torch.Tensor:
    """K images [K, size, size, 1] in [0, 1] with smooth structure."""
    y, x = torch.meshgrid(torch.linspace(0, 3, size), torch.linspace(0, 3, size),
                          indexing="ij")
    return torch.stack([(torch.sin(x * (i + 1) + y) * torch.cos(y - i) + 1) / 2
                        for i in range(k)])[..., None].clamp(0, 1)


@pytest.fixture(scope="module")
def unit_encoder(tmp_path_factory):
    """A tiny STRAINER-2 pretrained under "unit", saved."""
    path = tmp_path_factory.mktemp("vr") / "unit.pt"
    model = pretrain(smooth(2), shared=2, steps=3, out=path, value_range="unit", **NET)
    return model, path


def test_two_ranges_and_the_psnr_factor():
    assert set(VALUE_RANGES) == {"signed", "unit"} and DEFAULT_VALUE_RANGE == "signed"
    assert LEGACY_VALUE_RANGE == "signed"
    images = torch.rand(2, 3, 4, 1)
    signed, unit = resolve("signed"), resolve("unit")
    # signed is the historical mapping, bit for bit; unit is the pixels as loaded
    assert torch.equal(signed.to_target(images), (images * 2 - 1).reshape(2, 12, 1))
    assert torch.equal(unit.to_target(images), images.reshape(2, 12, 1))
    assert torch.equal(to_target(images), signed.to_target(images))  # the default
    out = torch.randn(2, 12, 1)
    assert torch.equal(from_output(out, 3, 4), ((out + 1) / 2).clamp(0, 1).reshape(2, 3, 4, 1))
    assert torch.equal(from_output(out, 3, 4, "unit"), out.clamp(0, 1).reshape(2, 3, 4, 1))
    for vr in (signed, unit):
        assert torch.allclose(vr.to_pixels(vr.to_target(images), 3, 4), images)
        # a training MSE on targets -> the PSNR of the same error on [0, 1] pixels
        pred = (images + 0.03 * torch.randn(images.shape)).clamp(0, 1)
        mse = ((vr.to_target(pred) - vr.to_target(images)) ** 2).mean(dim=(1, 2))
        torch.testing.assert_close(vr.psnr(mse), psnr(pred, images))
    assert signed.psnr(torch.tensor(4e-4)).item() == pytest.approx(40.0)
    assert unit.psnr(torch.tensor(1e-4)).item() == pytest.approx(40.0)
    with pytest.raises(ValueError, match="signed, unit"):
        resolve("[0, 1]")
    with pytest.raises(ValueError, match="value range must be one of"):
        fit(images[0], "siren", steps=1, value_range="bogus", **NET)


def test_the_ranges_give_different_fits_with_psnr_on_pixels():
    """Same init (same seed), different targets: different weights and curves; the logged
    PSNR is that of the decoded render on [0, 1] pixels, the training PSNR that of the
    unclamped decoded output; both fits improve by a sane amount."""
    image = smooth()
    grid = coord_grid(10, 10)
    with torch.no_grad():
        init_out = initial_model("siren", 1, 1, width=16, layers=3)(grid)
    runs = {vr: fit_many(image, "siren", steps=60, lr=1e-3, log_every=30, value_range=vr,
                         **NET) for vr in VALUE_RANGES}
    for name, r in runs.items():
        vr = resolve(name)
        with torch.no_grad():
            out = r.model(grid)
        torch.testing.assert_close(torch.tensor(r.psnr[-1]), psnr(vr.to_pixels(out, 10, 10),
                                                                  image))
        unclamped = ((init_out - vr.low) / vr.width).reshape(1, 10, 10, 1)
        assert r.train_psnr[0][0] == pytest.approx(float(psnr(unclamped, image)), abs=1e-3)
        assert np.isfinite(r.psnr[-1][0]) and r.psnr[0][0] + 5 < r.psnr[-1][0] < 100
    signed, unit = runs["signed"], runs["unit"]
    assert signed.train_psnr[0] != unit.train_psnr[0]  # same weights, other targets
    assert not torch.equal(signed.model.dec_w[0], unit.model.dec_w[0])
    assert signed.psnr[-1] != unit.psnr[-1]


def test_pretraining_records_the_range_and_checkpoints_round_trip(unit_encoder, tmp_path):
    model, path = unit_encoder
    assert model.value_range == "unit" and model.encoder().value_range == "unit"
    assert torch.load(path, weights_only=True)["meta"]["value_range"] == "unit"
    assert load_encoder(path).value_range == "unit"
    assert load_strainer(path).value_range == "unit"
    signed = pretrain(smooth(2), shared=2, steps=1, out=tmp_path / "s.pt", **NET)
    assert signed.value_range == "signed" and load_encoder(tmp_path / "s.pt").value_range == \
        "signed"
    one = pretrain(smooth(2), shared=2, steps=3, value_range="signed", **NET)
    assert not torch.equal(one.enc_w[0], model.enc_w[0])  # the range changes pretraining


def test_mismatched_encoder_is_refused_unset_takes_the_encoders(unit_encoder):
    _, path = unit_encoder
    enc = load_encoder(path)
    image = smooth()
    with pytest.raises(ValueError, match=rf"{path}.*pretrained under value range unit "
                                         r"\[0, 1\] but this fit uses signed \[-1, 1\].*"
                                         r"--value-range unit"):
        fit_many(image, enc, value_range="signed", steps=1, **NET)
    with pytest.raises(ValueError, match="pretrained under value range unit"):  # as init_weights
        fit_many(image, "strainer", init_weights=enc, value_range="signed", steps=1, **NET)
    unset = fit_many(image, enc, steps=3, **NET)
    same = fit_many(image, enc, steps=3, value_range="unit", **NET)
    assert unset.train_psnr == same.train_psnr


def test_legacy_checkpoint_loads_as_signed(tmp_path):
    path = save_checkpoint(Strainer(1, width=16, layers=3, shared=2), tmp_path / "old.pt",
                           signals=["a"], steps=1, seed=0)
    data = torch.load(path, weights_only=True)
    assert "value_range" not in data["meta"]  # what a checkpoint from before the field holds
    enc = load_encoder(path)
    assert enc.value_range == "signed" and load_strainer(path).value_range == "signed"
    with pytest.raises(ValueError, match="pretrained under value range signed"):
        fit_many(smooth(), enc, value_range="unit", steps=1, **NET)
    assert np.isfinite(fit_many(smooth(), enc, steps=2, **NET).final_psnr())


def test_meta_and_compare_take_the_range():
    images = smooth(2)
    layers = {vr: meta_init(images, "fomaml", steps=2, value_range=vr, **NET)
              for vr in VALUE_RANGES}
    assert not torch.equal(layers["signed"][-1][1], layers["unit"][-1][1])
    kw = dict(width=16, layers=3, shared=2, steps=3, log_every=1, pretrain_steps=2,
              progress=False, verbose=False, device="cpu")
    # strainer-1 pretrains under the same range, or its fit would refuse the encoder
    res = compare(images, smooth(1), ["siren", "meta", "strainer-1"], value_range="unit", **kw)
    alone = fit_many(smooth(1), "siren", steps=3, log_every=1, value_range="unit", **NET)
    assert res["siren"].psnr == alone.psnr
    assert compare(images, smooth(1), ["siren"], **kw)["siren"].psnr != alone.psnr


def test_generalizable_models_record_the_range(tmp_path):
    tiny = dict(size=16, width=16, layers=4, dim=32, depth=2, heads=2, patch=8, groups=4,
                steps=2, batch=2, progress=False, device="cpu")
    images = smooth(3, 16)
    model = train_generalizable("transinr", images, value_range="unit", **tiny)
    assert model.config["value_range"] == "unit"
    path = save_generalizable(model, tmp_path / "t.pt", **model.meta)
    assert load_generalizable(path).config["value_range"] == "unit"
    with pytest.raises(ValueError, match="pretrained under value range unit"):
        resolve_generalizable("transinr", model, images, value_range="signed")
    assert resolve_generalizable("transinr", model, images, value_range="unit") is model
    data = torch.load(path, weights_only=True)
    del data["config"]["value_range"]  # a checkpoint from before the field
    torch.save(data, tmp_path / "old.pt")
    assert load_generalizable(tmp_path / "old.pt").config["value_range"] == "signed"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("vrimg")
    for i, image in enumerate(smooth(2)):
        save_png(image, root / f"i{i}.png")
    return root


def test_every_image_job_has_the_flag_occupancy_does_not():
    for words, (cls, _, _) in COMMANDS.items():
        names = {name for name, *_ in config.flat_fields(cls)}
        assert ("value-range" in names) == (not words.startswith("occupancy")), words
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fit", "x.png", "--init", "siren", "--out", "o",
                                   "--value-range", "bogus"])


def test_cli_flag_into_the_saved_config_and_encoder(folder, tmp_path, capsys):
    enc = tmp_path / "enc.pt"
    small = ["--size", "10", "--width", "8", "--layers", "3"]
    assert main(["pretrain", "--data", str(folder), "--out", str(enc), *small, "--shared", "2",
                 "--steps", "2", "--value-range", "unit", *FAST]) == 0
    assert json.loads(enc.with_suffix(".config.json").read_text())["config"][
        "value_range"] == "unit"
    assert load_encoder(enc).value_range == "unit"
    img = str(folder / "i0.png")
    fit_args = ["fit", img, "--steps", "2", "--log-every", "1", *FAST]
    out = tmp_path / "siren"
    assert main([*fit_args, "--init", "siren", *small, "--out", str(out),
                 "--value-range", "unit"]) == 0
    saved = out / "config.json"
    assert json.loads(saved.read_text())["config"]["value_range"] == "unit"
    _, cfg = config_from_args(build_parser().parse_args(["run", str(saved)]))
    assert cfg.value_range == "unit"
    assert main([*fit_args, "--init", "siren", *small, "--out", str(tmp_path / "d")]) == 0
    assert json.loads((tmp_path / "d" / "config.json").read_text())["config"][
        "value_range"] == "signed"  # the default
    # unset: the encoder's range is used and recorded; the other one is refused in one line
    assert main([*fit_args, "--init", "strainer", "--encoder", str(enc),
                 "--out", str(tmp_path / "s")]) == 0
    assert json.loads((tmp_path / "s" / "config.json").read_text())["config"][
        "value_range"] == "unit"
    capsys.readouterr()
    assert main([*fit_args, "--init", "strainer", "--encoder", str(enc), "--out",
                 str(tmp_path / "x"), "--value-range", "signed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pretrained under value range unit" in err[0]
    assert "--value-range unit" in err[0] and not (tmp_path / "x").exists()
    assert main(["denoise", img, "--init", "siren", *small, "--steps", "2", "--log-every", "1",
                 "--value-range", "unit", "--out", str(tmp_path / "dn"), *FAST]) == 0
    assert json.loads((tmp_path / "dn" / "config.json").read_text())["config"][
        "value_range"] == "unit"


def test_paper_preset_uses_the_authors_range():
    prereg = tomllib.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "repro"
                            / "preregistration.toml").read_text())
    assert prereg["presets"]["paper"]["value_range"] == "unit"
    assert all(p["value_range"] in VALUE_RANGES for p in prereg["presets"].values())


def test_time_to_quality_loop_takes_the_range():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from ttq import fit_until
    finally:
        sys.path.pop(0)
    image = smooth()
    grid = coord_grid(10, 10)
    curves = {}
    for vr in VALUE_RANGES:
        model = initial_model("siren", 1, 1, width=16, layers=3)
        with torch.no_grad():
            out = model(grid)
        curves[vr] = fit_until(model, image, max_steps=3, lr=1e-3, value_range=vr)
        assert curves[vr]["value_range"] == vr
        r = resolve(vr)  # step 1: the init's loss, as PSNR of the unclamped pixels
        unclamped = ((out - r.low) / r.width).reshape(1, 10, 10, 1)
        assert curves[vr]["psnr"][0] == pytest.approx(float(psnr(unclamped, image)), abs=1e-3)
        with torch.no_grad():  # the returned weights' PSNR is in the run's range too
            returned = ((model(grid) - r.low) / r.width).reshape(1, 10, 10, 1)
        assert curves[vr]["returned_psnr"][0] == pytest.approx(float(psnr(returned, image)),
                                                                abs=1e-3)
    assert curves["signed"]["psnr"] != curves["unit"]["psnr"]
