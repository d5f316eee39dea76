"""3D occupancy INRs (paper Fig. 12): pretrain on chairs, fit a statue, IoU on the full grid.

Networks map (x, y, z) in [-1, 1]^3 to one value; the target is occupancy scaled to
[-1, 1] (inside 1, outside -1) and the loss is the training engine's MSE
(``train.batch_mse``), as in the occupancy protocol the paper follows: bounded gradients,
and the same loss for every task. A voxel is predicted occupied where the output > 0,
i.e. occupancy probability (output + 1) / 2 > 0.5. Each step trains on a fresh batch of
voxel centres with exact labels (``VoxelBatches``): by default (``sampling="surface"``)
half uniform over the grid and half within 2 voxels of a surface voxel, so the thin parts
are seen; ``sampling="uniform"``: all uniform. A fit's ``recipe``
(``recipes.occupancy_recipe``) sets its learning rate, stabiliser and sampling: "paper" as
given, "fast" as chosen on a validation chair (``benchmarks/tune_occupancy.py``).
The image jobs' ``value_range`` setting does not apply here: the targets are these labels,
not pixels (and the progress bar's "psnr" reads the MSE as one of [-1, 1] values).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checkpoint import load_encoder, save_checkpoint
from ..config import (OccupancyDemoJob, OccupancyFitJob, OccupancyPretrainJob, apply_defaults,
                      preset, to_dict, validate, write_config)
from ..fit import initial_model, make_keeper
from ..jobs import cached_encoder, runtime_kwargs, use_encoder
from ..memory import check_fits
from ..models import Encoder, Layers, Strainer, resolve_device
from ..recipes import VOXEL_SAMPLING, occupancy_recipe
from ..report import plot_curves, write_outputs
from ..train import Callback, KeepBest, Stabilize, batch_mse, train
from .common import parse_inits, steps_to_reach
from .preview import save_preview
from .statue import statue_volume
from .volumes import MESH_SUFFIXES, VOLUME_SUFFIXES, grid, iou, load_volume

__all__ = ["chairs_dir", "load_target", "load_shapes", "SURFACE_FRACTION", "SURFACE_BAND",
           "surface_voxels", "VoxelBatches", "predict", "pretrain_occupancy", "fit_occupancy",
           "OccupancyResult", "chairs_encoder", "write_mesh", "write_occupancy_report",
           "pretrain_job", "fit_job", "demo_job"]

# Sizes: config.PRESETS['occupancy'] (CPU: 128^3 grid, width 64, measured in the README).
COMPARE_STEP = 150  # the paper's snapshot
# sampling="surface": this fraction of each batch is drawn near the surface (a surface voxel
# moved by up to SURFACE_BAND voxels per axis), the rest uniformly
SURFACE_FRACTION = 0.5
SURFACE_BAND = 2


def chairs_dir() -> Path:
    """Folder of the 10 embedded CC0 chair meshes (OBJ) and their README.md."""
    return Path(__file__).resolve().parent.parent / "datasets" / "chairs"


def load_target(target: str, res: int) -> np.ndarray:
    """Occupancy [res]^3 of ``"statue"`` (the generated embedded target) or a file."""
    return statue_volume(res) if target == "statue" else load_volume(target, res)


def shape_files(source: str | Path) -> list[Path]:
    """The meshes / volumes of a folder (sorted by name), or ``[source]`` for a file."""
    source = Path(source)
    suffixes = MESH_SUFFIXES + VOLUME_SUFFIXES
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in suffixes)
        if not files:
            raise ValueError(f"{source}: folder holds no meshes or volumes ({', '.join(suffixes)})")
        return files
    if source.is_file():
        return [source]
    raise ValueError(f"{source}: no such file or folder")


def load_shapes(source: str | Path, res: int, progress: bool = True
                ) -> tuple[np.ndarray, list[str]]:
    """All meshes / volumes of a folder (or one file) as ([S, res, res, res] bool, names)."""
    files = shape_files(source)
    vols = [load_volume(f, res) for f in tqdm(files, desc="occupancy volumes",
                                               disable=not progress, leave=False)]
    return np.stack(vols), [f.name for f in files]


def surface_voxels(volumes: np.ndarray) -> torch.Tensor:
    """Flat indices [M] (int64, ascending) of the surface voxels of volumes [S, R, R, R]
    (bool): voxels whose 6-neighbourhood (with themselves) holds both occupied and empty
    voxels in any of the shapes."""
    r = volumes.shape[1]
    occ = torch.from_numpy(np.ascontiguousarray(volumes, dtype=bool))
    surface = torch.zeros_like(occ)
    for axis in (1, 2, 3):  # a voxel whose 6-neighbour differs is a surface voxel
        diff = occ.narrow(axis, 1, r - 1) != occ.narrow(axis, 0, r - 1)
        surface.narrow(axis, 1, r - 1).logical_or_(diff)
        surface.narrow(axis, 0, r - 1).logical_or_(diff)
    return torch.nonzero(surface.any(0).reshape(-1)).squeeze(1)


class VoxelBatches:
    """Point batches (``train.batch_mse``) for volumes [S, R, R, R]: each call draws ``points``
    voxel centres, shared by all shapes, from a CPU generator seeded ``seed`` (the same
    batches on every device; the surface voxels are found once, here).

    ``sampling`` (``recipes.VOXEL_SAMPLING``): "uniform": every point uniform over the grid;
    "surface" (default): the last ``int(points * SURFACE_FRACTION)`` points are surface voxels
    (``surface_voxels``, drawn uniformly) each moved by a uniform offset in
    [-SURFACE_BAND, SURFACE_BAND] per axis (clamped to the grid), the others uniform.
    Returns (coords [N, 3] in [-1, 1], target [S, N, 1] in {-1, 1}) on ``device``.
    """

    def __init__(self, volumes: np.ndarray, points: int, seed: int,
                 device: torch.device, sampling: str = "surface") -> None:
        if sampling not in VOXEL_SAMPLING:
            raise ValueError(f"sampling must be one of {VOXEL_SAMPLING}, got {sampling!r}")
        s, r = volumes.shape[0], volumes.shape[1]
        self.res, self.points, self.device, self.sampling = r, points, device, sampling
        occ = torch.from_numpy(volumes)
        self.surface = (surface_voxels(volumes) if sampling == "surface"
                        else torch.zeros(0, dtype=torch.long))
        self.target = (occ.reshape(s, -1).float() * 2 - 1).to(device)
        self.grid = torch.from_numpy(grid(r)).float()
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        r, n = self.res, self.points
        near = int(n * SURFACE_FRACTION) if len(self.surface) else 0
        uniform = torch.randint(0, r ** 3, (n - near,), generator=self.gen)
        pick = self.surface[torch.randint(0, max(len(self.surface), 1), (near,),
                                          generator=self.gen)]
        ijk = torch.stack([pick // (r * r), pick // r % r, pick % r], 1)
        ijk = (ijk + torch.randint(-SURFACE_BAND, SURFACE_BAND + 1, ijk.shape,
                                   generator=self.gen)).clamp(0, r - 1)
        flat = torch.cat([uniform, (ijk[:, 0] * r + ijk[:, 1]) * r + ijk[:, 2]])
        idx = torch.stack([flat // (r * r), flat // r % r, flat % r], 1)
        coords = self.grid[idx].to(self.device)
        return coords, self.target[:, flat.to(self.device), None]


def predict(model: Strainer, res: int, chunk: int = 1 << 18) -> torch.Tensor:
    """Occupancy probabilities [S, res, res, res] (float32, CPU) on the full grid."""
    return _probabilities(_grid_output(model, res, chunk), res)


def _grid_output(model: Strainer, res: int, chunk: int = 1 << 18) -> torch.Tensor:
    """The networks' outputs [S, res^3] (float32, CPU) on the full grid, ``chunk`` voxels
    per no-grad forward."""
    g = torch.from_numpy(grid(res)).float()
    dev = next(model.parameters()).device
    out = torch.empty(model.signals, res ** 3)
    with torch.no_grad():
        for start in range(0, res ** 3, chunk):
            flat = torch.arange(start, min(start + chunk, res ** 3))
            coords = g[torch.stack([flat // (res * res), flat // res % res, flat % res], 1)]
            out[:, flat] = model(coords.to(dev))[..., 0].float().cpu()
    return out


def _probabilities(out: torch.Tensor, res: int) -> torch.Tensor:
    return ((out + 1) / 2).clamp(0, 1).reshape(-1, res, res, res)


def pretrain_occupancy(volumes: np.ndarray, names: list[str] | None = None, *,
                       width: int = 64, layers: int = 5, shared: int = 4, w0: float = 30.0,
                       points: int = 16384, steps: int = 1000, lr: float = 1e-4,
                       sampling: str = "surface", seed: int = 0,
                       device: str = "auto", backend: str = "auto", precision: str = "exact",
                       progress: bool = True, out: str | Path | None = None) -> Strainer:
    """STRAINER on S shapes [S, R, R, R] (bool): shared encoder, one decoder per shape,
    3 -> 1, ``points`` voxel centres a step drawn by ``sampling`` (``VoxelBatches``). With
    ``out`` the model is saved as a checkpoint; ``model.encoder()`` is the pretrained
    ``Encoder``."""
    dev = resolve_device(device)
    model = Strainer(len(volumes), in_features=3, out_features=1, width=width, layers=layers,
                     shared=shared, w0=w0, seed=seed, backend=backend,
                     precision=precision).to(dev)
    batches = VoxelBatches(volumes, points, seed, dev, sampling)
    train(model, batch_mse(model, batches), steps, lr=lr, progress=progress,
          generator=batches.gen, desc=f"pretrain occupancy STRAINER-{len(volumes)}")
    if out is not None:
        save_checkpoint(model, out, signals=list(names or []), steps=steps, seed=seed, lr=lr,
                        res=volumes.shape[1], points=points, sampling=sampling,
                        task="occupancy")
    return model


@dataclass
class OccupancyResult:
    """IoU curve of one fit: ``step``, ``iou`` (at 0.5 on the full grid), cumulative
    training ``wall_s`` (evaluation excluded); ``snapshots``: step -> probabilities
    [R, R, R] at the requested mesh steps. The last IoU (and a snapshot at the last step)
    is of the returned weights, those of step ``best_step``; ``last_iou``: the last
    iterate's IoU."""

    step: list[int] = field(default_factory=list)
    iou: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    last_iou: float | None = None
    best_step: int | None = None


