"""Occupancy volumes on the [-1, 1]^3 grid from meshes (.obj/.ply/.off/.stl) or arrays.

A volume of resolution R is a bool array [R, R, R] indexed [x, y, z]; voxel (i, j, k) sits at
``grid(R)[i], grid(R)[j], grid(R)[k]`` with ``grid(R) = linspace(-1, 1, R)`` (the same
convention as ``data.coord_grid``). Meshes are centred (bounding-box centre at 0) and scaled
so their largest side is 1.8; volumes from .npy/.mat are cropped to their occupied box and
resampled the same way.

Inside test (``mesh_occupancy``): rays along +x, +y and +z through every grid column; a
voxel gets one vote per ray direction whose count of surface crossings on its *lower* side is
odd and one whose count on its *upper* side is odd (6 votes in all), and is inside with at
least 4. In a column that crosses a closed surface both votes agree; a column through a hole
or an open sheet has an odd crossing count, and its two votes cancel, so holes and open
boundaries are outvoted by the other axes; face orientation plays no part. Each part
(connected component) is tested alone on its bounding box and the parts are united, so
overlapping closed parts do not cancel. Crossings are found per triangle over only the grid
columns its projection covers (scanline), and counted with one ``bincount`` + ``cumsum`` per
axis.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..cache import cache_dir

__all__ = ["MESH_SUFFIXES", "VOLUME_SUFFIXES", "grid", "load_mesh", "normalise_mesh", "parts",
           "mesh_occupancy", "mesh_volume", "load_volume", "normalise_volume", "iou"]

MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl")
VOLUME_SUFFIXES = (".npy", ".mat")
EXTENT = 0.9  # half the largest side after normalisation
# A fixed tiny offset moves the mesh off exact grid coordinates, so no ray passes exactly
# through a vertex or an edge (which would count a crossing twice or not at all).
_NUDGE = np.array([1.234567e-9, 2.345678e-9, 3.456789e-9])
_METHOD = "vote6parts"  # in the cache key: change it when the inside test changes


def grid(res: int) -> np.ndarray:
    """Voxel-centre coordinates along one axis: linspace(-1, 1, res), float64."""
    if res < 2:
        raise ValueError(f"resolution must be >= 2, got {res}")
    return np.linspace(-1.0, 1.0, res)


def load_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices [V, 3] float64, triangles [F, 3] int64) of a mesh file, via trimesh.

    Scenes are merged into one mesh; every part is kept. Raises ValueError for unreadable
    or empty meshes.
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such mesh file")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"{path}: not a mesh file ({', '.join(MESH_SUFFIXES)})")
    try:
        mesh = trimesh.load(path, force="mesh", process=True)
    except Exception as exc:  # trimesh raises many types for broken files
        raise ValueError(f"{path}: not a readable mesh ({type(exc).__name__}: {exc})") from None
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
    verts = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
    if len(faces) == 0 or len(verts) == 0:
        raise ValueError(f"{path}: mesh has no triangles")
    if not np.isfinite(verts).all():
        raise ValueError(f"{path}: mesh has non-finite vertex coordinates")
    return verts, faces


def normalise_mesh(verts: np.ndarray) -> np.ndarray:
    """Vertices moved so the bounding-box centre is 0 and scaled so the largest side is 1.8."""
    lo, hi = verts.min(0), verts.max(0)
    side = (hi - lo).max()
    if side <= 0:
        raise ValueError("mesh is degenerate (all vertices at one point)")
    return (verts - (lo + hi) / 2) * (2 * EXTENT / side)


def _crossings(tri: np.ndarray, axes: list[np.ndarray], axis: int,
               chunk: int = 1 << 21) -> np.ndarray:
    """Crossing counts per column and depth bin for rays along ``axis``.

    tri: triangles [F, 3 corners, 3 coords]; axes: the voxel-centre coordinates along x, y,
    z (increasing). Returns int array [n_u, n_v, n_d + 1] over (u, v, bin), u and v the
    other two axes in increasing order; a crossing at depth d lands in bin
    ``searchsorted(axes[axis], d, 'right')``, so ``cumsum`` over bins counts the crossings
    below each voxel centre.
    """
    u_ax, v_ax = [a for a in range(3) if a != axis]
    gu, gv, gd = axes[u_ax], axes[v_ax], axes[axis]
    uv = tri[:, :, [u_ax, v_ax]]
    ab, ac = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    # 2D signed area of each projected triangle; edge-on triangles are never crossed.
    det = ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]
    keep = np.abs(det) > 1e-18
    tri, uv, det, ab, ac = tri[keep], uv[keep], det[keep], ab[keep], ac[keep]
    lo = np.stack([np.searchsorted(gu, uv[:, :, 0].min(1)),
                   np.searchsorted(gv, uv[:, :, 1].min(1))], 1)
    hi = np.stack([np.searchsorted(gu, uv[:, :, 0].max(1), side="right"),
                   np.searchsorted(gv, uv[:, :, 1].max(1), side="right")], 1)
    n_u, n_v = (hi - lo).clip(min=0).T
    counts = n_u * n_v
    shape = (len(gu), len(gv), len(gd) + 1)
    hist = np.zeros(np.prod(shape), dtype=np.int64)
    # Chunks of triangles whose candidate (triangle, column) pairs number about ``chunk``.
    cum = np.cumsum(counts)
    start = 0
    while start < len(counts):
        base = cum[start - 1] if start else 0
        end = max(int(np.searchsorted(cum, base + chunk, side="right")), start + 1)
        cnt = counts[start:end]
        t = np.repeat(np.arange(start, end), cnt)
        start = end
        if len(t) == 0:
            continue
        local = np.arange(len(t)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        iu = lo[t, 0] + local // n_v[t]
        iv = lo[t, 1] + local % n_v[t]
        pu = gu[iu] - uv[t, 0, 0]
        pv = gv[iv] - uv[t, 0, 1]
        wb = (pu * ac[t, 1] - pv * ac[t, 0]) / det[t]
        wc = (ab[t, 0] * pv - ab[t, 1] * pu) / det[t]
        inside = (wb >= 0) & (wc >= 0) & (wb + wc <= 1)
        t, iu, iv, wb, wc = t[inside], iu[inside], iv[inside], wb[inside], wc[inside]
        depth = (tri[t, 0, axis] * (1 - wb - wc) + tri[t, 1, axis] * wb
                 + tri[t, 2, axis] * wc)
        bins = np.searchsorted(gd, depth, side="right")
        hist += np.bincount((iu * shape[1] + iv) * shape[2] + bins, minlength=hist.size)
    return hist.reshape(shape)


def _part_votes(tri: np.ndarray, axes: list[np.ndarray]) -> np.ndarray:
    """Inside test of one part on the voxel grid ``axes``: bool [n_x, n_y, n_z]."""
    votes = np.zeros([len(a) for a in axes], dtype=np.int8)
    for axis in range(3):
        hist = _crossings(tri, axes, axis)
        n = len(axes[axis])
        below = np.cumsum(hist, axis=-1)[..., :n]  # crossings under each voxel centre
        total = below[..., -1:] + hist[..., n:]
        v = (below % 2) + ((total - below) % 2)  # [u, v, depth]: lower + upper ray votes
        votes += np.moveaxis(v, -1, axis).astype(np.int8)
    return votes >= 4


def parts(faces: np.ndarray) -> np.ndarray:
    """Part label of each triangle [F]: connected components over shared vertices."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = int(faces.max()) + 1
    rows = faces[:, [0, 1, 2]].reshape(-1)
    cols = faces[:, [1, 2, 0]].reshape(-1)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels[faces[:, 0]]


