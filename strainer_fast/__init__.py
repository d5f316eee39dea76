"""strainer_fast: transferable implicit neural representations (STRAINER) on fused sine-MLP kernels."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .ops import batched_sine_mlp, sine_mlp

try:
    __version__ = version("strainer_fast")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"

__all__ = ["sine_mlp", "batched_sine_mlp", "__version__"]
