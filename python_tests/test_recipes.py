"""The fitting recipes: constants equal the committed validation results, 'fast' is exactly
its settings, and it refuses what it was not validated for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import strainer_fast as sf
from strainer_fast.cli import main
from strainer_fast.recipes import FAST, PAPER, apply_recipe

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def test_fast_recipe_is_what_the_validation_split_chose():
    weight = json.loads((RESULTS / "tune_weight_scale.json").read_text())
    assert weight["source"] == "validation split"
    chosen = weight["chosen_recipe"]
    assert (FAST["siren"].lr, FAST["siren"].weight_scale) == (chosen["lr"], chosen["alpha"])
    stab = json.loads((RESULTS / "tune_stabilizer.json").read_text())
    assert {init: r.stabilize for init, r in FAST.items()} == stab["chosen"]
    assert {init: r.lr for init, r in FAST.items()} == {
        init: v["lr"] for init, v in stab["settings"]["recipe"].items()}


def _images(k: int = 2, size: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(k, size, size, 1, generator=g)


def test_fast_recipe_runs_exactly_its_settings():
    images = _images()
    kw = dict(width=16, layers=3, steps=6, log_every=3, progress=False)
    fast = sf.fit_many(images, "siren", recipe="fast", **kw)
    r = FAST["siren"]
    same = sf.fit_many(images, "siren", lr=r.lr, weight_scale=r.weight_scale,
                       stabilize=r.stabilize, **kw)
    paper = sf.fit_many(images, "siren", **kw)
    assert fast.train_psnr == same.train_psnr
    assert fast.train_psnr != paper.train_psnr


def test_recipe_refuses_overrides_and_unvalidated_inits():
    assert apply_recipe("paper", "meta", lr=3e-4, weight_scale=1.0, stabilize="off").lr == 3e-4
    assert apply_recipe("fast", "strainer", **vars_of(PAPER)) == FAST["strainer"]
    with pytest.raises(ValueError, match="leave them at their defaults"):
        apply_recipe("fast", "siren", lr=3e-4, weight_scale=1.0, stabilize="off")
    with pytest.raises(ValueError, match="validated for the inits"):
        apply_recipe("fast", "meta", **vars_of(PAPER))
    with pytest.raises(ValueError, match="recipe must be one of"):
        apply_recipe("quick", "siren", **vars_of(PAPER))
    with pytest.raises(ValueError, match="validated for the methods"):
        sf.compare(_images(), _images(), ["siren", "meta"], recipe="fast", steps=1,
                   progress=False, verbose=False)


def vars_of(r) -> dict:
    return dict(lr=r.lr, weight_scale=r.weight_scale, stabilize=r.stabilize)


def test_cli_recipe_flag_round_trip(tmp_path, capsys):
    img = tmp_path / "i.png"
    Image.fromarray((_images(1)[0, ..., 0].numpy() * 255).astype(np.uint8)).save(img)
    out = tmp_path / "fit"
    args = ["fit", str(img), "--init", "siren", "--out", str(out), "--size", "12", "--width",
            "16", "--layers", "3", "--steps", "3", "--no-progress", "--device", "cpu"]
    assert main([*args, "--recipe", "fast"]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["fit"]["recipe"] == "fast"
    assert main([*args[:5], str(tmp_path / "bad"), *args[6:], "--recipe", "fast",
                 "--lr", "3e-4"]) == 2
    assert "leave them at their defaults" in capsys.readouterr().err


def _tuned(path: Path, chosen: dict) -> Path:
    path.write_text(json.dumps({"chosen": chosen}))
    return path


OCC_PAPER = dict(lr=1e-4, stabilize="off", sampling="surface")


def test_occupancy_fast_recipe_needs_the_tuning_json(tmp_path, monkeypatch, capsys):
    from strainer_fast import recipes

    monkeypatch.setattr(recipes, "OCCUPANCY_TUNED", tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"not validated yet.*benchmarks/tune_occupancy\.py"):
        recipes.occupancy_recipe("fast", "siren", **OCC_PAPER)
    assert recipes.occupancy_recipe("paper", "siren", **dict(OCC_PAPER, lr=3e-4)).lr == 3e-4
    target = np.zeros((8, 8, 8), bool)
    target[2:6, 2:6, 2:6] = True
    with pytest.raises(ValueError, match="tune_occupancy"):
        sf.fit_occupancy(target, "siren", recipe="fast", steps=1, progress=False)
    out = tmp_path / "fit"
    assert main(["occupancy", "fit", "--init", "siren", "--recipe", "fast", "--res", "8",
                 "--out", str(out), "--no-progress", "--device", "cpu"]) == 2
    assert "tune_occupancy.py" in capsys.readouterr().err and not out.exists()
    bad = tmp_path / "bad.json"
    for text, match in (("{}", "not a tune_occupancy.py result"),
                        ('{"chosen": {"siren": {"lr": 1e-3, "stabilize": "off", '
                         '"sampling": "edges"}}}', "invalid settings")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=match):
            recipes.occupancy_fast(bad)


def test_occupancy_fast_recipe_applies_the_json(tmp_path, monkeypatch):
    from strainer_fast import recipes

    chosen = dict(lr=1e-3, stabilize="wsd", sampling="uniform")
    monkeypatch.setattr(recipes, "OCCUPANCY_TUNED", _tuned(tmp_path / "t.json",
                                                           {"siren": chosen}))
    assert recipes.occupancy_recipe("fast", "siren", **OCC_PAPER) == \
        recipes.OccupancyRecipe(**chosen)
    with pytest.raises(ValueError, match="leave them at their defaults"):
        recipes.occupancy_recipe("fast", "siren", **dict(OCC_PAPER, sampling="uniform"))
    with pytest.raises(ValueError, match="validated for the inits"):
        recipes.occupancy_recipe("fast", "strainer", **OCC_PAPER)
    g = np.linspace(-1, 1, 12)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    target = x ** 2 + y ** 2 + z ** 2 < 0.4
    kw = dict(width=16, layers=3, points=256, steps=6, eval_every=2, progress=False,
              device="cpu")
    fast = sf.fit_occupancy(target, "siren", recipe="fast", **kw)
    same = sf.fit_occupancy(target, "siren", **chosen, **kw)
    assert fast.iou == same.iou and fast.iou != sf.fit_occupancy(target, "siren", **kw).iou
    out = tmp_path / "fit"
    assert main(["occupancy", "fit", "--init", "siren", "--recipe", "fast", "--res", "12",
                 "--width", "16", "--layers", "3", "--shared", "2", "--points", "256",
                 "--steps", "4", "--eval-every", "2", "--out", str(out), "--no-progress",
                 "--device", "cpu"]) == 0
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["recipe"] == "fast" and saved["lr"] == 1e-4  # flags kept, recipe applied


def test_committed_occupancy_recipe_is_loadable():
    from strainer_fast import recipes

    if not recipes.OCCUPANCY_TUNED.is_file():
        pytest.skip("benchmarks/results/tune_occupancy.json is not committed yet")
    assert set(recipes.occupancy_fast()) == {"siren", "strainer"}
