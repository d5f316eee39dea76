"""strainer_fast: transferable implicit neural representations (STRAINER) on fused sine-MLP kernels."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("strainer_fast")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"

from .fit import fit, fit_many  # noqa: E402  (submodules read __version__)
from .models import Siren, Strainer  # noqa: E402
from .ops import batched_sine_mlp, sine_mlp  # noqa: E402
from .pretrain import pretrain  # noqa: E402

__all__ = [
    "sine_mlp",
    "batched_sine_mlp",
    "Siren",
    "Strainer",
    "pretrain",
    "fit",
    "fit_many",
    "__version__",
]
