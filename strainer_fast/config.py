"""Typed configurations: one dataclass per job, built from shared parts (network,
pretraining, fitting, runtime). The command line is generated from them (``cli``), every
job writes its resolved configuration to ``config.json``, and ``strainer-fast run
config.json`` runs it again.

A field left ``None`` takes, in this order: the encoder checkpoint's value (architecture),
the job's preset for the device (``PRESETS``), or the job's fixed default. Field metadata:
``help``, ``flag`` (name on the command line), ``choices``, ``min`` / ``above`` (bounds
checked by ``validate``), ``positional``/``nargs``, ``type`` (the flag's parser, when the
field's type does not give it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._version import __version__
from .levers import parse_freeze
from .models import resolve_device
from .recipes import RECIPES, VOXEL_SAMPLING
from .stability import STABILIZE
from .train.callbacks import PRECISION_SCHEDULES
from .train.objectives import SAMPLING
from .value_range import DEFAULT_VALUE_RANGE, VALUE_RANGES

__all__ = ["opt", "Runtime", "NetConfig", "ModelConfig", "PretrainConfig", "FitConfig",
           "PretrainJob", "FitJob", "CompareJob", "GeneralizableJob", "DemoJob",
           "ImageTaskJob", "SuperresJob", "DenoiseJob", "OccupancyPretrainJob",
           "OccupancyFitting", "OccupancyFitJob", "OccupancyDemoJob", "PRESETS",
           "apply_defaults", "preset", "validate", "to_dict", "from_dict", "write_config",
           "read_config", "flat_fields", "get", "put", "CONFIG_FORMAT"]

CONFIG_FORMAT = "strainer_fast/config/1"


def opt(default: Any = None, help: str = "", **meta: Any) -> Any:
    """A config field with command-line metadata (see the module doc)."""
    kw = {"default_factory": default} if callable(default) else {"default": default}
    return field(metadata=dict(meta, help=help), **kw)


# -- shared parts -----------------------------------------------------------------------
@dataclass
class Runtime:
    """Where and how to run (every command)."""

    device: str = opt("auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda"))
    backend: str = opt("auto", "fused-op backend", choices=("auto", "cpu", "cuda", "reference"))
    precision: str = opt("exact", "GEMM precision of the fused ops",
                         choices=("exact", "tf32", "bf16"))
    seed: int = opt(0, "random seed (inits, noise, point batches)")
    progress: bool = opt(True, "hide the progress bars", flag="no-progress")


@dataclass
class NetConfig:
    """Network of a fit: width, depth, w0 (None: the encoder's, else the default)."""

    width: int | None = opt(None, "hidden width", min=1)
    layers: int | None = opt(None, "layers in all (sine layers + the linear last one)", min=1)
    w0: float | None = opt(None, "sine frequency factor w0")


@dataclass
class ModelConfig(NetConfig):
    """A STRAINER network: ``NetConfig`` plus the number of shared encoder layers."""

    shared: int | None = opt(None, "shared encoder layers", min=1)


KEEP_HELP = ("iterate each fit returns: best = per image the lowest training loss seen (the "
             "data term for inverse problems), last = the last step's")
POINTS_HELP = ("random pixels per step, so memory is bounded by N instead of the image size "
               "(0: the full grid; for large images e.g. 65536)")


@dataclass
class PretrainConfig:
    """Pretraining schedule (Adam, full grid)."""

    steps: int | None = opt(None, "pretraining steps", min=1)
    lr: float = opt(1e-4, "pretraining learning rate (Adam)")


@dataclass
class FitConfig:
    """Fitting schedule (Adam; full grid unless ``points``; compare / demo pretrain with
    the same ``points``)."""

    steps: int | None = opt(None, "fitting steps", min=1)
    lr: float = opt(1e-4, "fitting learning rate (Adam)")
    points: int = opt(0, POINTS_HELP, min=0, metavar="N")
    log_every: int | None = opt(None, "metrics every k steps", min=1)
    stabilize: str = opt("off", "test-time fitting stabilisation (off = the paper's plain "
                         "Adam; see docs/guide/reliability.md)", choices=STABILIZE)
    keep: str = opt("best", KEEP_HELP, choices=("best", "last"))
    recipe: str = opt("paper", "paper: --lr and --stabilize as given (plain Adam, lr 1e-4 by "
                      "default); fast: lr, weight scale and stabiliser chosen on the "
                      "validation split (siren and strainer inits; see docs/guide/fitting.md)",
                      choices=RECIPES)


VALUE_RANGE_HELP = ("range the pixels are mapped to for training: signed = [-1, 1] (SIREN's), "
                    "unit = [0, 1] as loaded (the STRAINER authors'); PSNR is on [0, 1] pixels "
                    "either way")


def _value_range(from_encoder: bool = False) -> Any:
    """The ``--value-range`` field (``value_range``). The default, signed, is the library's
    behaviour before the setting existed, not yet chosen on validation images. With
    ``from_encoder``, unset (None) takes the given encoder's range."""
    if from_encoder:
        return opt(None, f"{VALUE_RANGE_HELP} (default: the encoder's, else "
                   f"{DEFAULT_VALUE_RANGE})", choices=VALUE_RANGES)
    return opt(DEFAULT_VALUE_RANGE, VALUE_RANGE_HELP, choices=VALUE_RANGES)


def _strainer_lr(default: tuple[float, float]) -> Any:
    """The ``--strainer-lr ENC,DEC`` field (``fit_many(transfer_lr=...)``; parsed by
    ``cli.parse_pair``)."""
    return opt(default, "for --init strainer: learning rates of the pretrained encoder and of "
               "the fresh decoder as multiples of --lr (1,1 = the paper's protocol)",
               metavar="ENC,DEC")


def _pretrain_part(**kw: Any) -> Any:
    """The pretraining schedule inside a fitting job: flags --pretrain-steps, --pretrain-lr."""
    return field(default_factory=lambda: PretrainConfig(**kw), metadata={"prefix": "pretrain-"})


def _part(cls: type, **kw: Any) -> Any:
    return field(default_factory=lambda: cls(**kw), metadata={})


# -- image jobs -------------------------------------------------------------------------
@dataclass
class PretrainJob:
    """``strainer-fast pretrain``: a STRAINER encoder on a folder of images."""

    data: str = opt(None, "image folder or file", required=True)
    out: str = opt(None, "checkpoint file to write (.pt)", required=True)
    size: int = opt(178, "image side after crop/resize (px)", min=1)
    gray: bool = opt(False, "convert colour images to grayscale")
    value_range: str = _value_range()
    model: ModelConfig = _part(ModelConfig, width=256, layers=6, shared=5, w0=30.0)
    weight_scale: float = opt(1.0, "weight scaling of the initial draw: every weight but the "
                              "decoders' last layer times ALPHA (Yeom et al. 2025; 1 = SIREN "
                              "init)", metavar="ALPHA", above=0)
    train: PretrainConfig = _part(PretrainConfig, steps=5000)
    points: int = opt(0, POINTS_HELP, min=0, metavar="N")
    nproc: int = opt(1, "processes to pretrain with (signals split between them; launched "
                     "through torch.distributed.run, also works under torchrun)", min=1)
    group_size: int = opt(0, "stream the images in groups of G (more than fit in memory): "
                          "round-robin visits, decoders kept per image in OUT.decoders/",
                          min=0, metavar="G")
    visit_steps: int = opt(100, "steps per group visit (with --group-size)", min=1)
    checkpoint_every: int = opt(0, "save the training state every K steps to OUT.state/ "
                                "(0: never)", min=0, metavar="K")
    resume: bool = opt(False, "continue from the newest training state in OUT.state/")
    runtime: Runtime = _part(Runtime)


@dataclass
class FitJob:
    """``strainer-fast fit``: one image from an initialisation."""

    image: str = opt(None, "image file", positional=True)
    init: str = opt(None, "initialisation", required=True,
                    choices=("siren", "siren-ft", "meta", "strainer"))
    out: str = opt(None, "output folder", required=True)
    encoder: str | None = opt(None, "STRAINER checkpoint (for --init strainer); its "
                              "architecture is used unless --width/--layers/--w0 are set")
    train_images: str | None = opt(None, "training images (for --init siren-ft / meta)",
                                   flag="train")
    meta_method: str = opt("fomaml", "meta-learning method (for --init meta)",
                           choices=("maml", "fomaml", "reptile"))
    init_steps: int | None = opt(None, "steps to make a siren-ft / meta init (default: "
                                 "--steps / 5000)", min=1)
    size: int | None = opt(None, "image side after crop/resize (px; default: the encoder's "
                           "pretraining size, else 178)", min=1)
    gray: bool = opt(False, "convert colour images to grayscale")
    value_range: str | None = _value_range(from_encoder=True)
    model: NetConfig = _part(NetConfig)
    weight_scale: float = opt(1.0, "weight scaling of the random layers (--init siren; a "
                              "STRAINER's fresh decoder layers but the last): every weight but "
                              "the last layer's times ALPHA (Yeom et al. 2025; 1 = SIREN init)",
                              metavar="ALPHA", above=0)
    fit: FitConfig = _part(FitConfig, steps=2000, log_every=100)
    strainer_lr: tuple[float, float] = _strainer_lr((1.0, 1.0))
    freeze: int | str = opt(0, "for --init strainer: keep the first N pretrained encoder "
                            "layers fixed, or auto: up to the layer of highest weight stable "
                            "rank (validation: no gain)", type=parse_freeze, metavar="N|auto")
    sampling: str = opt("uniform", "with --points: uniform, or error: draw pixels in "
                        "proportion to their current squared error (validation: no gain)",
                        choices=SAMPLING)
    precision_schedule: str | None = opt(None, "bf16-then-exact: bf16 until the training "
                                         "PSNR stalls, then exact (needs --precision exact; "
                                         "validation: no gain)", choices=PRECISION_SCHEDULES)
    checkpoint_every: int = opt(0, "save the training state every K steps to "
                                "OUT/train_state/ (0: never)", min=0, metavar="K")
    resume: bool = opt(False, "continue from the newest training state in OUT/train_state/")
    runtime: Runtime = _part(Runtime)


@dataclass
class CompareJob:
    """``strainer-fast compare``: initialisations on test images (paper Fig. 2)."""

    train_images: str = opt(None, "training image folder", required=True, flag="train")
    test_images: str = opt(None, "test image folder", required=True, flag="test")
    out: str = opt(None, "output folder", required=True)
    methods: str = opt("siren,siren-ft,meta,strainer-1,strainer-10",
                       "comma list of siren, siren-ft, meta, meta-maml, meta-fomaml, "
                       "meta-reptile, strainer-N, transinr, transinr-tto, ipc, ipc-tto")
    size: int = opt(178, "image side after crop/resize (px)", min=1)
    gray: bool = opt(False, "convert colour images to grayscale")
    value_range: str = _value_range()
    model: ModelConfig = _part(ModelConfig, width=256, layers=6, shared=5, w0=30.0)
    pretrain: PretrainConfig = _pretrain_part(steps=5000)
    fit: FitConfig = _part(FitConfig, steps=2000, log_every=100)
    gen_checkpoints: str | None = opt(None, "trained models for the transinr / ipc methods, "
                                      "e.g. transinr=T.pt,ipc=I.pt (default: train them on the "
                                      "embedded MRI slice set, cached)", metavar="KIND=PT,...")
    gen_steps: int = opt(1000, "training steps of a transinr / ipc model trained here", min=1)
    runtime: Runtime = _part(Runtime)


@dataclass
class GeneralizableJob:
    """``strainer-fast generalizable train``: a TransINR or IPC hypernetwork on the embedded
    MRI slice set (69 slices, see strainer_fast/datasets/mri_slices/README.md)."""

    kind: str = opt(None, "model", required=True, choices=("transinr", "ipc"))
    out: str = opt(None, "checkpoint file to write (.pt)", required=True)
    size: int = opt(32, "image side (px)", min=1)
    value_range: str = _value_range()
    model: NetConfig = _part(NetConfig, width=64, layers=6, w0=30.0)
    dim: int = opt(128, "transformer width", min=1)
    depth: int = opt(4, "transformer blocks", min=1)
    heads: int = opt(4, "attention heads", min=1)
    patch: int = opt(8, "patch side (px)", min=1)
    groups: int = opt(8, "TransINR: weight tokens per hyponet layer", min=1)
    rank: int = opt(16, "IPC: rank of the modulated weight (= weight tokens)", min=1)
    train: PretrainConfig = _part(PretrainConfig, steps=1000)
    batch: int = opt(16, "images per step", min=1)
    points: int = opt(0, "random pixels per step (0: all)", min=0)
    checkpoint_every: int = opt(0, "save the training state every K steps to OUT.state/ "
                                "(0: never)", min=0, metavar="K")
    resume: bool = opt(False, "continue from the newest training state in OUT.state/")
    runtime: Runtime = _part(Runtime)


@dataclass
class DemoJob:
    """``strainer-fast demo``: STRAINER-10 vs SIREN on the embedded MRI slices."""

    out: str = opt("strainer_demo", "output folder")
    size: int | None = opt(None, "image side (px; default: the device's preset)", min=1)
    value_range: str = _value_range()
    model: ModelConfig = _part(ModelConfig)
    pretrain: PretrainConfig = _pretrain_part()
    fit: FitConfig = _part(FitConfig)
    runtime: Runtime = _part(Runtime)


# -- task jobs --------------------------------------------------------------------------
@dataclass
class ImageTaskJob:
    """What ``superres`` and ``denoise`` share: inits, encoder, sizes, training settings."""

    out: str = opt(None, "output folder", required=True)
    inits: str = opt("siren,strainer", "comma list of siren, strainer (default: both, "
                     "compared)", flag="init")
    encoder: str | None = opt(None, "STRAINER checkpoint (default: pretrain on the embedded "
                              "MRI train split, cached); its architecture is used unless set")
    size: int | None = opt(None, "(full-resolution) image side in px (CPU default 64)", min=1)
    gray: bool = opt(False, "convert colour images to grayscale")
    value_range: str | None = _value_range(from_encoder=True)
    model: ModelConfig = _part(ModelConfig)
    pretrain: PretrainConfig = _pretrain_part()
    fit: FitConfig = _part(FitConfig)
    strainer_lr: tuple[float, float] = _strainer_lr((0.03, 10.0))
    runtime: Runtime = _part(Runtime)


@dataclass
class SuperresJob(ImageTaskJob):
    """``strainer-fast superres``: fit through an area-downsampling operator."""

    images: list[str] = opt(list, "image files / folders (default: MRI test split)",
                            positional=True, nargs="*", flag="image")
    scale: int = opt(4, "downsampling factor", min=1)
    input_lowres: bool = opt(False, "the images are already low resolution: upsample them "
                             "(no metrics)")


@dataclass
class DenoiseJob(ImageTaskJob):
    """``strainer-fast denoise``: fit the noisy image, PSNR against the clean one."""

    images: list[str] = opt(list, "clean image files / folders (default: MRI test split); "
                            "the noise is added, seeded by --seed", positional=True, nargs="*",
                            flag="image")
    noise: str = opt("gaussian:0.1", "gaussian:SIGMA or poisson:TAU")


VOXEL_SAMPLING_HELP = ("voxel centres of a step: surface = half within 2 voxels of the "
                       "surface, half uniform; uniform = all uniform")


@dataclass
class VoxelConfig:
    """Occupancy grid and point batches."""

    res: int | None = opt(None, "grid resolution (CPU default 128, GPU 256)", min=2)
    points: int | None = opt(None, "voxel centres per step", min=1)


@dataclass
class OccupancyPretrainJob:
    """``strainer-fast occupancy pretrain``: a 3 -> 1 STRAINER encoder on shapes."""

    meshes: str | None = opt(None, "folder (or file) of meshes / volumes (default: the 10 "
                             "embedded chairs)")
    out: str = opt(None, "checkpoint file to write (.pt)", required=True)
    voxels: VoxelConfig = _part(VoxelConfig)
    model: ModelConfig = _part(ModelConfig)
    train: PretrainConfig = _part(PretrainConfig)
    sampling: str = opt("surface", VOXEL_SAMPLING_HELP, choices=VOXEL_SAMPLING)
    runtime: Runtime = _part(Runtime)


@dataclass
class OccupancyFitting:
    """What ``occupancy fit`` and ``occupancy demo`` share: grid, network, fitting schedule."""

    voxels: VoxelConfig = _part(VoxelConfig)
    model: ModelConfig = _part(ModelConfig)
    pretrain: PretrainConfig = _pretrain_part()
    steps: int | None = opt(None, "fitting steps (CPU default 300)", min=1)
    lr: float = opt(1e-4, "fitting learning rate (Adam)")
    eval_every: int | None = opt(None, "IoU every k steps (CPU default 50)", min=1)
    mesh_steps: str | None = opt(None, "comma list of steps to export meshes and previews at "
                                 "(default: 150 and the last)")
    keep: str = opt("best", KEEP_HELP + " (scored by the full-grid loss at the IoU "
                    "evaluations)", choices=("best", "last"))
    stabilize: str = opt("off", "test-time fitting stabilisation of the fits (off = plain "
                         "Adam; see docs/guide/reliability.md)", choices=STABILIZE)
    sampling: str = opt("surface", VOXEL_SAMPLING_HELP + " (the fits; a chairs encoder "
                        "pretrained here uses surface)", choices=VOXEL_SAMPLING)
    recipe: str = opt("paper", "paper: --lr, --stabilize and --sampling as given; fast: the "
                      "values chosen on a validation chair (benchmarks/tune_occupancy.py; not "
                      "yet validated: an error until its JSON is committed)", choices=RECIPES)
    runtime: Runtime = _part(Runtime)


@dataclass
class OccupancyFitJob(OccupancyFitting):
    """``strainer-fast occupancy fit``: fit a target volume and record IoU."""

    target: str = opt("statue", "mesh (.obj/.ply/.off/.stl), volume (.npy, .mat with "
                      "'hypercube') or 'statue' (embedded)", positional=True, nargs="?")
    out: str = opt(None, "output folder", required=True)
    inits: str = opt("siren,strainer", "comma list of siren, strainer (default: both)",
                     flag="init")
    encoder: str | None = opt(None, "occupancy STRAINER checkpoint (default: pretrain on the "
                              "embedded chairs, cached); its architecture is used unless set")


@dataclass
class OccupancyDemoJob(OccupancyFitting):
    """``strainer-fast occupancy demo``: STRAINER (chairs) vs SIREN on the embedded statue."""

    out: str = opt("occupancy_demo", "output folder")


# -- presets: device-dependent defaults, by flag name -----------------------------------
_IMAGE = {"cpu": dict(size=64, width=128, layers=6, shared=5, w0=30.0, pretrain_steps=1500,
                      steps=300),
          "cuda": dict(size=178, width=256, layers=6, shared=5, w0=30.0, pretrain_steps=5000,
                       steps=2000)}
_OCC = {"cpu": dict(res=128, width=64, layers=5, shared=4, w0=30.0, points=16384,
                    pretrain_steps=1000, steps=300, eval_every=50),
        "cuda": dict(res=256, width=256, layers=6, shared=5, w0=30.0, points=65536,
                     pretrain_steps=2000, steps=1000, eval_every=50)}
PRESETS: dict[str, dict[str, dict]] = {
    # CPU: measured with `strainer-fast demo` on 2 cores (README); GPU: the paper's sizes.
    "demo": {d: dict(v, log_every=25 if d == "cpu" else 100) for d, v in _IMAGE.items()},
    "superres": {d: dict(v, log_every=10 if d == "cpu" else 50, **({} if d == "cpu" else
                                                                  dict(size=176)))
                 for d, v in _IMAGE.items()},
    "denoise": {d: dict(v, log_every=5 if d == "cpu" else 20) for d, v in _IMAGE.items()},
    "occupancy": _OCC,
    # occupancy pretrain: its own --steps are the pretraining steps
    "occupancy-pretrain": {d: dict(v, steps=v["pretrain_steps"]) for d, v in _OCC.items()},
}


# -- generic helpers ----------------------------------------------------------------------
def flat_fields(cls: type, prefix: str = "", path: tuple[str, ...] = ()
                ) -> list[tuple[str, tuple[str, ...], dataclasses.Field, Any]]:
    """(flag name, attribute path, field, type) of every leaf field of a job class."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += flat_fields(tp, prefix + f.metadata.get("prefix", ""), path + (f.name,))
        else:
            name = prefix + f.metadata.get("flag", f.name.replace("_", "-"))
            out.append((name, path + (f.name,), f, tp))
    return out


def get(cfg: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        cfg = getattr(cfg, p)
    return cfg


def put(cfg: Any, path: tuple[str, ...], value: Any) -> None:
    setattr(get(cfg, path[:-1]), path[-1], value)


def apply_defaults(cfg: Any, defaults: dict[str, Any]) -> Any:
    """Fills every field still None from ``defaults`` (keys: flag names with ``_``)."""
    for name, path, _, _ in flat_fields(type(cfg)):
        key = name.replace("-", "_")
        if get(cfg, path) is None and key in defaults:
            put(cfg, path, defaults[key])
    return cfg


def preset(job: str, device: str) -> dict:
    """The job's preset for ``device`` (auto -> the available one)."""
    return PRESETS[job]["cuda" if resolve_device(device).type == "cuda" else "cpu"]


def validate(cfg: Any) -> Any:
    """Checks required fields, every ``min`` bound and every ``above`` bound (a finite
    number greater than it); ValueError names the flag."""
    for name, path, f, _ in flat_fields(type(cfg)):
        value, low, above = get(cfg, path), f.metadata.get("min"), f.metadata.get("above")
        if f.metadata.get("required") and value is None:
            raise ValueError(f"--{name} is required")
        if low is not None and value is not None and value < low:
            raise ValueError(f"--{name} must be >= {low}, got {value}")
        if above is not None and value is not None and not (math.isfinite(value)
                                                             and value > above):
            raise ValueError(f"--{name} must be a finite number > {above}, got {value}")
    return cfg


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict) -> Any:
    """Rebuilds a job config from ``to_dict`` output (unknown keys are an error)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {unknown}")
    kw = {}
    for k, v in data.items():
        tp = hints[k]
        if dataclasses.is_dataclass(tp):
            kw[k] = from_dict(tp, v)
        elif typing.get_origin(tp) is tuple:
            kw[k] = tuple(v)
        else:
            kw[k] = v
    return cls(**kw)


def write_config(path: str | Path, command: str, cfg: Any) -> Path:
    """Writes ``{"format", "command", "config", "versions"}`` to ``path`` (JSON)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": CONFIG_FORMAT, "command": command,
                                "config": to_dict(cfg),
                                "versions": {"strainer_fast": __version__,
                                             "torch": torch.__version__}}, indent=1))
    return path


def read_config(path: str | Path) -> tuple[str, dict]:
    """(command, config dict) of a ``config.json`` written by ``write_config``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable config file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
        raise ValueError(f"{path}: not a strainer_fast config.json")
    return data["command"], data["config"]