class _IoUCurve(Callback):
    """IoU on the full grid at the log points, probability snapshots at the ``snapshots``
    steps. A ``keeper`` is offered the full-grid MSE of each log point's weights (from the
    same forward); when it returns earlier weights, the last log point (IoU, snapshot) is
    re-measured on them."""

    key = "iou"

    def __init__(self, result: OccupancyResult, target: np.ndarray,
                 snapshots: tuple[int, ...], keeper: KeepBest | None = None) -> None:
        self.result, self.target, self.snapshots, self.keeper = result, target, snapshots, keeper
        self.values = torch.from_numpy(target.reshape(1, -1)).float() * 2 - 1  # [-1, 1]

    def _measure(self, t) -> tuple[float, np.ndarray]:
        out = _grid_output(t.model, self.target.shape[0])
        if self.keeper is not None:
            self.keeper.offer(t.step, ((out - self.values) ** 2).mean(1))
        prob = _probabilities(out, self.target.shape[0])[0].numpy()
        return iou(prob > 0.5, self.target), prob

    def log(self, t) -> None:
        value, prob = self._measure(t)
        r = self.result
        r.step.append(t.step)
        r.iou.append(value)
        r.wall_s.append(t.wall)
        if t.step in self.snapshots:
            r.snapshots[t.step] = prob

    def end(self, t) -> None:
        r = self.result
        r.last_iou = r.iou[-1]
        r.best_step = t.step if self.keeper is None else int(self.keeper.kept_step[0])
        if r.best_step != t.step:  # the keeper (order 25, before this) loaded earlier weights
            r.iou[-1], prob = self._measure(t)
            if t.step in self.snapshots:
                r.snapshots[t.step] = prob

    def state_dict(self) -> dict:
        r = self.result
        return {"step": r.step, "iou": r.iou, "wall_s": r.wall_s}

    def load_state_dict(self, state: dict) -> None:
        r = self.result
        r.step, r.iou, r.wall_s = state["step"], state["iou"], state["wall_s"]


