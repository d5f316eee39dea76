"""Tasks built on the STRAINER API: super-resolution, denoising, 3D occupancy.

Each module has the library function(s) (``superres.superres``, ``denoise.denoise``,
``occupancy.pretrain_occupancy`` / ``fit_occupancy``) and the job(s) behind its command(s)
(``*_job(cfg)`` on the typed configs of ``strainer_fast.config``).
"""

from __future__ import annotations

from . import denoise, occupancy, superres

__all__ = ["superres", "denoise", "occupancy"]
