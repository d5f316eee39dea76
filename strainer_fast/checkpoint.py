"""Model checkpoints: one file with config, weights and metadata.

Layout (a plain dict, loadable with ``torch.load(weights_only=True)``)::

    {"format": "strainer_fast/1", "config": {width, layers, shared, w0, in_features,
     out_features}, "weights": [w_0, ...], "biases": [b_0, ...],
     "meta": {version, signals, steps, seed, value_range, ...}}

``meta["value_range"]``: the range of the targets it was pretrained on (``value_range``);
checkpoints written before it existed lack it and load as ``LEGACY_VALUE_RANGE``.

Encoder layers are stored as [out, in], decoder layers as [S, out, in].
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ._version import __version__
from .models import Encoder, Strainer
from .value_range import recorded

__all__ = ["save_checkpoint", "load_checkpoint", "load_strainer", "load_encoder", "atomic_save",
           "read_checkpoint_file", "FORMAT"]

FORMAT = "strainer_fast/1"
CHECKED_KEYS = ("width", "layers", "shared", "w0", "in_features", "out_features", "size")


def save_checkpoint(model: Strainer, path: str | Path, **meta: object) -> Path:
    """Atomically writes ``model`` (config, weights) and ``meta`` (plus the library
    version) to ``path`` (tmp file in the same folder, then ``os.replace``)."""
    path = Path(path)
    params = [*zip(model.enc_w, model.enc_b), *zip(model.dec_w, model.dec_b)]
    data = {
        "format": FORMAT,
        "config": dict(model.config),
        "weights": [w.detach().cpu().clone() for w, _ in params],
        "biases": [b.detach().cpu().clone() for _, b in params],
        "meta": {"version": __version__, **meta},
    }
    if not all(t.isfinite().all() for t in data["weights"] + data["biases"]):
        raise ValueError(f"{path}: refusing to save a model with non-finite weights")
    return atomic_save(data, path)


def atomic_save(obj: object, path: str | Path) -> Path:
    """``torch.save(obj)`` to a tmp file in ``path``'s folder, fsync, then ``os.replace``:
    readers see the old file or the complete new one, never a partial write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint_file(path: Path, fmt: str, what: str) -> dict:
    """The dict saved at ``path`` (safe unpickling on the CPU) if its ``format`` is ``fmt``;
    a missing, corrupt or foreign file is a ValueError naming ``what`` was expected."""
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt / foreign files
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise ValueError(f"{path}: not a {what} (format {fmt!r} expected)")
    return data


def load_checkpoint(path: str | Path, expect: dict | None = None) -> dict:
    """Loads a checkpoint dict; ``expect`` (config subset, or ``size`` [H, W]: the image size
    it was pretrained at) must match or ValueError names each mismatching key."""
    path = Path(path)
    data = read_checkpoint_file(path, FORMAT, "strainer_fast checkpoint")
    if not isinstance(data.get("config"), dict) or not all(
            isinstance(data.get(k), list) and all(isinstance(t, torch.Tensor) for t in data[k])
            for k in ("weights", "biases")):
        raise ValueError(f"{path}: damaged strainer_fast checkpoint (config / weights missing)")
    if expect:
        saved = dict(data["config"])
        if isinstance(data.get("meta"), dict) and data["meta"].get("size") is not None:
            saved["size"] = data["meta"]["size"]  # older checkpoints lack it
        bad = [f"{k}={saved.get(k)!r} in checkpoint but {v!r} requested"
               for k, v in expect.items()
               if k in CHECKED_KEYS and v is not None and saved.get(k, v) != v]
        if bad:
            raise ValueError(f"{path}: config mismatch: " + "; ".join(bad))
    return data


def load_strainer(path: str | Path, expect: dict | None = None, *, backend: str = "auto",
                  precision: str = "exact") -> Strainer:
    """Rebuilds the saved ``Strainer`` (see ``load_checkpoint`` for ``expect``), with its
    ``value_range`` from the metadata."""
    data = load_checkpoint(path, expect)
    model = _strainer(data, path, backend, precision)
    meta = data["meta"] if isinstance(data.get("meta"), dict) else {}
    model.value_range = recorded(meta)
    return model


def _strainer(data: dict, path: str | Path, backend: str, precision: str) -> Strainer:
    cfg = data["config"]
    layers = list(zip(data["weights"], data["biases"]))
    try:
        return Strainer.from_layers(layers, w0=cfg["w0"], shared=cfg["shared"], backend=backend,
                                    precision=precision)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: damaged strainer_fast checkpoint (layers do not fit its "
                         f"config: {type(exc).__name__})") from None


def load_encoder(path: str | Path, expect: dict | None = None) -> Encoder:
    """The encoder of a STRAINER checkpoint (see ``load_checkpoint`` for ``expect``), with
    its architecture and the checkpoint's metadata (``size``, ``signals``, ``value_range``,
    ...)."""
    data = load_checkpoint(path, expect)
    model = _strainer(data, path, "auto", "exact")
    if model.config["shared"] < 1:
        raise ValueError(f"{path}: checkpoint has no shared encoder layers")
    meta = data["meta"] if isinstance(data.get("meta"), dict) else {}
    return model.encoder(**meta, path=str(path))
