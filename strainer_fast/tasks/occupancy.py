"""3D occupancy INRs (paper Fig. 12): pretrain on chairs, fit a statue, IoU on the full grid.

Networks map (x, y, z) in [-1, 1]^3 to one value; the target is occupancy scaled to
[-1, 1] (inside 1, outside -1) and the loss is ``train_loop``'s MSE, as in the occupancy
protocol the paper follows: bounded gradients, and the same loss for every task. A voxel is
predicted occupied where the output > 0, i.e. occupancy probability (output + 1) / 2 > 0.5.
Each step trains on a fresh batch of voxel centres, half uniform over the grid and half
within 2 voxels of a surface voxel, so the labels are exact and the thin parts are seen.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..checkpoint import save_checkpoint
from ..fit import _initial_layers, train_loop
from ..models import Layers, Strainer, resolve_device
from ..report import plot_curves
from .common import TASK_INITS, cached_encoder, parse_inits, steps_to_reach, task_config
from .preview import save_preview
from .statue import statue_volume
from .volumes import MESH_SUFFIXES, VOLUME_SUFFIXES, grid, iou, load_volume

__all__ = ["OCC_CPU", "OCC_GPU", "chairs_dir", "load_target", "load_shapes", "VoxelBatches",
           "predict", "pretrain_occupancy", "fit_occupancy", "OccupancyResult", "add_parser",
           "run"]

# CPU: 128^3 grid, width-64 networks (4 shared sine layers + 1 linear decoder), 16384
# points a step, so the demo fits in minutes on 2 cores (measured in the README).
# GPU: the larger grid and networks.
OCC_CPU = dict(res=128, width=64, layers=5, shared=4, points=16384, pretrain_steps=1000,
               steps=300, eval_every=50)
OCC_GPU = dict(res=256, width=256, layers=6, shared=5, points=65536, pretrain_steps=2000,
               steps=1000, eval_every=50)
COMPARE_STEP = 150  # the paper's snapshot


def chairs_dir() -> Path:
    """Folder of the 10 embedded CC0 chair meshes (OBJ) and their README.md."""
    return Path(__file__).resolve().parent.parent / "data" / "chairs"


def load_target(target: str, res: int) -> np.ndarray:
    """Occupancy [res]^3 of ``"statue"`` (the generated embedded target) or a file."""
    return statue_volume(res) if target == "statue" else load_volume(target, res)


def load_shapes(source: str | Path, res: int, progress: bool = True
                ) -> tuple[np.ndarray, list[str]]:
    """All meshes / volumes of a folder (or one file) as ([S, res, res, res] bool, names)."""
    source = Path(source)
    suffixes = MESH_SUFFIXES + VOLUME_SUFFIXES
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in suffixes)
        if not files:
            raise ValueError(f"{source}: folder holds no meshes or volumes ({', '.join(suffixes)})")
    elif source.is_file():
        files = [source]
    else:
        raise ValueError(f"{source}: no such file or folder")
    vols = [load_volume(f, res) for f in tqdm(files, desc="occupancy volumes",
                                               disable=not progress, leave=False)]
    return np.stack(vols), [f.name for f in files]


class VoxelBatches:
    """``train_loop`` batches for volumes [S, R, R, R]: each call draws ``points`` voxel
    centres (half uniform, half near a surface voxel of any shape), shared by all shapes.

    Returns (coords [N, 3] in [-1, 1], target [S, N, 1] in {-1, 1}) on ``device``.
    """

    def __init__(self, volumes: np.ndarray, points: int, seed: int,
                 device: torch.device) -> None:
        s, r = volumes.shape[0], volumes.shape[1]
        self.res, self.points, self.device = r, points, device
        occ = torch.from_numpy(volumes)
        surface = torch.zeros_like(occ)
        for axis in (1, 2, 3):  # a voxel whose 6-neighbour differs is a surface voxel
            diff = occ.narrow(axis, 1, r - 1) != occ.narrow(axis, 0, r - 1)
            surface.narrow(axis, 1, r - 1).logical_or_(diff)
            surface.narrow(axis, 0, r - 1).logical_or_(diff)
        self.surface = torch.nonzero(surface.any(0).reshape(-1)).squeeze(1)
        self.target = (occ.reshape(s, -1).float() * 2 - 1).to(device)
        self.grid = torch.from_numpy(grid(r)).float()
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        r, n = self.res, self.points
        near = n // 2 if len(self.surface) else 0
        uniform = torch.randint(0, r ** 3, (n - near,), generator=self.gen)
        pick = self.surface[torch.randint(0, max(len(self.surface), 1), (near,),
                                          generator=self.gen)]
        ijk = torch.stack([pick // (r * r), pick // r % r, pick % r], 1)
        ijk = (ijk + torch.randint(-2, 3, ijk.shape, generator=self.gen)).clamp(0, r - 1)
        flat = torch.cat([uniform, (ijk[:, 0] * r + ijk[:, 1]) * r + ijk[:, 2]])
        idx = torch.stack([flat // (r * r), flat // r % r, flat % r], 1)
        coords = self.grid[idx].to(self.device)
        return coords, self.target[:, flat.to(self.device), None]


def predict(model: Strainer, res: int, chunk: int = 1 << 18) -> torch.Tensor:
    """Occupancy probabilities [S, res, res, res] (float32, CPU) on the full grid."""
    g = torch.from_numpy(grid(res)).float()
    dev = next(model.parameters()).device
    out = torch.empty(model.signals, res ** 3)
    with torch.no_grad():
        for start in range(0, res ** 3, chunk):
            flat = torch.arange(start, min(start + chunk, res ** 3))
            coords = g[torch.stack([flat // (res * res), flat // res % res, flat % res], 1)]
            out[:, flat] = model(coords.to(dev))[..., 0].float().cpu()
    return ((out + 1) / 2).clamp(0, 1).reshape(-1, res, res, res)


def pretrain_occupancy(volumes: np.ndarray, names: list[str], cfg: dict, opts: dict,
                       out: str | Path | None = None) -> Strainer:
    """STRAINER on S shapes [S, R, R, R]: shared encoder, one decoder per shape, 3 -> 1.

    cfg: width, layers, shared, w0, lr, points, pretrain_steps; opts: seed, device,
    backend, precision, progress. With ``out`` the model is saved as a checkpoint.
    """
    dev = resolve_device(opts["device"])
    torch.manual_seed(opts["seed"])
    model = Strainer(len(volumes), in_features=3, out_features=1, width=cfg["width"],
                     layers=cfg["layers"], shared=cfg["shared"], w0=cfg["w0"],
                     seed=opts["seed"], backend=opts["backend"],
                     precision=opts["precision"]).to(dev)
    batches = VoxelBatches(volumes, cfg["points"], opts["seed"], dev)
    train_loop(model, None, cfg["pretrain_steps"], cfg["lr"], progress=opts["progress"],
               desc=f"pretrain occupancy STRAINER-{len(volumes)}", batches=batches)
    if out is not None:
        save_checkpoint(model, out, signals=names, steps=cfg["pretrain_steps"],
                        seed=opts["seed"], lr=cfg["lr"], res=volumes.shape[1],
                        points=cfg["points"], task="occupancy")
    return model


@dataclass
class OccupancyResult:
    """IoU curve of one fit: ``step``, ``iou`` (at 0.5 on the full grid), cumulative
    training ``wall_s`` (evaluation excluded); ``snapshots``: step -> probabilities
    [R, R, R] at the requested mesh steps."""

    step: list[int] = field(default_factory=list)
    iou: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)


def fit_occupancy(target: np.ndarray, init: str, cfg: dict, opts: dict, *,
                  init_weights: Layers | None = None, keep: tuple[int, ...] = ()
                  ) -> OccupancyResult:
    """Fits one volume [R, R, R] from ``init`` ("siren" or "strainer" with ``init_weights``,
    the encoder layers); IoU every ``cfg["eval_every"]`` steps, snapshots at ``keep``."""
    dev = resolve_device(opts["device"])
    torch.manual_seed(opts["seed"])
    layers = _initial_layers(init, 1, 1, init_weights, cfg["width"], cfg["layers"], cfg["w0"],
                             opts["seed"], in_features=3)
    model = Strainer.from_layers(layers, w0=cfg["w0"], shared=0, backend=opts["backend"],
                                 precision=opts["precision"]).to(dev)
    res = target.shape[0]
    result = OccupancyResult()

    def on_log(step: int, wall: float, _: None) -> None:
        prob = predict(model, res)[0].numpy()
        result.step.append(step)
        result.iou.append(iou(prob > 0.5, target))
        result.wall_s.append(wall)
        if step in keep:
            result.snapshots[step] = prob

    train_loop(model, None, cfg["steps"], cfg["lr"], log_every=cfg["eval_every"],
               on_log=on_log, progress=opts["progress"], desc=f"occupancy {init}",
               batches=VoxelBatches(target[None], cfg["points"], opts["seed"], dev))
    return result


def chairs_encoder(encoder: str | None, cfg: dict, opts: dict) -> tuple[Layers, str]:
    """Encoder of an occupancy STRAINER-10 on the embedded chairs (``cached_encoder``)."""
    key = {k: cfg[k] for k in ("res", "width", "layers", "shared", "w0", "lr", "points",
                               "pretrain_steps")}

    def build(path: Path) -> None:
        volumes, names = load_shapes(chairs_dir(), cfg["res"], opts["progress"])
        pretrain_occupancy(volumes, names, cfg, opts, out=path)

    expect = dict(width=cfg["width"], layers=cfg["layers"], w0=cfg["w0"], in_features=3)
    key.update(seed=opts["seed"], precision=opts["precision"])
    return cached_encoder(encoder, expect, "chairs_occupancy", key, build)


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


def _add_common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--res", type=int, help="grid resolution (CPU default 128, GPU 256)")
    for name in ("width", "layers", "shared", "points", "pretrain-steps"):
        p.add_argument(f"--{name}", type=int, help="override the device's default")
    p.add_argument("--w0", type=float, default=30.0)
    p.add_argument("--lr", type=float, default=1e-4)


def add_parser(sub: argparse._SubParsersAction, common: Callable) -> None:
    """Registers ``occupancy {pretrain,fit,demo}``; ``common`` adds device/seed options."""
    occ = sub.add_parser("occupancy", help="3D occupancy INRs: pretrain on meshes, fit a "
                                           "target, IoU on the full grid")
    osub = occ.add_subparsers(dest="occupancy_command", required=True)
    p = osub.add_parser("pretrain", help="pretrain a 3 -> 1 STRAINER encoder on shapes")
    p.add_argument("--meshes", help="folder (or file) of meshes / volumes (default: the "
                                    "10 embedded chairs)")
    p.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    _add_common_options(p)
    common(p)
    for name, helptext in (("fit", "fit a target volume and record IoU"),
                           ("demo", "STRAINER (chairs) vs SIREN on the embedded statue")):
        p = osub.add_parser(name, help=helptext)
        if name == "fit":
            p.add_argument("target", nargs="?", default="statue",
                           help="mesh (.obj/.ply/.off/.stl), volume (.npy, .mat with "
                                "'hypercube') or 'statue' (embedded; default)")
            p.add_argument("--init", default="siren,strainer",
                           help=f"comma list of {', '.join(TASK_INITS)} (default: both)")
            p.add_argument("--encoder", help="occupancy STRAINER checkpoint (default: "
                                             "pretrain on the embedded chairs, cached)")
        p.add_argument("--out", required=name == "fit", default="occupancy_demo",
                       help="output folder")
        p.add_argument("--steps", type=int, help="fitting steps (CPU default 300)")
        p.add_argument("--eval-every", type=int, help="IoU every k steps (CPU default 50)")
        p.add_argument("--mesh-steps", help="comma list of steps to export meshes and "
                                            "previews at (default: 150 and the last)")
        _add_common_options(p)
        common(p)


def _config(args: argparse.Namespace) -> dict:
    cfg = task_config(args, OCC_CPU, OCC_GPU)
    if cfg["res"] < 2:
        raise ValueError(f"--res must be >= 2, got {cfg['res']}")
    if not 1 <= cfg["shared"] < cfg["layers"]:
        raise ValueError(f"--shared must be in [1, --layers - 1], got {cfg['shared']}")
    return cfg


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


def run(args: argparse.Namespace, opts: dict) -> None:
    """``strainer-fast occupancy {pretrain,fit,demo}``."""
    cfg = _config(args)
    if args.occupancy_command == "pretrain":
        volumes, names = load_shapes(args.meshes or chairs_dir(), cfg["res"], opts["progress"])
        pretrain_occupancy(volumes, names, cfg, opts, out=args.out)
        print(f"wrote {args.out} (occupancy STRAINER-{len(names)}, "
              f"{cfg['pretrain_steps']} steps)", file=sys.stderr)
        return
    t0, c0 = time.perf_counter(), time.process_time()
    target = getattr(args, "target", "statue")
    inits = parse_inits(getattr(args, "init", "siren,strainer"))
    keep = _mesh_steps(args.mesh_steps, cfg["steps"])
    for step in keep:  # snapshots are taken at log points only
        if step not in (0, cfg["steps"]) and step % cfg["eval_every"]:
            raise ValueError(f"--mesh-steps {step} is not a multiple of --eval-every "
                             f"{cfg['eval_every']}")
    volume = load_target(target, cfg["res"])
    if not volume.any():
        raise ValueError(f"{target}: no occupied voxels at --res {cfg['res']}")
    weights, source = None, None
    if "strainer" in inits:
        weights, source = chairs_encoder(getattr(args, "encoder", None), cfg, opts)
    results = {init: fit_occupancy(volume, init, cfg, opts, keep=keep,
                                   init_weights=weights if init == "strainer" else None)
               for init in inits}
    total = time.perf_counter() - t0
    write_occupancy_report(Path(args.out), results, volume, dict(
        cfg, target=target, inits=inits, encoder=source, seed=opts["seed"]),
        device=str(resolve_device(args.device)), total_s=total,
        cpu_s=time.process_time() - c0)
    print(f"occupancy {args.occupancy_command} finished in {total:.1f} s; wrote {args.out}",
          file=sys.stderr)


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
    metrics = {"title": f"occupancy fit of {config['target']}", "config": config,
               "device": device,
               "versions": {"strainer_fast": __version__, "torch": torch.__version__,
                            "python": platform.python_version(), "numpy": np.__version__},
               "target_occupied_fraction": float(target.mean()), "methods": methods,
               "summary": summary, "meshes": ["meshes/target.ply", *meshes],
               "total_s": total_s, "cpu_s": cpu_s, "threads": torch.get_num_threads()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    plot_curves(methods, out / "iou.png", metrics["title"], key="iou",
                ylabel="IoU at 0.5 (full grid)")
    save_preview(previews, out / "preview.png", metrics["title"])
    lines = [f"# {metrics['title']}", "",
             f"Device: {device}; strainer_fast {__version__}, torch {torch.__version__}.", "",
             "Config: " + ", ".join(f"{k}={v}" for k, v in config.items()), "",
             f"Target: {config['res']}^3 grid, occupied fraction {target.mean():.4f}.", "",
             f"| method | IoU @ step {COMPARE_STEP} | final IoU (step) | fit wall time (s) |",
             "| --- | ---: | ---: | ---: |"]
    for m, r in results.items():
        early = at.get(m)
        lines.append(f"| {m} | {'-' if early is None else f'{early:.4f}'} | {r.iou[-1]:.4f} "
                     f"({r.step[-1]}) | {r.wall_s[-1]:.1f} |")
    key = f"strainer_minus_siren_at_{COMPARE_STEP}"
    if key in summary:
        lines += ["", f"STRAINER minus SIREN IoU at step {COMPARE_STEP}: {summary[key]:+.4f}."]
    lines += ["", f"Total wall time (volumes, any pretraining, fits, IoU evaluations, "
                  f"meshes): {total_s:.1f} s; CPU time {cpu_s:.1f} s over "
                  f"{torch.get_num_threads()} threads (wall time grows when other jobs share "
                  f"the cores).", "",
              "Files: `iou.png` (IoU curves), `preview.png` (shaded renders of the target and "
              "of each fit at the mesh steps), `meshes/*.ply` (marching cubes at level 0.5), "
              "`metrics.json`.", ""]
    (out / "report.md").write_text("\n".join(lines))
    return metrics
