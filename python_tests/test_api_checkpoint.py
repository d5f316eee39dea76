"""Checkpoint round trip, atomic write and mismatch errors."""

from __future__ import annotations

import pytest
import torch

from strainer_fast.checkpoint import load_checkpoint, load_strainer, save_checkpoint
from strainer_fast.data import coord_grid
from strainer_fast.models import Strainer


def test_round_trip(tmp_path):
    model = Strainer(3, out_features=2, width=16, layers=4, shared=2, seed=5)
    path = save_checkpoint(model, tmp_path / "sub" / "enc.pt", signals=["a", "b", "c"],
                           steps=7, seed=5)
    assert [p.name for p in path.parent.iterdir()] == ["enc.pt"]  # no tmp file left
    data = torch.load(path, weights_only=True)
    assert data["meta"]["signals"] == ["a", "b", "c"] and data["meta"]["steps"] == 7
    assert data["meta"]["seed"] == 5 and "version" in data["meta"]
    loaded = load_strainer(path, {"width": 16, "layers": 4, "out_features": 2})
    x = coord_grid(5, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    for (w, b), (w2, b2) in zip(model.encoder_layers(), loaded.encoder_layers()):
        assert torch.equal(w, w2) and torch.equal(b, b2)


def test_mismatch_errors_name_the_key(tmp_path):
    path = save_checkpoint(Strainer(1, width=16, layers=3, shared=2), tmp_path / "e.pt")
    with pytest.raises(ValueError, match="width=16 in checkpoint but 32"):
        load_checkpoint(path, {"width": 32})
    with pytest.raises(ValueError, match="layers=3.*but 6.*w0=30.0.*but 10"):
        load_checkpoint(path, {"layers": 6, "w0": 10.0})
    with pytest.raises(ValueError, match="out_features=1 in checkpoint but 3"):
        load_checkpoint(path, {"out_features": 3})


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a strainer_fast checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
