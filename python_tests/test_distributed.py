"""Data-parallel pretraining: signal sharding, and 2 gloo ranks on CPU (``--nproc 2``)
against a single-process run on the same signals and seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import strainer_fast
from strainer_fast.distributed import shard
from conftest import run_cli as cli

TINY = ["--size", "12", "--width", "16", "--layers", "3", "--shared", "2", "--lr", "1e-3",
        "--no-progress", "--device", "cpu", "--steps", "25"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    rng = np.random.default_rng(1)
    for i in range(5):  # odd count: unequal shards (2 + 3)
        Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(root / f"s{i}.png")
    return root


def test_shard_covers_every_signal_once():
    for n in (1, 2, 5, 30001):
        for world in range(1, min(n, 7) + 1):
            blocks = [shard(n, r, world) for r in range(world)]
            assert blocks[0][0] == 0 and blocks[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
            sizes = [b - a for a, b in blocks]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    with pytest.raises(ValueError, match="cannot be split over 3"):
        shard(2, 0, 3)


def test_two_gloo_ranks_match_one_process(images, tmp_path):
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    r1 = cli("pretrain", "--data", str(images), "--out", str(one), *TINY)
    assert r1.returncode == 0, r1.stderr
    r2 = cli("pretrain", "--data", str(images), "--out", str(two), "--nproc", "2",
             "--checkpoint-every", "10", *TINY)  # per-rank states: written, then removed
    assert r2.returncode == 0, r2.stderr
    assert not Path(f"{two}.state").exists()
    a, b = (torch.load(p, weights_only=True) for p in (one, two))
    assert a["meta"]["signals"] == b["meta"]["signals"] == [f"s{i}.png" for i in range(5)]
    assert b["meta"]["processes"] == 2 and a["meta"]["processes"] == 1
    for wa, wb in zip(a["weights"] + a["biases"], b["weights"] + b["biases"]):
        assert wa.shape == wb.shape
        torch.testing.assert_close(wb, wa, rtol=1e-5, atol=1e-5)  # float-reduction order only
    init = strainer_fast.Strainer(5, width=16, layers=3, shared=2, seed=0)
    moved = (init.enc_w[0].detach() - a["weights"][0]).abs().max().item()
    assert moved > 1e-3  # training really changed the encoder being compared


def test_more_processes_than_signals_is_a_clean_error(images, tmp_path):
    r = cli("pretrain", "--data", str(images / "s0.png"), "--out", str(tmp_path / "x.pt"),
            "--nproc", "2", *TINY)
    assert r.returncode == 2
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert errors == ["strainer-fast: error: 1 signals cannot be split over 2 processes "
                      "(every process needs at least one)"], r.stderr
    assert not (tmp_path / "x.pt").exists()