def fit_occupancy(target: np.ndarray, init: str | Encoder = "siren", *,
                  init_weights: Layers | None = None, width: int | None = None,
                  layers: int | None = None, w0: float | None = None, points: int = 16384,
                  steps: int = 300, lr: float = 1e-4, eval_every: int = 50,
                  snapshots: tuple[int, ...] = (), keep: str = "best", stabilize: str = "off",
                  sampling: str = "surface", recipe: str = "paper", seed: int = 0,
                  device: str = "auto", backend: str = "auto", precision: str = "exact",
                  progress: bool = True) -> OccupancyResult:
    """Fits one volume [R, R, R] (bool) from ``init`` ("siren" or a pretrained occupancy
    ``Encoder``; its architecture is used, see ``fit.fit_many``); IoU every ``eval_every``
    steps, probability snapshots at the ``snapshots`` steps. ``keep``: "best" returns the
    log point's weights with the lowest MSE on the full grid (the training loss on every
    voxel, not the IoU; a point batch's loss would be a noisy score), "last" the last
    iterate; the result's last IoU / snapshot are of the returned weights.

    ``stabilize``: test-time stabilisation mode (``stability.STABILIZE``; a schedule spans
    ``steps``), ``sampling``: the point batches (``VoxelBatches``), ``recipe``: "paper" runs
    ``lr``, ``stabilize`` and ``sampling`` as given, "fast" the values chosen on a
    validation chair for a "siren" or STRAINER init (``recipes.occupancy_recipe``; leave the
    three at their defaults; ValueError while ``benchmarks/results/tune_occupancy.json`` is
    missing)."""
    name = init if isinstance(init, str) else "strainer"
    r = occupancy_recipe(recipe, name, lr=lr, stabilize=stabilize, sampling=sampling)
    keeper = make_keeper(keep, per_step=False)
    dev = resolve_device(device)
    model = initial_model(init, 1, 1, init_weights=init_weights, width=width, layers=layers,
                          w0=w0, seed=seed, in_features=3, backend=backend,
                          precision=precision).to(dev)
    result = OccupancyResult()
    batches = VoxelBatches(target[None], points, seed, dev, r.sampling)
    train(model, batch_mse(model, batches), steps, lr=r.lr, log_every=eval_every,
          callbacks=[_IoUCurve(result, target, snapshots, keeper), Stabilize(r.stabilize),
                     *([keeper] if keeper else [])],
          progress=progress, desc=f"occupancy {name}", generator=batches.gen)
    return result


