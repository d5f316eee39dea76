"""LPIPS from on-disk weights: loading errors and metric properties (random weights of the
right layout stand in for the real files, which are not shipped)."""

import pytest
import torch

from strainer_fast.lpips import BACKBONE_FILE, HEADS_FILE, lpips

CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


@pytest.fixture
def weights(tmp_path):
    g = torch.Generator().manual_seed(0)
    backbone = {}
    for i, (o, c, k) in CONVS.items():
        backbone[f"features.{i}.weight"] = torch.randn(o, c, k, k, generator=g) * 0.05
        backbone[f"features.{i}.bias"] = torch.rand(o, generator=g) * 0.1
    heads = {f"lin{k}.model.1.weight": torch.rand(1, o, 1, 1, generator=g)
             for k, (o, _, _) in enumerate(CONVS.values())}
    torch.save(backbone, tmp_path / BACKBONE_FILE)
    torch.save(heads, tmp_path / HEADS_FILE)
    return tmp_path


def test_lpips_properties(weights):
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 48, 40, 3, generator=g)
    b = (a + 0.2 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    d = lpips(a, b, weights)
    assert d.shape == (3,) and (d > 0).all()
    torch.testing.assert_close(lpips(b, a, weights), d)
    assert lpips(a, a, weights).abs().max() < 1e-6
    # closer images are closer: half the perturbation gives a smaller distance
    assert (lpips(a, (a + b) / 2, weights) < d).all()
    gray = a[..., :1]
    torch.testing.assert_close(lpips(gray[0], gray[0].flip(0), weights),
                               lpips(gray[0].expand(-1, -1, 3), gray[0].flip(0).expand(-1, -1, 3),
                                     weights))


def test_lpips_errors(weights, tmp_path, monkeypatch):
    img = torch.rand(40, 40, 3)
    monkeypatch.setenv("STRAINER_FAST_LPIPS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        lpips(img, img)
    with pytest.raises(ValueError, match="sides >= 32"):
        lpips(img[:8, :8], img[:8, :8], weights)
    with pytest.raises(ValueError, match="shapes differ"):
        lpips(img, img[:39], weights)
    torch.save({"lin0.model.1.weight": torch.zeros(1, 3, 1, 1)}, weights / HEADS_FILE)
    with pytest.raises(ValueError, match="lack the key"):
        lpips(img, img, weights)
