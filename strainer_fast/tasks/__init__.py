"""Task commands built on the STRAINER API: super-resolution, denoising, 3D occupancy.

Each task module has ``add_parser(subparsers, common)`` and ``run(args, opts)`` (opts: seed,
device, backend, precision, progress); ``cli.py`` registers every entry of ``TASKS``.
"""

from __future__ import annotations

from . import denoise, occupancy, superres

__all__ = ["TASKS"]

TASKS = {"superres": superres, "denoise": denoise, "occupancy": occupancy}
