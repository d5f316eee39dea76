"""Typed configs and the generated CLI: the flags each command offers, the encoder's
architecture taken from its checkpoint, config.json written and re-run with the same
metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from strainer_fast import config
from strainer_fast.cli import COMMANDS, build_parser, main

FAST = ["--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cfg")
    rng = np.random.default_rng(5)
    for i in range(3):
        Image.fromarray((rng.random((20, 20)) * 255).astype(np.uint8)).save(root / f"i{i}.png")
    return root


def flags(words: str) -> set[str]:
    return {f"--{name}" for name, *_ in config.flat_fields(COMMANDS[words][0])}


def test_steps_flags_and_no_useless_flags():
    assert {"--steps", "--lr"} <= flags("pretrain") and "--pretrain-steps" not in flags("pretrain")
    assert {"--steps", "--lr"} <= flags("occupancy pretrain")
    assert "--pretrain-steps" not in flags("occupancy pretrain")
    for words in ("compare", "demo", "superres", "denoise", "occupancy fit", "occupancy demo"):
        assert {"--steps", "--pretrain-steps"} <= flags(words), words
    for words in ("occupancy pretrain", "occupancy fit", "occupancy demo", "demo"):
        assert "--gray" not in flags(words), words
    assert "--shared" not in flags("fit")  # a fit's shared layers come from its encoder


def test_occupancy_pretrain_steps_and_no_gray(tmp_path, capsys):
    out = tmp_path / "occ.pt"
    assert main(["occupancy", "pretrain", "--steps", "2", "--res", "12", "--width", "8",
                 "--layers", "3", "--shared", "2", "--points", "256", "--out", str(out),
                 *FAST]) == 0
    saved = json.loads(out.with_suffix(".config.json").read_text())
    assert saved["command"] == "occupancy pretrain" and saved["config"]["train"]["steps"] == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["occupancy", "fit", "--gray", "--out", "x"])
    assert "unrecognized arguments: --gray" in capsys.readouterr().err


def test_superres_takes_the_encoders_architecture(folder, tmp_path, capsys):
    """pretrain at width 16 (the superres preset is 128): superres --encoder just works;
    a conflicting --width is a clear one-line error."""
    enc = tmp_path / "enc.pt"
    assert main(["pretrain", "--data", str(folder), "--out", str(enc), "--size", "16",
                 "--width", "16", "--layers", "3", "--shared", "2", "--steps", "2", *FAST]) == 0
    out = tmp_path / "sr"
    assert main(["superres", str(folder / "i0.png"), "--encoder", str(enc), "--size", "16",
                 "--steps", "2", "--out", str(out), *FAST]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["model"] == dict(width=16, layers=3, shared=2, w0=30.0)
    capsys.readouterr()
    assert main(["superres", str(folder / "i0.png"), "--encoder", str(enc), "--width", "32",
                 "--size", "16", "--steps", "2", "--out", str(tmp_path / "x"), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "width=16 in checkpoint but 32 requested" in err[0]


@pytest.mark.parametrize("argv", [
    ["compare", "--train", "{d}", "--test", "{d}", "--methods", "siren,strainer-2", "--size",
     "12", "--width", "16", "--layers", "3", "--shared", "2", "--steps", "3",
     "--pretrain-steps", "2", "--log-every", "1"],
    ["denoise", "{d}/i0.png", "--size", "12", "--width", "16", "--layers", "3", "--shared", "2",
     "--steps", "3", "--pretrain-steps", "2", "--log-every", "1"],
])
def test_run_config_json_gives_the_same_metrics(folder, tmp_path, argv):
    first = tmp_path / "first"
    argv = [a.format(d=folder) for a in argv]
    assert main([*argv, "--out", str(first), *FAST]) == 0
    saved = json.loads((first / "config.json").read_text())
    assert saved["command"] == argv[0] and saved["config"]["out"] == str(first)
    again = tmp_path / "again"
    assert main(["run", str(first / "config.json"), "--out", str(again)]) == 0
    a, b = (json.loads((p / "metrics.json").read_text()) for p in (first, again))
    assert a["methods"] and a["methods"].keys() == b["methods"].keys()
    for m in a["methods"]:
        assert a["methods"][m]["psnr"] == b["methods"][m]["psnr"], m
    assert json.loads((again / "config.json").read_text())["config"] == dict(
        saved["config"], out=str(again))


def test_demo_config_is_fully_resolved(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "12", "--steps", "2",
                 "--pretrain-steps", "2", *FAST]) == 0
    cfg = json.loads((out / "config.json").read_text())["config"]
    leaves = [v for part in cfg.values() for v in (part.values() if isinstance(part, dict)
                                                   else [part])]
    assert None not in leaves  # every preset value written out
    assert cfg["model"]["width"] == config.PRESETS["demo"]["cpu"]["width"]


def test_bad_config_files(tmp_path, capsys):
    (tmp_path / "c.json").write_text("{}")
    assert main(["run", str(tmp_path / "c.json")]) == 2
    assert "not a strainer_fast config.json" in capsys.readouterr().err
    good = config.write_config(tmp_path / "g.json", "fit", config.FitJob(image="x", init="siren",
                                                                       out="o"))
    data = json.loads(good.read_text())
    data["config"]["bogus"] = 1
    good.write_text(json.dumps(data))
    assert main(["run", str(good)]) == 2
    assert "unknown config keys ['bogus']" in capsys.readouterr().err


def test_run_pretrain_config_gives_the_same_checkpoint(folder, tmp_path):
    import torch

    enc = tmp_path / "enc.pt"
    assert main(["pretrain", "--data", str(folder), "--out", str(enc), "--size", "12",
                 "--width", "8", "--layers", "3", "--shared", "2", "--steps", "3", *FAST]) == 0
    again = tmp_path / "again.pt"
    assert main(["run", str(tmp_path / "enc.config.json"), "--out", str(again)]) == 0
    a, b = (torch.load(p, weights_only=True) for p in (enc, again))
    assert all(torch.equal(x, y) for x, y in zip(a["weights"] + a["biases"],
                                                 b["weights"] + b["biases"]))


def test_occupancy_demo_tiny(tmp_path):
    out = tmp_path / "occ"
    assert main(["occupancy", "demo", "--out", str(out), "--res", "12", "--width", "8",
                 "--layers", "3", "--shared", "2", "--points", "256", "--steps", "2",
                 "--pretrain-steps", "2", "--eval-every", "1", *FAST]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["title"] == "occupancy fit of statue" and set(m["methods"]) == {"siren", "strainer"}
    saved = json.loads((out / "config.json").read_text())
    assert saved["command"] == "occupancy demo" and saved["config"]["mesh_steps"] == "2"


def test_refused_job_leaves_no_output(folder, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--train", str(folder), "--test", str(folder), "--methods",
                 "siren,strainer-5", "--size", "8", "--out", str(out), *FAST]) == 2
    assert "strainer-5 needs 5 training images, got 3" in capsys.readouterr().err
    assert not out.exists()