def mesh_occupancy(verts: np.ndarray, faces: np.ndarray, res: int) -> np.ndarray:
    """Inside test of every voxel centre: bool [R, R, R] (see the module docstring).

    verts [V, 3] in [-1, 1] coordinates, faces [F, 3] vertex indices (any orientation,
    open or closed). Each part (connected component) is tested on its own bounding box and
    the results are united, so overlapping closed parts stay inside.
    """
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        raise ValueError("mesh has no triangles")
    g = grid(res)
    tri = (np.asarray(verts, dtype=np.float64) + _NUDGE)[faces]
    label = parts(faces)
    occ = np.zeros((res, res, res), dtype=bool)
    for part in np.unique(label):
        t = tri[label == part]
        lo = np.searchsorted(g, t.min((0, 1)))
        hi = np.searchsorted(g, t.max((0, 1)), side="right")
        if (hi <= lo).any():
            continue  # the part lies between voxel centres
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        occ[box] |= _part_votes(t, [g[s] for s in box])
    return occ


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:20]


def mesh_volume(path: str | Path, res: int, *, cache: bool = True) -> np.ndarray:
    """Occupancy [R, R, R] of a mesh file (normalised), cached as .npy (bit-packed) in
    ``cache_dir("volumes")`` keyed by the file's SHA-256 and ``res``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such mesh file")
    cached = cache_dir("volumes") / f"{_file_digest(path)}_r{res}_{_METHOD}.npy" if cache else None
    if cached is not None and cached.is_file():
        try:
            bits = np.load(cached, allow_pickle=False)
            return np.unpackbits(bits, count=res ** 3).reshape(res, res, res).astype(bool)
        except (ValueError, OSError):
            pass  # unreadable cache entry: rebuild it
    verts, faces = load_mesh(path)
    vol = mesh_occupancy(normalise_mesh(verts), faces, res)
    if cached is not None:
        fd, tmp = tempfile.mkstemp(suffix=".npy.tmp", dir=cached.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.packbits(vol.reshape(-1)))
            os.replace(tmp, cached)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return vol


def _read_array(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ValueError(f"{path}: not a readable .npy file ({exc})") from None
    from scipy.io import loadmat

    try:
        data = loadmat(path)
    except NotImplementedError:
        raise ValueError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; save the "
                         f"volume with MATLAB's -v7 option or as .npy") from None
    except (ValueError, OSError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable .mat file ({exc})") from None
    if "hypercube" not in data:
        names = ", ".join(k for k in data if not k.startswith("__")) or "none"
        raise ValueError(f"{path}: no 'hypercube' variable (variables: {names})")
    return np.asarray(data["hypercube"])


def normalise_volume(occ: np.ndarray, res: int) -> np.ndarray:
    """Occupancy [D, D, D] -> [res]^3: the occupied box centred, its largest side scaled to
    1.8 (like the meshes), resampled trilinearly and thresholded at 0.5."""
    idx = np.argwhere(occ)
    if len(idx) == 0:
        raise ValueError("volume has no occupied voxels")
    d = occ.shape[0]
    lo, hi = idx.min(0), idx.max(0)
    centre = (lo + hi) / 2.0
    side = max(float((hi - lo).max()) + 1.0, 1.0)
    # Source voxel index of each target grid point, then grid_sample's [-1, 1] convention.
    src = centre[None, :] + grid(res)[:, None] * (side / (2 * EXTENT))  # [res, 3]
    norm = torch.from_numpy(2 * src / max(d - 1, 1) - 1).float()
    gx, gy, gz = torch.meshgrid(norm[:, 0], norm[:, 1], norm[:, 2], indexing="ij")
    # grid_sample wants (x, y, z) = (last, middle, first) input dims.
    sample = torch.stack([gz, gy, gx], -1)[None]
    vol = torch.from_numpy(occ.astype(np.float32))[None, None]
    out = F.grid_sample(vol, sample, mode="bilinear", padding_mode="zeros", align_corners=True)
    return (out[0, 0] >= 0.5).numpy()


def load_volume(path: str | Path, res: int) -> np.ndarray:
    """Occupancy [res]^3 (bool) of a mesh, a .npy array or a .mat file's ``hypercube``.

    Arrays must be cubic [D, D, D]; like WIRE's loader of the Thai statue, values are
    divided by their maximum and those > 0.5 are occupied (bool, 0/1, 0/255, ...).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in MESH_SUFFIXES:
        return mesh_volume(path, res)
    if suffix not in VOLUME_SUFFIXES:
        kinds = ", ".join(MESH_SUFFIXES + VOLUME_SUFFIXES)
        raise ValueError(f"{path}: unsupported target ({kinds})")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    arr = _read_array(path)
    if arr.ndim != 3 or len(set(arr.shape)) != 1:
        raise ValueError(f"{path}: volume must be cubic [D, D, D], got shape {arr.shape}")
    if arr.dtype != bool and not (np.issubdtype(arr.dtype, np.number)
                                  and np.isfinite(arr).all()):
        raise ValueError(f"{path}: volume values must be finite numbers or bools")
    top = float(arr.max()) if arr.size else 0.0
    if top <= 0:
        raise ValueError(f"{path}: volume has no occupied voxels (no positive values)")
    return normalise_volume(arr.astype(np.float64) > 0.5 * top, res)


def iou(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """Intersection over union of two bool volumes of one shape (1.0 when both are empty)."""
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
    if pred.shape != target.shape:
        raise ValueError(f"iou: shapes differ, {pred.shape} vs {target.shape}")
    union = np.logical_or(pred, target).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, target).sum() / union)
