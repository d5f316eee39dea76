"""The embedded 3D target: a generated, statue-like sculpture (not a chair).

A four-armed seated figure with a crown on a stepped pedestal, in front of a perforated
halo, built from signed distance functions: garment folds and crown rings give fine ridges,
the halo's lattice and the pedestal's tunnels give holes. It is regenerated
deterministically at any resolution (nothing to download or ship but this code), inside
[-0.9, 0.9]^3 like the normalised meshes, y up, facing +z.
"""

from __future__ import annotations

import numpy as np

from .volumes import grid

__all__ = ["statue_sdf", "statue_volume"]


def _smin(a: np.ndarray, b: np.ndarray, k: float = 0.04) -> np.ndarray:
    """Smooth union of two signed distances (polynomial blend of width ``k``)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def _box(p: np.ndarray, centre, half) -> np.ndarray:
    q = np.abs(p - np.asarray(centre)) - np.asarray(half)
    return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)


def _ellipsoid(p: np.ndarray, centre, radii) -> np.ndarray:
    radii = np.asarray(radii)
    return (np.linalg.norm((p - np.asarray(centre)) / radii, axis=-1) - 1) * radii.min()


def _capsule(p: np.ndarray, a, b, r: float) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0, 1)
    return np.linalg.norm(p - a - t[..., None] * ab, axis=-1) - r


def statue_sdf(p: np.ndarray) -> np.ndarray:
    """Signed distance (approximate; < 0 inside) at points p [..., 3] = (x, y, z)."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    # Stepped pedestal with vertical flutes and three tunnels along z (holes).
    base = _box(p, (0, -0.79, 0), (0.55, 0.1, 0.4)) + 0.008 * np.sin(70 * x) * (np.abs(z) > 0.3)
    base = np.minimum(base, _box(p, (0, -0.66, 0), (0.45, 0.05, 0.32)))
    for cx in (-0.3, 0.0, 0.3):
        tunnel = np.hypot(x - cx, y + 0.8) - 0.055
        base = np.maximum(base, -tunnel)
    # Seated body: crossed legs, torso with garment folds, head, crown with rings.
    body = _ellipsoid(p, (0, -0.52, 0.02), (0.46, 0.1, 0.3))
    torso = _ellipsoid(p, (0, -0.2, 0), (0.27, 0.36, 0.2)) + 0.012 * np.sin(55 * y + 8 * x)
    body = _smin(body, torso)
    body = _smin(body, _ellipsoid(p, (0, 0.26, 0.01), (0.14, 0.16, 0.14)), 0.05)
    crown = np.maximum(np.hypot(x, z) - 0.11 * np.clip((0.66 - y) / 0.26, 0, 1)
                       - 0.01 * np.sin(90 * y), np.maximum(0.4 - y, y - 0.66))
    body = _smin(body, crown, 0.02)
    # Four arms: two raised, two resting forward, each ending in a ball hand.
    for s in (-1, 1):
        sh = (0.2 * s, 0.02, 0.0)
        for hand, r in (((0.55 * s, 0.3, 0.05), 0.045), ((0.42 * s, -0.33, 0.2), 0.05)):
            elbow = ((sh[0] + hand[0]) / 2 + 0.08 * s, (sh[1] + hand[1]) / 2 - 0.05, 0.05)
            arm = np.minimum(_capsule(p, sh, elbow, r), _capsule(p, elbow, hand, r * 0.85))
            arm = _smin(arm, np.linalg.norm(p - np.asarray(hand), axis=-1) - 0.06, 0.02)
            body = _smin(body, arm, 0.03)
    # Halo behind the figure: a beaded rim around a slab pierced by a lattice of holes.
    hx, hy, hz = x, y - 0.2, z + 0.3
    rho = np.hypot(hx, hy)
    rim = np.hypot(rho - 0.6, hz) - 0.04 - 0.015 * np.cos(36 * np.arctan2(hy, hx))
    slab = np.maximum(np.abs(hz) - 0.025, rho - 0.6)
    holes = np.cos(24 * hx) + np.cos(24 * hy) - 0.9
    halo = np.minimum(rim, np.maximum(slab, holes * 0.03))
    halo = np.maximum(halo, -0.45 - y)  # cut where it would pass through the pedestal
    return np.minimum(np.minimum(base, body), halo)


def statue_volume(res: int) -> np.ndarray:
    """Occupancy [res]^3 (bool, indexed [x, y, z]) of the statue on the [-1, 1]^3 grid."""
    g = grid(res).astype(np.float32)
    occ = np.empty((res, res, res), dtype=bool)
    yz = np.stack(np.meshgrid(g, g, indexing="ij"), -1)  # [y, z, 2]
    for i, xv in enumerate(g):  # one x slice at a time keeps memory at O(res^2)
        p = np.concatenate([np.full(yz.shape[:2] + (1,), xv, dtype=np.float32), yz], -1)
        occ[i] = statue_sdf(p) < 0
    return occ
