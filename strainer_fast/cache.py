"""The cache folder of derived data (pretrained encoders, occupancy volumes)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(kind: str) -> Path:
    """``$STRAINER_FAST_CACHE/kind`` (default ``$XDG_CACHE_HOME/strainer_fast/kind``,
    ``~/.cache/strainer_fast/kind``), created on demand."""
    root = os.environ.get("STRAINER_FAST_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "strainer_fast")
    path = Path(root) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
