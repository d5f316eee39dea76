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