def chairs_encoder(cfg: OccupancyFitJob | OccupancyDemoJob) -> tuple[Encoder, str]:
    """Encoder of an occupancy STRAINER-10 on the embedded chairs, cached (see
    ``jobs.cached_encoder``), or the config's ``encoder`` checkpoint."""
    m, v, rt = cfg.model, cfg.voxels, cfg.runtime
    net = dict(width=m.width, layers=m.layers, shared=m.shared, w0=m.w0)
    key = dict(net, res=v.res, lr=cfg.pretrain.lr, points=v.points,
               pretrain_steps=cfg.pretrain.steps, seed=rt.seed, precision=rt.precision)

    def build(path: Path) -> None:
        volumes, names = load_shapes(chairs_dir(), v.res, rt.progress)
        pretrain_occupancy(volumes, names, points=v.points, steps=cfg.pretrain.steps,
                           lr=cfg.pretrain.lr, out=path, **net, **runtime_kwargs(rt))

    return cached_encoder(getattr(cfg, "encoder", None), "chairs_occupancy", key, build)


def write_mesh(prob: np.ndarray, path: Path) -> bool:
    """Marching-cubes mesh (level 0.5) of probabilities [R, R, R] as .ply in [-1, 1]
    coordinates; False (nothing written) when no surface crosses 0.5."""
    import trimesh
    from skimage.measure import marching_cubes

    if prob.min() >= 0.5 or prob.max() <= 0.5:
        return False
    verts, faces, _, _ = marching_cubes(prob, level=0.5)
    verts = verts * (2.0 / (prob.shape[0] - 1)) - 1
    path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.Trimesh(verts, faces, process=False).export(path)
    return True


