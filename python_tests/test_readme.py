"""The README's Python API block runs as written (small sizes, CPU) and does what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import strainer_fast as sf

README = Path(__file__).resolve().parents[1] / "README.md"


def api_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_python_api_runs(tmp_path, monkeypatch):
    blocks = api_blocks()
    assert blocks, "README lost its Python API block"
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), ns)  # noqa: S102 - our own README
    assert (tmp_path / "enc.pt").is_file()
    enc = ns["encoder"]
    assert isinstance(enc, sf.Encoder) and enc.architecture() == dict(width=64, layers=4,
                                                                       shared=3, w0=30.0)
    many, one = ns["many"], ns["one"]
    assert many.recon.shape == (6, 32, 32, 1) and many.step == [0, 10, 20]
    # fitting from the loaded encoder object starts from its layers
    start = sf.fit(ns["test"][0], enc, steps=0, progress=False).model.network_layers(0)
    for (w, b), (w2, b2) in zip(enc.layers, start):
        assert torch.equal(w, w2) and torch.equal(b, b2)
    assert one.psnr[-1][0] == pytest.approx(many.psnr[-1][0], abs=1e-3)  # same init, seed 0
    assert ns["sr"].recon.shape == (6, 32, 32, 1) and ns["sr"].step == [0, 10, 20]
    assert ns["dn"].psnr and ns["occ"].step == [0, 10, 20]
    with pytest.raises(ValueError, match="width=64 in checkpoint but 128 requested"):
        sf.fit(ns["test"][0], enc, width=128, steps=1, progress=False)
