"""3D occupancy: inside test, volume loaders and their errors, IoU, training, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from strainer_fast.cli import main
from strainer_fast.tasks import occupancy
from strainer_fast.tasks.occupancy import VoxelBatches, fit_occupancy, load_shapes
from strainer_fast.tasks.preview import render
from strainer_fast.tasks.statue import statue_volume
from strainer_fast.tasks.volumes import (grid, iou, load_volume, mesh_occupancy, mesh_volume,
                                         normalise_volume, parts)

R = 40


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STRAINER_FAST_CACHE", str(tmp_path / "cache"))


def _coords(res=R):
    g = grid(res)
    return np.meshgrid(g, g, g, indexing="ij")


def _sphere(radius=0.7):
    return trimesh.creation.icosphere(subdivisions=4, radius=radius)


def _near(dist, res=R):
    """Voxels within one voxel pitch of a surface at signed distance ``dist``."""
    return np.abs(dist) < 2.0 / (res - 1)


def test_inside_sphere_and_torus_match_the_solid():
    x, y, z = _coords()
    s = _sphere()
    d_sphere = np.sqrt(x ** 2 + y ** 2 + z ** 2) - 0.7
    occ = mesh_occupancy(s.vertices, s.faces, R)
    wrong = occ != (d_sphere < 0)
    assert not wrong[~_near(d_sphere)].any() and wrong.sum() < 20
    t = trimesh.creation.torus(major_radius=0.55, minor_radius=0.25, major_sections=96,
                               minor_sections=48)
    d_torus = np.hypot(np.hypot(x, y) - 0.55, z) - 0.25
    occ = mesh_occupancy(t.vertices, t.faces, R)
    assert not (occ != (d_torus < 0))[~_near(d_torus)].any()
    assert not occ[R // 2, R // 2, :].any()  # the hole of the torus is empty


def test_inside_open_mesh_inconsistent_orientation_and_overlapping_parts():
    x, y, z = _coords()
    s = _sphere()
    d = np.sqrt(x ** 2 + y ** 2 + z ** 2) - 0.7
    # Open: a cap of triangles removed (a hole of radius ~0.3 at the top).
    keep = s.triangles_center[:, 2] < 0.62
    assert (~keep).sum() > 10 and not trimesh.Trimesh(s.vertices, s.faces[keep]).is_watertight
    occ = mesh_occupancy(s.vertices, s.faces[keep], R)
    below_cap = z < 0.55
    assert not (occ != (d < 0))[below_cap & ~_near(d)].any()
    assert not occ[d > 2.0 / (R - 1)].any()  # nothing outside the sphere is filled
    # Half the faces flipped: parity ignores orientation.
    faces = s.faces.copy()
    faces[::2] = faces[::2, ::-1]
    np.testing.assert_array_equal(mesh_occupancy(s.vertices, faces, R),
                                  mesh_occupancy(s.vertices, s.faces, R))
    # Two overlapping closed boxes: their union, not their symmetric difference.
    a = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    b = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    b.apply_translation((0.4, 0.0, 0.0))
    both = trimesh.util.concatenate([a, b])
    assert len(np.unique(parts(both.faces))) == 2
    occ = mesh_occupancy(both.vertices, both.faces, R)
    union = (np.abs(y) < 0.5) & (np.abs(z) < 0.5) & (x > -0.5) & (x < 0.9)
    np.testing.assert_array_equal(occ, union)


def test_mesh_files_normalised_and_cached(tmp_path):
    s = _sphere(radius=3.0)
    s.apply_translation((10, 0, 0))
    x, y, z = _coords()
    expect = np.sqrt(x ** 2 + y ** 2 + z ** 2) < 0.9  # centred, largest side 1.8
    for suffix in (".obj", ".ply", ".off", ".stl"):
        path = tmp_path / f"s{suffix}"
        s.export(path)
        vol = load_volume(path, R)
        d = np.sqrt(x ** 2 + y ** 2 + z ** 2) - 0.9
        assert not (vol != expect)[~_near(d)].any(), suffix
    cached = list((tmp_path / "cache" / "volumes").glob("*_r40_*.npy"))
    assert len(cached) == 4
    np.testing.assert_array_equal(mesh_volume(tmp_path / "s.obj", R), load_volume(
        tmp_path / "s.obj", R))


def test_mesh_errors(tmp_path):
    empty = tmp_path / "empty.obj"
    empty.write_text("v 0 0 0\nv 1 0 0\n")
    with pytest.raises(ValueError, match="no triangles"):
        load_volume(empty, 16)
    with pytest.raises(ValueError, match="no such mesh file"):
        load_volume(tmp_path / "missing.obj", 16)
    bad = tmp_path / "v.xyz"
    bad.write_text("1 2 3")
    with pytest.raises(ValueError, match="unsupported target"):
        load_volume(bad, 16)


def test_npy_and_mat_volumes(tmp_path):
    from scipy.io import savemat

    g = np.linspace(-1, 1, 30)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    small = ((x - 0.3) ** 2 + y ** 2 + z ** 2 < 0.25).astype(np.uint8)  # off-centre, r=0.5
    np.save(tmp_path / "v.npy", small)
    savemat(tmp_path / "v.mat", {"hypercube": small.astype(np.float64)})
    np.save(tmp_path / "v255.npy", small * 255)  # scaled by the maximum, like WIRE's loader
    a, b = load_volume(tmp_path / "v.npy", R), load_volume(tmp_path / "v.mat", R)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, load_volume(tmp_path / "v255.npy", R))
    idx = np.argwhere(a)
    centre = (idx.min(0) + idx.max(0)) / 2
    np.testing.assert_allclose(centre, (R - 1) / 2, atol=0.5)  # re-centred
    side = (idx.max(0) - idx.min(0)).max() * 2 / (R - 1)
    assert abs(side - 1.8) < 0.15  # scaled like the meshes
    savemat(tmp_path / "other.mat", {"volume": small})
    with pytest.raises(ValueError, match="no 'hypercube' variable \\(variables: volume\\)"):
        load_volume(tmp_path / "other.mat", R)
    np.save(tmp_path / "flat.npy", np.zeros((8, 8, 4)))
    with pytest.raises(ValueError, match="must be cubic"):
        load_volume(tmp_path / "flat.npy", R)
    np.save(tmp_path / "zero.npy", np.zeros((8, 8, 8)))
    with pytest.raises(ValueError, match="no occupied voxels"):
        load_volume(tmp_path / "zero.npy", R)
    with pytest.raises(ValueError, match="no occupied voxels"):
        normalise_volume(np.zeros((4, 4, 4), bool), 8)


def test_iou_on_known_volumes():
    a = np.zeros((4, 4, 4), bool)
    b = a.copy()
    a[:2] = True
    b[1:3] = True
    assert iou(a, b) == pytest.approx(1 / 3)
    assert iou(a, a) == 1.0
    assert iou(a, ~a) == 0.0
    assert iou(np.zeros_like(a), np.zeros_like(a)) == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        iou(a, np.zeros((4, 4, 3), bool))


def test_statue_is_deterministic_with_holes_and_in_bounds():
    v = statue_volume(64)
    np.testing.assert_array_equal(v, statue_volume(64))
    assert 0.02 < v.mean() < 0.12
    idx = np.argwhere(v)
    g = grid(64)
    assert g[idx.min(0)].min() >= -0.9 and g[idx.max(0)].max() <= 0.9
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    tunnel = (np.hypot(x, y + 0.8) < 0.03) & (np.abs(z) < 0.35)
    beside = (np.hypot(x - 0.15, y + 0.8) < 0.03) & (np.abs(z) < 0.35)
    assert tunnel.any() and not v[tunnel].any() and v[beside].all()  # a hole through the base


def test_voxel_batches_labels_and_surface_bias():
    v = statue_volume(32)[None]
    b = VoxelBatches(v, 4096, seed=0, device=torch.device("cpu"))
    coords, target = b(0)
    assert coords.shape == (4096, 3) and target.shape == (1, 4096, 1)
    idx = np.rint((coords.numpy() + 1) * 31 / 2).astype(int)
    np.testing.assert_array_equal(target[0, :, 0].numpy() > 0, v[0][tuple(idx.T)])
    # Surface-biased: far more occupied samples than the occupied fraction.
    assert (target > 0).float().mean() > 2 * v.mean()
    c2, _ = b(1)
    assert not torch.equal(coords, c2)


def _surface_mask(occ: np.ndarray) -> np.ndarray:
    """Voxels whose 6-neighbourhood holds occupied and empty voxels, by morphology."""
    from scipy.ndimage import binary_dilation, binary_erosion, generate_binary_structure

    cross = generate_binary_structure(3, 1)
    inner = occ & ~binary_erosion(occ, cross, border_value=1)  # outside the grid: no voxel
    return inner | (~occ & binary_dilation(occ, cross))


def test_surface_sampling_fraction_band_and_seed(monkeypatch):
    from scipy.ndimage import binary_dilation

    v = statue_volume(24)
    surface = _surface_mask(v)
    cpu = torch.device("cpu")
    b = VoxelBatches(v[None], 1000, seed=3, device=cpu, sampling="surface")
    assert b.surface.tolist() == np.flatnonzero(surface).tolist()

    def voxels(coords):
        return tuple(np.rint((coords.numpy() + 1) * 23 / 2).astype(int).T)

    near = int(1000 * occupancy.SURFACE_FRACTION)
    band = binary_dilation(surface, np.ones((2 * occupancy.SURFACE_BAND + 1,) * 3, bool))
    coords, target = b(0)
    in_band = band[voxels(coords)]
    assert band.mean() < 0.7  # so the uniform part's hits tell it from the near part
    assert in_band[-near:].all() and abs(in_band[:-near].mean() - band.mean()) < 0.1
    np.testing.assert_array_equal(target[0, :, 0].numpy() > 0, v[voxels(coords)])
    # the fraction and the band are the module's constants: a quarter on the surface itself
    monkeypatch.setattr(occupancy, "SURFACE_FRACTION", 0.25)
    monkeypatch.setattr(occupancy, "SURFACE_BAND", 0)
    coords = VoxelBatches(v[None], 1000, seed=3, device=cpu)(0)[0]
    on = surface[voxels(coords)]
    assert on[-250:].all() and on[:-250].mean() < 3 * surface.mean()
    # deterministic under the seed; uniform: no surface list, occupancy near the volume's
    again = VoxelBatches(v[None], 1000, seed=3, device=cpu)
    assert torch.equal(again(0)[0], coords) and not torch.equal(again(1)[0], coords)
    assert not torch.equal(VoxelBatches(v[None], 1000, seed=4, device=cpu)(0)[0], coords)
    u = VoxelBatches(v[None], 20000, seed=3, device=cpu, sampling="uniform")
    assert len(u.surface) == 0
    assert abs((u(0)[1] > 0).float().mean().item() - v.mean()) < 4 * (v.mean() / 20000) ** 0.5
    with pytest.raises(ValueError, match="sampling must be one of"):
        VoxelBatches(v[None], 10, seed=0, device=cpu, sampling="edges")


def test_fit_occupancy_improves_iou():
    x, y, z = _coords(24)
    target = x ** 2 + y ** 2 + z ** 2 < 0.5
    r = fit_occupancy(target, "siren", width=32, layers=3, w0=30.0, lr=1e-3, points=2048,
                      steps=60, eval_every=20, snapshots=(60,), seed=0, device="cpu",
                      progress=False)
    assert r.step == [0, 20, 40, 60] and r.best_step in r.step and r.last_iou is not None
    assert r.iou[-1] > 0.7 and r.iou[-1] > r.iou[0] + 0.3
    assert set(r.snapshots) == {60} and r.snapshots[60].shape == (24, 24, 24)


def test_render_shows_a_shaded_disc():
    x, y, z = _coords(32)
    img = render(x ** 2 + y ** 2 + z ** 2 < 0.5)
    assert img.shape == (32, 32)
    assert img[0, 0] == 1.0 and img[16, 16] < 1.0
    assert img[10, 10] != img[22, 22]  # lit from the upper left: shading varies


def test_cli_occupancy_pretrain_fit(tmp_path, capsys):
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    _sphere(0.5).export(shapes / "ball.ply")
    trimesh.creation.box(extents=(1, 0.5, 0.8)).export(shapes / "box.stl")
    assert load_shapes(shapes, 16, progress=False)[1] == ["ball.ply", "box.stl"]
    tiny = ["--res", "20", "--width", "16", "--layers", "3", "--shared", "2", "--points", "512",
            "--lr", "1e-3", "--no-progress", "--device", "cpu"]
    enc = tmp_path / "enc.pt"
    assert main(["occupancy", "pretrain", "--meshes", str(shapes), "--out", str(enc),
                 "--steps", "3", *tiny]) == 0
    g = np.linspace(-1, 1, 16)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    np.save(tmp_path / "t.npy", np.hypot(np.hypot(x, y) - 0.5, z) < 0.25)
    out = tmp_path / "fit"
    fit_tiny = ["--res", "20", "--points", "512", "--lr", "1e-3", "--no-progress", "--device",
                "cpu"]  # the encoder gives the architecture
    assert main(["occupancy", "fit", str(tmp_path / "t.npy"), "--encoder", str(enc),
                 "--steps", "4", "--eval-every", "2", "--mesh-steps", "2,4", "--out", str(out),
                 *fit_tiny]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["methods"]["strainer"]["step"] == [0, 2, 4]
    assert m["config"]["encoder"] == str(enc)
    assert m["config"]["model"] == dict(width=16, layers=3, shared=2, w0=30.0)
    for name in ("report.md", "iou.png", "preview.png", "meshes/target.ply"):
        assert (out / name).is_file(), name
    capsys.readouterr()
    assert main(["occupancy", "fit", str(tmp_path / "missing.npy"), "--out", str(out),
                 *tiny]) == 2
    assert main(["occupancy", "fit", "--mesh-steps", "3", "--steps", "4", "--eval-every", "2",
                 "--out", str(out), *tiny]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no such file" in err[0] and "multiple of --eval-every" in err[1]
