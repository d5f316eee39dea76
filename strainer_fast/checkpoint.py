"""Model checkpoints: one file with config, weights and metadata.

Layout (a plain dict, loadable with ``torch.load(weights_only=True)``)::

    {"format": "strainer_fast/1", "config": {width, layers, shared, w0, in_features,
     out_features}, "weights": [w_0, ...], "biases": [b_0, ...],
     "meta": {version, signals, steps, seed, ...}}

Encoder layers are stored as [out, in], decoder layers as [S, out, in].
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from . import __version__
from .models import Strainer

__all__ = ["save_checkpoint", "load_checkpoint", "load_strainer", "FORMAT"]

FORMAT = "strainer_fast/1"
CHECKED_KEYS = ("width", "layers", "shared", "w0", "in_features", "out_features")


def save_checkpoint(model: Strainer, path: str | Path, **meta: object) -> Path:
    """Atomically writes ``model`` (config, weights) and ``meta`` (plus the library
    version) to ``path`` (tmp file in the same folder, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [*zip(model.enc_w, model.enc_b), *zip(model.dec_w, model.dec_b)]
    data = {
        "format": FORMAT,
        "config": dict(model.config),
        "weights": [w.detach().cpu().clone() for w, _ in params],
        "biases": [b.detach().cpu().clone() for _, b in params],
        "meta": {"version": __version__, **meta},
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, expect: dict | None = None) -> dict:
    """Loads a checkpoint dict; ``expect`` (config subset) must match or ValueError names
    each mismatching key."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt / foreign files
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a strainer_fast checkpoint (format {FORMAT!r} expected)")
    if expect:
        bad = [f"{k}={data['config'].get(k)!r} in checkpoint but {v!r} requested"
               for k, v in expect.items()
               if k in CHECKED_KEYS and v is not None and data["config"].get(k) != v]
        if bad:
            raise ValueError(f"{path}: config mismatch: " + "; ".join(bad))
    return data


def load_strainer(path: str | Path, expect: dict | None = None, *, backend: str = "auto",
                  precision: str = "exact") -> Strainer:
    """Rebuilds the saved ``Strainer`` (see ``load_checkpoint`` for ``expect``)."""
    data = load_checkpoint(path, expect)
    cfg = data["config"]
    layers = list(zip(data["weights"], data["biases"]))
    return Strainer.from_layers(layers, w0=cfg["w0"], shared=cfg["shared"], backend=backend,
                                precision=precision)
