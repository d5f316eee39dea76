"""Streaming pretraining: groups of signals round-robin, decoders + Adam state per signal on
disk; one group with several visits equals plain ``pretrain`` exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from strainer_fast import streaming
from strainer_fast.checkpoint import load_strainer
from strainer_fast.data import load_images
from strainer_fast.pretrain import pretrain
from strainer_fast.streaming import pretrain_streaming

NET = dict(width=16, layers=3, shared=2, lr=1e-3, seed=3, device="cpu", progress=False)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(3)
    out = []
    for i in range(5):
        out.append(root / f"s{i}.png")
        Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8)).save(out[-1])
    return out


@pytest.mark.parametrize("extra", [{}, {"points": 16, "weight_scale": 1.5}])
def test_one_group_in_visits_equals_pretrain(paths, tmp_path, extra):
    images, _ = load_images(paths, 10)
    ref = pretrain(images, steps=20, **NET, **extra)
    got = pretrain_streaming(paths, tmp_path / "store", group_size=5, visit_steps=7, steps=20,
                             size=10, **NET, **extra)  # visits of 7, 7, 6 steps, via disk
    for p, q in zip(got.parameters(), ref.parameters()):
        assert torch.equal(p, q)


def test_groups_round_robin_one_group_in_memory(paths, tmp_path, monkeypatch):
    loaded = []
    real = streaming.load_images

    def spy(p, *a):
        loaded.append(len(p))
        return real(p, *a)

    monkeypatch.setattr(streaming, "load_images", spy)
    out = tmp_path / "enc.pt"
    pretrain_streaming(paths, tmp_path / "store", group_size=2, visit_steps=4, steps=24,
                       size=10, out=out, **NET)
    assert loaded == [2, 2, 1, 2, 2, 1]  # groups {0,1}, {2,3}, {4}, twice; never all 5
    files = sorted(p.name for p in (tmp_path / "store").iterdir())
    assert [f[:8] for f in files] == [f"{i:08d}" for i in range(5)]  # one file per signal
    sig = torch.load(tmp_path / "store" / files[4], weights_only=True)
    assert sig["step"] == 8.0 and len(sig["exp_avg"]) == 2  # 2 visits x 4 steps
    model = load_strainer(out, {"width": 16, "size": [10, 10]})
    assert model.signals == 5
    first = pretrain(load_images(paths, 10)[0], steps=0, **NET)  # the initial values
    for w, w0 in zip(model.dec_w, first.dec_w):  # every decoder was trained
        assert (w - w0).flatten(1).abs().amax(1).min() > 0
    assert not torch.equal(model.enc_w[0], first.enc_w[0])


def test_cli_group_size(paths, tmp_path, capsys):
    from strainer_fast.cli import main

    out = tmp_path / "enc.pt"
    tiny = ["--size", "10", "--width", "16", "--layers", "3", "--shared", "2", "--steps", "6",
            "--no-progress", "--device", "cpu", "--data", str(paths[0].parent), "--out", str(out)]
    assert main(["pretrain", *tiny, "--group-size", "2", "--visit-steps", "2"]) == 0
    assert len(list((tmp_path / "enc.pt.decoders").iterdir())) == 5
    assert load_strainer(out).signals == 5
    assert main(["pretrain", *tiny, "--group-size", "2", "--nproc", "2"]) == 2
    assert "cannot be combined" in capsys.readouterr().err
    out2 = tmp_path / "enc2.pt"
    assert main(["pretrain", *tiny[:-1], str(out2), "--group-size", "2", "--points", "8",
                 "--weight-scale", "1.5"]) == 0
    meta = torch.load(out2, weights_only=True)["meta"]
    assert meta["points"] == 8 and meta["weight_scale"] == 1.5


class Crash(Exception):
    pass


@pytest.mark.parametrize("points", [None, 16])
def test_streaming_resume_equals_uninterrupted(paths, tmp_path, monkeypatch, points):
    """Killed after the 5th visit (checkpoints at steps 8 and 16, i.e. visits 2 and 4):
    --resume continues from the newest state, even though visit 5 had already rewritten
    a group's decoders, and ends with the weights of an uninterrupted run (with point
    batches: the same batches, from the saved generator state)."""
    kw = dict(group_size=2, visit_steps=4, steps=24, size=10, points=points, **NET)
    full = pretrain_streaming(paths, tmp_path / "full", **kw)
    real, visits = streaming.train, []

    def crash_after_5(*a, **k):
        if len(visits) == 5:
            raise Crash
        visits.append(1)
        return real(*a, **k)

    monkeypatch.setattr(streaming, "train", crash_after_5)
    with pytest.raises(Crash):
        pretrain_streaming(paths, tmp_path / "run", checkpoint_every=8, **kw)
    monkeypatch.setattr(streaming, "train", real)
    assert sorted(p.name for p in (tmp_path / "run" / "state").iterdir()) == [
        "stream.step000000008.pt", "stream.step000000016.pt"]
    with pytest.raises(ValueError, match="continue it with --resume"):
        pretrain_streaming(paths, tmp_path / "run", checkpoint_every=8, **kw)
    again = pretrain_streaming(paths, tmp_path / "run", checkpoint_every=8, resume=True, **kw)
    for p, q in zip(again.parameters(), full.parameters()):
        assert torch.equal(p, q)
    assert not (tmp_path / "run" / "state").exists()  # a finished run removes its states
