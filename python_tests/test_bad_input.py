"""Bad input gives one error line and exit status 2, never a traceback or partial output;
unusual but valid images (16-bit, palette, 1x1) load correctly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from strainer_fast import data
from strainer_fast.checkpoint import save_checkpoint
from strainer_fast.cli import main
from strainer_fast.data import load_image
from strainer_fast.models import Strainer

TINY = ["--size", "12", "--width", "16", "--layers", "3", "--shared", "2", "--steps", "2",
        "--no-progress", "--device", "cpu"]
FIT_TINY = ["--size", "12", "--width", "16", "--layers", "3", "--steps", "2", "--no-progress",
            "--device", "cpu"]


def run_cli(capsys, *args: str) -> tuple[int, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse errors
        code = exc.code
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, match: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("strainer-fast") and "error:" in lines[0], err
    assert match in lines[0], lines[0]


def png(path, arr, **kw):
    Image.fromarray(arr, **kw).save(path)
    return path


@pytest.fixture
def good(tmp_path):
    d = tmp_path / "good"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        png(d / f"g{i}.png", (rng.random((14, 14)) * 255).astype(np.uint8))
    return d


def bad_folder(tmp_path, name: str, content: bytes):
    d = tmp_path / "bad"
    d.mkdir(exist_ok=True)
    (d / name).write_bytes(content)
    return d


@pytest.mark.parametrize("name,content,match", [
    ("text.png", b"this is not a PNG\n" * 10, "not a readable image"),
    ("noise.jpg", bytes(range(256)) * 4, "not a readable image"),
    ("obj.npy", b"\x93NUMPY garbage", "not a readable .npy"),
])
def test_unreadable_files(tmp_path, capsys, name, content, match):
    d = bad_folder(tmp_path, name, content)
    code, err = run_cli(capsys, "pretrain", "--data", str(d), "--out", str(tmp_path / "e.pt"),
                        *TINY)
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "e.pt").exists()


def test_truncated_png(tmp_path, capsys, good):
    whole = (good / "g0.png").read_bytes()
    d = bad_folder(tmp_path, "cut.png", whole[: len(whole) // 2])
    code, err = run_cli(capsys, "pretrain", "--data", str(d), "--out", str(tmp_path / "e.pt"),
                        *TINY)
    assert_one_line_error(code, err, "cut.png")


def test_pickled_and_empty_npy(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a readable .npy"):
        load_image(tmp_path / "obj.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 5), np.float32))
    with pytest.raises(ValueError, match="empty image"):
        load_image(tmp_path / "empty.npy")


def test_unusual_valid_images(tmp_path):
    sixteen = np.full((6, 6), 32768, np.uint16)
    img = load_image(png(tmp_path / "16.png", sixteen), size=6)
    assert img.shape == (6, 6, 1) and abs(img.mean().item() - 32768 / 65535) < 1e-4
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.save(tmp_path / "pal.png")
    rgb = load_image(tmp_path / "pal.png", size=2)
    assert rgb.shape == (2, 2, 3) and rgb[0, 0].tolist() == [1.0, 0.0, 0.0]
    one = load_image(png(tmp_path / "1.png", np.array([[200]], np.uint8)), size=4)
    assert one.shape == (4, 4, 1) and torch.allclose(one, torch.full_like(one, 200 / 255))


def test_huge_image_limit(tmp_path, capsys, good, monkeypatch):
    monkeypatch.setattr(data, "MAX_PIXELS", 100)
    code, err = run_cli(capsys, "pretrain", "--data", str(good), "--out", str(tmp_path / "e.pt"),
                        *TINY)
    assert_one_line_error(code, err, "14x14 image exceeds the limit of 100 pixels")


def test_empty_and_non_image_folders(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, err = run_cli(capsys, "pretrain", "--data", str(tmp_path / "empty"), "--out",
                        str(tmp_path / "e.pt"), *TINY)
    assert_one_line_error(code, err, "folder holds no images")
    d = bad_folder(tmp_path, "notes.txt", b"hello")
    code, err = run_cli(capsys, "pretrain", "--data", str(d), "--out", str(tmp_path / "e.pt"),
                        *TINY)
    assert_one_line_error(code, err, "folder holds no images")


def test_bad_checkpoints_and_size_mismatch(tmp_path, capsys, good):
    enc = tmp_path / "enc.pt"
    code, _ = run_cli(capsys, "pretrain", "--data", str(good), "--out", str(enc), *TINY)
    assert code == 0
    fit = ["fit", str(good / "g0.png"), "--init", "strainer", "--out", str(tmp_path / "fit")]
    code, err = run_cli(capsys, *fit, "--encoder", str(enc), *FIT_TINY, "--size", "16")
    assert_one_line_error(code, err, "size=[12, 12] in checkpoint but [16, 16] requested")
    other = save_checkpoint(Strainer(1, width=32, layers=3, shared=2), tmp_path / "wide.pt")
    code, err = run_cli(capsys, *fit, "--encoder", str(other), *FIT_TINY)
    assert_one_line_error(code, err, "width=32 in checkpoint but 16 requested")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(enc.read_bytes()[:200])
    code, err = run_cli(capsys, *fit, "--encoder", str(cut), *FIT_TINY)
    assert_one_line_error(code, err, "not a readable checkpoint")
    broken = torch.load(enc, weights_only=True)
    broken["weights"] = broken["weights"][:1]
    torch.save(broken, tmp_path / "broken.pt")
    code, err = run_cli(capsys, *fit, "--encoder", str(tmp_path / "broken.pt"), *FIT_TINY)
    assert_one_line_error(code, err, "damaged strainer_fast checkpoint")
    assert not (tmp_path / "fit" / "report.md").exists()


@pytest.mark.parametrize("flags,match", [
    (["--steps", "-1"], "--steps must be >= 1"),
    (["--steps", "many"], "invalid int value: 'many'"),
    (["--nproc", "0"], "--nproc must be >= 1"),
    (["--checkpoint-every", "-3"], "--checkpoint-every must be >= 0"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--device", "tpu"], "invalid choice: 'tpu'"),
])
def test_invalid_flags(tmp_path, capsys, good, flags, match):
    code, err = run_cli(capsys, "pretrain", "--data", str(good), "--out", str(tmp_path / "e.pt"),
                        *TINY, *flags)
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "e.pt").exists()
