"""End-to-end CLI runs (``python -m strainer_fast.cli``) with tiny sizes and steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from strainer_fast.cli import main
from conftest import run_cli as cli

TINY = ["--size", "12", "--width", "16", "--layers", "3", "--shared", "2", "--lr", "1e-3",
        "--no-progress", "--device", "cpu"]
FIT_TINY = ["--lr", "1e-3", "--no-progress", "--device", "cpu"]  # the encoder gives the rest


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for part, n in (("train", 2), ("test", 2)):
        (root / part).mkdir()
        for i in range(n):
            arr = (rng.random((20, 20)) * 255).astype(np.uint8)
            Image.fromarray(arr).save(root / part / f"{part}{i}.png")
    return root


def test_cli_pretrain_fit_compare(folders, tmp_path):
    enc = tmp_path / "enc.pt"
    r = cli("pretrain", "--data", str(folders / "train"), "--out", str(enc), "--steps", "5", *TINY)
    assert r.returncode == 0, r.stderr
    assert enc.is_file()
    r = cli("fit", str(folders / "test" / "test0.png"), "--init", "strainer", "--encoder", str(enc),
            "--steps", "4", "--log-every", "2", "--out", str(tmp_path / "fit"), *FIT_TINY)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert m["methods"]["strainer"]["step"] == [0, 2, 4]
    r = cli("compare", "--train", str(folders / "train"), "--test", str(folders / "test"),
            "--methods", "siren,siren-ft,meta,meta-reptile,strainer-1,strainer-2", "--steps", "3",
            "--pretrain-steps", "2", "--log-every", "1", "--out", str(tmp_path / "cmp"), *TINY)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "cmp"
    for name in ("metrics.json", "report.md", "psnr.png", "reconstructions.png"):
        assert (out / name).is_file()
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["methods"]) == {"siren", "siren-ft", "meta", "meta-reptile", "strainer-1",
                                 "strainer-2"}
    s = m["methods"]["strainer-2"]
    assert s["step"] == [0, 1, 2, 3] and len(s["psnr"]) == len(s["ssim"]) == len(s["wall_s"]) == 4
    assert set(s["per_signal"]) == {"test0.png", "test1.png"}
    assert "device" in m and "torch" in m["versions"]


def test_cli_demo_tiny(tmp_path):
    r = cli("demo", "--out", str(tmp_path / "demo"), "--size", "12", "--steps", "2",
            "--pretrain-steps", "2", "--no-progress", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "demo" / "report.md").read_text()
    assert "STRAINER-10 minus SIREN" in text and "strainer-10" in text and "`demo.png`" in text
    with Image.open(tmp_path / "demo" / "demo.png") as fig:  # curves + 3 x 6 reconstructions
        assert fig.format == "PNG" and fig.width > 2 * fig.height


def test_cli_bad_input_subprocess_one_line(tmp_path):
    r = cli("fit", str(tmp_path / "missing.png"), "--init", "siren", "--out", str(tmp_path))
    assert r.returncode == 2 and "missing.png" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["fit", "{img}", "--init", "strainer", "--out", "x"], "needs --encoder"),
    (["fit", "{img}", "--init", "strainer", "--encoder", "nope.pt", "--out", "x"], "nope.pt"),
    (["fit", "{img}", "--init", "meta", "--out", "x"], "needs --train"),
    (["compare", "--train", "{dir}", "--test", "{dir}", "--methods", "foo", "--out", "x"],
     "unknown method"),
    (["compare", "--train", "{dir}", "--test", "{dir}", "--methods", "strainer-5", "--out", "x",
      "--steps", "1", "--pretrain-steps", "1", "--size", "8", "--no-progress"], "needs 5"),
    (["pretrain", "--data", "{dir}", "--out", "x.pt", "--steps", "0"], "--steps must be"),
    (["pretrain", "--data", "{dir}/none", "--out", "x.pt"], "no such file or folder"),
])
def test_cli_bad_input_one_line_error(folders, capsys, args, message):
    args = [a.format(img=folders / "test" / "test0.png", dir=folders / "train") for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_encoder_mismatch(folders, tmp_path, capsys):
    enc = tmp_path / "enc.pt"
    assert main(["pretrain", "--data", str(folders / "train"), "--out", str(enc), "--steps", "1",
                 *TINY]) == 0
    assert main(["fit", str(folders / "test" / "test0.png"), "--init", "strainer", "--encoder",
                 str(enc), "--w0", "10", "--out", str(tmp_path / "f"), *FIT_TINY]) == 2
    assert "w0=30.0 in checkpoint but 10.0" in capsys.readouterr().err
