"""The package version: the installed distribution's, ``0.0.0+local`` in a source tree.

Its own module so that submodules (checkpoints, reports, caches) can read it without
importing the package ``__init__``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("strainer_fast")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"