def _resolve(cfg) -> Encoder | None:
    """Fills an occupancy config in place: the given encoder's architecture, then the
    device preset; checks the ranges. Returns the loaded encoder (or None)."""
    encoder = None
    if getattr(cfg, "encoder", None):
        encoder = use_encoder(cfg.model, load_encoder(cfg.encoder))
    defaults = preset("occupancy-pretrain" if isinstance(cfg, OccupancyPretrainJob)
                      else "occupancy", cfg.runtime.device)
    apply_defaults(cfg, defaults)
    validate(cfg)
    if not 1 <= cfg.model.shared < cfg.model.layers:
        raise ValueError(f"--shared must be in [1, --layers - 1], got {cfg.model.shared}")
    pretraining = isinstance(cfg, OccupancyPretrainJob)
    shapes = len(shape_files(cfg.meshes or chairs_dir())) if pretraining else 1
    what = f"{'pretraining on' if pretraining else 'fitting'} {shapes} volume(s)"
    check_fits(resolve_device(cfg.runtime.device), f"{what} of {cfg.voxels.res}^3 voxels",
               signals=shapes, grid=cfg.voxels.res ** 3, channels=1, points=cfg.voxels.points,
               width=cfg.model.width, layers=cfg.model.layers, in_features=3,
               metrics=False)
    if hasattr(cfg, "eval_every"):
        cfg.eval_every = min(cfg.eval_every, cfg.steps)
    return encoder


def _mesh_steps(text: str | None, steps: int) -> tuple[int, ...]:
    if text is None:
        return tuple(sorted({min(COMPARE_STEP, steps), steps}))
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ValueError(f"--mesh-steps must be a comma list of steps, got {text!r}") from None
    if not values or values[0] < 0 or values[-1] > steps:
        raise ValueError(f"--mesh-steps must lie in [0, {steps}], got {text!r}")
    return tuple(values)


def pretrain_job(cfg: OccupancyPretrainJob) -> None:
    """``strainer-fast occupancy pretrain``: the checkpoint and ``OUT`` .config.json."""
    _resolve(cfg)
    m, v, rt = cfg.model, cfg.voxels, cfg.runtime
    volumes, names = load_shapes(cfg.meshes or chairs_dir(), v.res, rt.progress)
    write_config(Path(cfg.out).with_suffix(".config.json"), "occupancy pretrain", cfg)
    pretrain_occupancy(volumes, names, width=m.width, layers=m.layers, shared=m.shared,
                       w0=m.w0, points=v.points, steps=cfg.train.steps, lr=cfg.train.lr,
                       sampling=cfg.sampling, out=cfg.out, **runtime_kwargs(rt))
    print(f"wrote {cfg.out} (occupancy STRAINER-{len(names)}, {cfg.train.steps} steps)",
          file=sys.stderr)


def fit_job(cfg: OccupancyFitJob | OccupancyDemoJob) -> None:
    """``strainer-fast occupancy fit``: IoU curves, meshes, previews, report in OUT."""
    t0, c0 = time.perf_counter(), time.process_time()
    encoder = _resolve(cfg)
    m, v, rt = cfg.model, cfg.voxels, cfg.runtime
    target = getattr(cfg, "target", "statue")
    inits = parse_inits(getattr(cfg, "inits", "siren,strainer"))
    meshes = _mesh_steps(cfg.mesh_steps, cfg.steps)
    cfg.mesh_steps = ",".join(map(str, meshes))
    for step in meshes:  # snapshots are taken at log points only
        if step not in (0, cfg.steps) and step % cfg.eval_every:
            raise ValueError(f"--mesh-steps {step} is not a multiple of --eval-every "
                             f"{cfg.eval_every}")
    for init in inits:  # a bad recipe fails before any volume or pretraining
        occupancy_recipe(cfg.recipe, init, lr=cfg.lr, stabilize=cfg.stabilize,
                         sampling=cfg.sampling)
    volume = load_target(target, v.res)
    if not volume.any():
        raise ValueError(f"{target}: no occupied voxels at --res {v.res}")
    source = None
    if "strainer" in inits:
        encoder, source = (encoder, cfg.encoder) if encoder is not None else chairs_encoder(cfg)
    out = Path(cfg.out)
    write_config(out / "config.json", "occupancy demo" if isinstance(cfg, OccupancyDemoJob)
                 else "occupancy fit", cfg)
    results = {init: fit_occupancy(volume, encoder if init == "strainer" else init,
                                   width=m.width, layers=m.layers, w0=m.w0, points=v.points,
                                   steps=cfg.steps, lr=cfg.lr, eval_every=cfg.eval_every,
                                   snapshots=meshes, keep=cfg.keep, stabilize=cfg.stabilize,
                                   sampling=cfg.sampling, recipe=cfg.recipe,
                                   **runtime_kwargs(rt))
               for init in inits}
    total = time.perf_counter() - t0
    write_occupancy_report(out, results, volume, dict(to_dict(cfg), target=target,
                                                      encoder_source=source),
                           device=str(resolve_device(rt.device)), total_s=total,
                           cpu_s=time.process_time() - c0)
    print(f"occupancy {target} finished in {total:.1f} s; wrote {out}", file=sys.stderr)


