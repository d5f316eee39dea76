"""Data loading, errors, the embedded MRI split, and metrics on known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from strainer_fast.data import (coord_grid, default_split, from_output, load_image, load_images,
                                mri_dir, to_target, validation_split)
from strainer_fast.metrics import psnr, ssim


def _png(path, shape, mode):
    arr = (np.arange(np.prod(shape)) % 251).astype(np.uint8).reshape(shape)
    Image.fromarray(arr, mode=mode).save(path)
    return path


def test_load_crop_resize_and_range(tmp_path):
    img = load_image(_png(tmp_path / "a.png", (20, 30, 3), "RGB"), size=8)
    assert img.shape == (8, 8, 3) and img.dtype == torch.float32
    assert 0 <= img.min() and img.max() <= 1
    assert load_image(tmp_path / "a.png", size=8, gray=True).shape == (8, 8, 1)
    np.save(tmp_path / "b.npy", np.full((10, 10), 0.25, np.float32))
    assert torch.allclose(load_image(tmp_path / "b.npy", size=4), torch.full((4, 4, 1), 0.25))


def test_load_folder_sorted_names(tmp_path):
    _png(tmp_path / "b.png", (12, 12), "L")
    _png(tmp_path / "a.png", (12, 12), "L")
    imgs, names = load_images(tmp_path, size=6)
    assert imgs.shape == (2, 6, 6, 1) and names == ["a.png", "b.png"]


def test_data_errors_name_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png"):
        load_image(tmp_path / "bad.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_images(empty)
    with pytest.raises(ValueError, match="no such"):
        load_images(tmp_path / "missing")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _png(mixed / "g.png", (8, 8), "L")
    _png(mixed / "c.png", (8, 8, 3), "RGB")
    with pytest.raises(ValueError, match="mixed channel"):
        load_images(mixed, size=8)
    assert load_images(mixed, size=8, gray=True)[0].shape == (2, 8, 8, 1)
    np.save(tmp_path / "big.npy", np.full((4, 4), 2.0))
    with pytest.raises(ValueError, match="big.npy"):
        load_image(tmp_path / "big.npy")


def test_grid_and_scaling():
    g = coord_grid(3, 4)
    assert g.shape == (12, 2) and g.min() == -1 and g.max() == 1
    assert torch.allclose(g[1], torch.tensor([-1.0, -1 / 3]))
    imgs = torch.rand(2, 3, 4, 1)
    assert torch.allclose(from_output(to_target(imgs), 3, 4), imgs)


def test_default_split_matches_readme():
    train, test = default_split()
    assert len(train) == 10 and len(test) == 6
    assert [p.name for p in test] == ["mni_z034.png", "mni_z055.png", "mni_z069.png",
                                      "mni_z089.png", "mni_z103.png", "mni_z124.png"]
    assert all(p.is_file() for p in train + test)
    assert (mri_dir() / "README.md").is_file()
    imgs, _ = load_images(test, size=32)
    assert imgs.shape == (6, 32, 32, 1)


def test_validation_split_is_carved_from_train_only():
    tune, val = validation_split()
    train, test = default_split()
    assert [p.name for p in val] == ["mni_z048.png", "mni_z110.png"]
    assert sorted(tune + val) == sorted(train) and len(tune) == 8
    assert not set(tune + val) & set(test)


def test_psnr_known_values():
    a = torch.zeros(4, 4, 1)
    assert psnr(a + 0.1, a).item() == pytest.approx(20.0, abs=1e-4)  # mse 0.01
    assert psnr(a + 0.5, a).item() == pytest.approx(-10 * math.log10(0.25), abs=1e-4)
    batch = torch.stack([a + 0.1, a + 0.01])
    assert psnr(batch, torch.zeros_like(batch)).tolist() == pytest.approx([20.0, 40.0], abs=1e-3)
    assert math.isinf(psnr(a, a).item())
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, torch.zeros(2, 2, 1))


def test_ssim_known_values():
    img = torch.rand(16, 16, 1, generator=torch.Generator().manual_seed(0))
    assert ssim(img, img).item() == pytest.approx(1.0)
    assert ssim(img, 1 - img).item() < 0
    rgb = torch.rand(2, 9, 9, 3)
    assert ssim(rgb, rgb).tolist() == pytest.approx([1.0, 1.0])
