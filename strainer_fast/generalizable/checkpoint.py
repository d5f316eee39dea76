"""Generalizable-INR checkpoints: one file, loadable with ``torch.load(weights_only=True)``::

    {"format": "strainer_fast/generalizable/1", "kind": "transinr" | "ipc",
     "config": {size, channels, width, layers, w0, dim, depth, heads, patch, groups | rank,
     modulated, value_range}, "state": {parameter name: tensor}, "meta": {version, steps, ...}}

A checkpoint without ``value_range`` (written before it existed) loads as
``value_range.LEGACY_VALUE_RANGE``, the range it was trained under.
"""

from __future__ import annotations

from pathlib import Path

from .._version import __version__
from ..checkpoint import atomic_save, read_checkpoint_file
from ..value_range import recorded
from .base import GeneralizableINR
from .ipc import IPC
from .transinr import TransINR

__all__ = ["KINDS", "FORMAT", "make_model", "save_generalizable", "load_generalizable"]

FORMAT = "strainer_fast/generalizable/1"
KINDS: dict[str, type[GeneralizableINR]] = {"transinr": TransINR, "ipc": IPC}


def make_model(kind: str, **config) -> GeneralizableINR:
    """A new ``TransINR`` or ``IPC`` (``config``: their keyword arguments)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {tuple(KINDS)}, got {kind!r}")
    return KINDS[kind](**config)


def save_generalizable(model: GeneralizableINR, path: str | Path, **meta: object) -> Path:
    """Atomically writes ``model`` (kind, config, parameters) and ``meta`` to ``path``."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if not all(v.isfinite().all() for v in state.values()):
        raise ValueError(f"{path}: refusing to save a model with non-finite weights")
    return atomic_save({"format": FORMAT, "kind": model.kind, "config": dict(model.config),
                        "state": state, "meta": {"version": __version__, **meta}}, path)


def load_generalizable(path: str | Path, *, backend: str = "auto",
                       precision: str = "exact") -> GeneralizableINR:
    """The model saved at ``path`` (on the CPU; ``model.meta``: its metadata). A missing,
    corrupt or foreign file is a ValueError."""
    path = Path(path)
    data = read_checkpoint_file(path, FORMAT, "strainer_fast generalizable-INR checkpoint")
    try:
        config = dict(data["config"])
        config["value_range"] = recorded(config)
        model = make_model(data["kind"], **config, backend=backend, precision=precision)
        model.load_state_dict(data["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: damaged generalizable-INR checkpoint "
                         f"({type(exc).__name__})") from None
    model.meta = data.get("meta", {}) if isinstance(data.get("meta"), dict) else {}
    return model
