"""Checkpoints and training states are loaded with ``weights_only=True``: a pickle that
would run code on load is refused, and its code never runs (see SECURITY.md)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from strainer_fast.checkpoint import load_checkpoint
from strainer_fast.cli import main
from strainer_fast.pretrain import pretrain
from strainer_fast.train import Checkpointer


class Payload:
    """Unpickling this calls Path.touch(marker): code execution if it ever runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def evil(path: Path, marker: Path) -> Path:
    torch.save({"format": "strainer_fast/1", "config": {}, "x": Payload(marker)}, path)
    return path


def test_payload_really_executes_with_plain_pickle(tmp_path):
    marker = tmp_path / "pwned"  # proves the test file would fire if loaded unsafely
    torch.load(evil(tmp_path / "e.pt", marker), weights_only=False)
    assert marker.exists()


def test_malicious_checkpoint_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = evil(tmp_path / "e.pt", marker)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(path)
    img = tmp_path / "i.npy"
    np.save(img, np.zeros((4, 4), np.float32))
    code = main(["fit", str(img), "--init", "strainer", "--encoder", str(path), "--out",
                 str(tmp_path / "o"), "--size", "4", "--steps", "1", "--no-progress",
                 "--device", "cpu"])
    assert code == 2 and "not a readable checkpoint" in capsys.readouterr().err
    assert not marker.exists()


def test_malicious_training_state_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "rank0of1.step000000002.pt", "wb") as f:
        pickle.dump({"format": "strainer_fast/train-state/2", "x": Payload(marker)}, f, protocol=2)
    with pytest.raises(ValueError, match="not a readable training state"):
        pretrain(torch.rand(1, 4, 4, 1), width=8, layers=2, shared=1, steps=3, device="cpu",
                 progress=False, checkpoint=Checkpointer(tmp_path, resume=True))
    assert not marker.exists()