demo_job = fit_job


def write_occupancy_report(out: Path, results: dict[str, OccupancyResult],
                           target: np.ndarray, config: dict, *, device: str,
                           total_s: float, cpu_s: float) -> dict:
    """Writes ``out``/{metrics.json, iou.png, preview.png, meshes/*.ply, report.md}.

    total_s / cpu_s: wall-clock and process CPU seconds (all threads) of the whole run."""
    out.mkdir(parents=True, exist_ok=True)
    methods = {m: {"step": r.step, "iou": r.iou, "wall_s": r.wall_s} for m, r in results.items()}
    meshes = []
    previews = {"target": target}
    for m, r in results.items():
        for step, prob in sorted(r.snapshots.items()):
            path = out / "meshes" / f"{m}_step{step:05d}.ply"
            if write_mesh(prob, path):
                meshes.append(str(path.relative_to(out)))
            previews[f"{m} @ {step}"] = prob > 0.5
    write_mesh(target.astype(np.float32), out / "meshes" / "target.ply")
    summary: dict = {"iou_final": {m: r.iou[-1] for m, r in results.items()}}
    at = {m: r.iou[r.step.index(COMPARE_STEP)] for m, r in results.items()
          if COMPARE_STEP in r.step}
    if at:
        summary[f"iou_at_{COMPARE_STEP}"] = at
    if {"siren", "strainer"} <= at.keys():
        summary[f"strainer_minus_siren_at_{COMPARE_STEP}"] = at["strainer"] - at["siren"]
    if {"siren", "strainer"} <= results.keys():
        s = results["strainer"]
        summary["strainer_steps_to_siren_final"] = steps_to_reach(
            s.step, s.iou, results["siren"].iou[-1])
    title = f"occupancy fit of {config['target']}"
    table = [f"Target: {config['voxels']['res']}^3 grid, occupied fraction "
             f"{target.mean():.4f}.", "",
             f"| method | IoU @ step {COMPARE_STEP} | final IoU (step) | fit wall time (s) |",
             "| --- | ---: | ---: | ---: |"]
    for m, r in results.items():
        early = at.get(m)
        table.append(f"| {m} | {'-' if early is None else f'{early:.4f}'} | {r.iou[-1]:.4f} "
                     f"({r.step[-1]}) | {r.wall_s[-1]:.1f} |")
    key = f"strainer_minus_siren_at_{COMPARE_STEP}"
    if key in summary:
        table += ["", f"STRAINER minus SIREN IoU at step {COMPARE_STEP}: {summary[key]:+.4f}."]
    notes = (f"Total wall time (volumes, any pretraining, fits, IoU evaluations, meshes): "
             f"{total_s:.1f} s; CPU time {cpu_s:.1f} s over {torch.get_num_threads()} threads "
             f"(wall time grows when other jobs share the cores).")
    metrics = write_outputs(out, title=title, config=config, device=device, table=table,
                            notes=notes, metrics=dict(
                                target_occupied_fraction=float(target.mean()), methods=methods,
                                summary=summary, meshes=["meshes/target.ply", *meshes],
                                total_s=total_s, cpu_s=cpu_s, threads=torch.get_num_threads()),
                            files="`iou.png` (IoU curves), `preview.png` (shaded renders of "
                                  "the target and of each fit at the mesh steps), "
                                  "`meshes/*.ply` (marching cubes at level 0.5), "
                                  "`metrics.json`, `config.json`.")
    plot_curves(methods, out / "iou.png", title, key="iou", ylabel="IoU at 0.5 (full grid)")
    save_preview(previews, out / "preview.png", title)
    return metrics
