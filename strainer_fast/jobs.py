"""The image jobs behind the commands (pretrain, fit, compare, demo) and the library
functions they share with the tasks: ``compare``, the cached embedded-data encoders,
the architecture resolution against an encoder checkpoint.

Each ``*_job(cfg)`` takes its typed config (``config``), resolves every default (presets,
the encoder's architecture), writes the resolved config to the output's ``config.json``
and runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from . import distributed
from ._version import __version__
from .cache import cache_dir
from .checkpoint import load_encoder
from .config import (CompareJob, DemoJob, FitJob, ModelConfig, NetConfig, PretrainJob, Runtime,
                     apply_defaults, preset, validate, write_config)
from .data import default_split, list_images, load_image_shard, load_images, mri_dir
from .fit import DEFAULT_NET, FitResult, fit_many, siren_ft_init
from .generalizable import GEN_METHODS, fit_generalizable, resolve_generalizable
from .generalizable.job import parse_checkpoints
from .memory import check_fits
from .meta import meta_init
from .models import Encoder, resolve_device
from .pretrain import pretrain
from .report import plot_overview, write_report
from .streaming import pretrain_streaming
from .train import Checkpointer
from .value_range import DEFAULT_VALUE_RANGE, for_encoder, range_fingerprint

__all__ = ["compare", "parse_methods", "check_methods", "check_image_job", "runtime_kwargs",
           "use_encoder", "cached_encoder", "mri_encoder", "pretrain_job", "fit_job",
           "compare_job", "demo_job", "METHODS"]

# FitJob's levers (off by default): only values other than the default enter the resume
# fingerprint, so the training states of earlier runs still load
FIT_LEVERS = ("strainer_lr", "freeze", "sampling", "precision_schedule")
METHODS = ("siren", "siren-ft", "meta", "meta-maml", "meta-fomaml", "meta-reptile",
           *GEN_METHODS)


def runtime_kwargs(rt: Runtime) -> dict:
    """The keyword options every library function takes (seed, device, ...)."""
    return dict(seed=rt.seed, device=rt.device, backend=rt.backend, precision=rt.precision,
                progress=rt.progress)


def use_encoder(model: NetConfig, encoder: Encoder) -> Encoder:
    """Fills ``model``'s unset architecture fields from ``encoder``; a set field that
    differs raises ValueError (the encoder defines the architecture)."""
    arch = encoder.resolve(**{k: getattr(model, k) for k in ("width", "layers", "shared", "w0")
                              if hasattr(model, k)})
    for k, v in arch.items():
        if hasattr(model, k):
            setattr(model, k, v)
    return encoder


def cached_encoder(encoder: str | None, name: str, key: dict,
                   build: Callable[[Path], object]) -> tuple[Encoder, str]:
    """The encoder of checkpoint ``encoder``, or (None) one pretrained by ``build(path)``
    and cached in ``cache_dir("encoders")`` under ``name`` plus a hash of ``key`` (every
    setting that changes it), so later runs with the same settings reuse it. Returns
    (encoder, where it came from)."""
    if encoder:
        return load_encoder(encoder), str(encoder)
    key = dict(key, version=__version__)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir("encoders") / f"{name}_{digest}.pt"
    if not path.is_file():
        print(f"pretraining the {name} encoder -> {path}", file=sys.stderr, flush=True)
        build(path)
    return load_encoder(path), str(path)


def mri_encoder(model: ModelConfig, size: int, steps: int, lr: float, rt: Runtime,
                value_range: str = DEFAULT_VALUE_RANGE) -> tuple[Encoder, str]:
    """A STRAINER-10 pretrained on the embedded MRI train split (grayscale, ``size`` px,
    targets in ``value_range``), cached (see ``cached_encoder``)."""
    net = dict(width=model.width, layers=model.layers, shared=model.shared, w0=model.w0)

    def build(path: Path) -> None:
        train, names = load_images(default_split()[0], size, gray=True)
        pretrain(train, steps=steps, lr=lr, out=path, names=names, value_range=value_range,
                 **net, **runtime_kwargs(rt))

    key = dict(net, size=size, steps=steps, lr=lr, seed=rt.seed, precision=rt.precision,
               **range_fingerprint(value_range))
    return cached_encoder(None, "mri_strainer10", key, build)


def parse_methods(text: str) -> list[str]:
    """"siren,strainer-10" -> method names (``METHODS`` or strainer-N)."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    for m in methods:
        ok = m in METHODS or (m.startswith("strainer-") and m.split("-", 1)[1].isdigit()
                              and int(m.split("-", 1)[1]) >= 1)
        if not ok:
            raise ValueError(f"unknown method {m!r}; use {', '.join(METHODS)} or strainer-N")
    if not methods:
        raise ValueError("--methods is empty")
    return methods


def check_methods(methods: Sequence[str], n_train: int) -> None:
    """Every strainer-N needs N training images (checked before any training)."""
    for m in methods:
        if m.startswith("strainer-") and int(m.split("-", 1)[1]) > n_train:
            raise ValueError(f"{m} needs {m.split('-', 1)[1]} training images, got {n_train}")


def compare(train: torch.Tensor, test: torch.Tensor, methods: Sequence[str], *,
            train_names: Sequence[str] | None = None, width: int = 256, layers: int = 6,
            shared: int = 5, w0: float = 30.0, steps: int = 2000, lr: float = 1e-4,
            pretrain_steps: int = 5000, pretrain_lr: float | None = None,
            log_every: int = 100, stabilize: str = "off", keep: str = "best",
            recipe: str = "paper", seed: int = 0,
            device: str = "auto", backend: str = "auto", precision: str = "exact",
            progress: bool = True, verbose: bool = True, points: int | None = None,
            generalizable: dict | None = None, generalizable_steps: int = 1000,
            value_range: str = DEFAULT_VALUE_RANGE) -> dict[str, FitResult]:
    """Fits all ``test`` images [K, H, W, C] from each method's init (paper Fig. 2);
    returns method -> result. Methods: siren, siren-ft (fitted to ``train[0]``), meta /
    meta-maml / meta-fomaml / meta-reptile (``pretrain_steps`` outer steps on ``train``),
    strainer-N (pretrained on ``train[:N]`` for ``pretrain_steps``), transinr / ipc (the
    feed-forward prediction) and transinr-tto / ipc-tto (``steps`` of test-time optimisation
    from it): ``generalizable`` maps "transinr" / "ipc" to a trained model or checkpoint;
    otherwise one is trained for ``generalizable_steps`` on the embedded MRI slice set
    (not on ``train``) and cached (``generalizable.generalizable_model``). ``points``:
    pixels per step of the fits and the STRAINER pretraining (None: the full grid).
    ``keep``: the iterate each fit returns, ``recipe``: its settings (``fit.fit_many``;
    "fast" takes siren and strainer-N methods only). ``value_range``: the targets' range of
    every pretraining, meta-learning and fit (``value_range``); a given transinr / ipc model
    must have been trained under it."""
    opts = dict(seed=seed, device=device, backend=backend, precision=precision,
                progress=progress, value_range=value_range)
    net = dict(width=width, layers=layers, w0=w0)
    fit_kw = dict(net, steps=steps, lr=lr, log_every=log_every, points=points, keep=keep,
                  recipe=recipe, **opts)
    plr = lr if pretrain_lr is None else pretrain_lr
    results: dict[str, FitResult] = {}
    methods = parse_methods(",".join(methods))
    check_methods(methods, train.shape[0])
    unvalidated = [m for m in methods if recipe != "paper" and m != "siren"
                   and not m.startswith("strainer-")]
    if unvalidated:
        raise ValueError(f"recipe {recipe!r} is validated for the methods siren and strainer-N "
                         f"only, not {', '.join(unvalidated)}; use --recipe paper for them")
    gen_models = dict(generalizable or {})
    for method in methods:
        t0 = time.perf_counter()
        if method in GEN_METHODS:
            kind = method.split("-")[0]
            gen_models[kind] = model = resolve_generalizable(
                kind, gen_models.get(kind), test, steps=generalizable_steps, **net, **opts)
            t_init = time.perf_counter() - t0
            results[method] = r = fit_generalizable(
                test, model, tto=method.endswith("-tto"), steps=steps, lr=lr,
                log_every=log_every, stabilize=stabilize, progress=progress,
                desc=f"fit {method}", points=points, seed=seed, keep=keep)
            if verbose:
                print(f"{method}: model {t_init:.1f} s, "
                      f"fit {r.wall_s[-1]:.1f} s, final mean PSNR {r.final_psnr():.2f} dB",
                      file=sys.stderr, flush=True)
            continue
        init, weights = method, None
        if method == "siren-ft":
            weights = siren_ft_init(train[0], **dict(fit_kw, log_every=0))
        elif method.startswith("meta"):
            init = "meta"
            weights = meta_init(train, method[5:] or "fomaml", steps=pretrain_steps, lr=plr,
                                points=points, **net, **opts)
        elif method.startswith("strainer-"):
            n = int(method.split("-", 1)[1])
            names = list(train_names[:n]) if train_names is not None else None
            init = pretrain(train[:n], shared=shared, steps=pretrain_steps, lr=plr, names=names,
                            points=points, **net, **opts).encoder()
        t_init = time.perf_counter() - t0
        results[method] = r = fit_many(test, init, init_weights=weights, desc=f"fit {method}",
                                       stabilize=stabilize, **fit_kw)
        if verbose:
            print(f"{method}: init {t_init:.1f} s, fit {r.wall_s[-1]:.1f} s, final mean PSNR "
                  f"{r.final_psnr():.2f} dB", file=sys.stderr, flush=True)
    return results


# -- jobs -------------------------------------------------------------------------------
def pretrain_job(cfg: PretrainJob) -> None:
    """``strainer-fast pretrain``: writes the checkpoint and ``OUT`` minus .pt + .config.json."""
    validate(cfg)
    rt, m = cfg.runtime, cfg.model
    if cfg.group_size and cfg.nproc > 1:
        raise ValueError("--group-size cannot be combined with --nproc")
    if not cfg.group_size:
        check_image_job(cfg.runtime.device, "pretraining", len(list_images(cfg.data)),
                        cfg.size, cfg.gray, cfg.points or None, m.width,
                        m.layers)
    if cfg.nproc > 1 and not distributed.is_launched():
        if len(list_images(cfg.data)) < cfg.nproc:
            raise ValueError(f"{len(list_images(cfg.data))} signals cannot be split over "
                             f"{cfg.nproc} processes (every process needs at least one)")
        path = write_config(Path(cfg.out).with_suffix(".config.json"), "pretrain", cfg)
        if distributed.launch(cfg.nproc, ["run", str(path)]):
            raise RuntimeError(f"pretraining failed in one of the {cfg.nproc} processes "
                               "(its error is above)")
        return
    fingerprint = dict(size=cfg.size, width=m.width, layers=m.layers, shared=m.shared, w0=m.w0,
                       lr=cfg.train.lr, seed=rt.seed, gray=cfg.gray, precision=rt.precision,
                       points=cfg.points or None, weight_scale=cfg.weight_scale,
                       **range_fingerprint(cfg.value_range))
    net = dict(width=m.width, layers=m.layers, shared=m.shared, w0=m.w0,
               weight_scale=cfg.weight_scale, points=cfg.points or None,
               value_range=cfg.value_range)
    if cfg.group_size:
        paths = list_images(cfg.data)
        write_config(Path(cfg.out).with_suffix(".config.json"), "pretrain", cfg)
        pretrain_streaming(paths, f"{cfg.out}.decoders", group_size=cfg.group_size,
                           visit_steps=cfg.visit_steps, size=cfg.size, gray=cfg.gray,
                           steps=cfg.train.steps, lr=cfg.train.lr, out=cfg.out,
                           checkpoint_every=cfg.checkpoint_every, resume=cfg.resume,
                           state_dir=f"{cfg.out}.state", fingerprint=fingerprint, **net,
                           **runtime_kwargs(rt))
        print(f"wrote {cfg.out} (STRAINER-{len(paths)} in groups of {cfg.group_size}, "
              f"{cfg.train.steps} steps; decoders in {cfg.out}.decoders)", file=sys.stderr)
        return
    distributed.init_from_env(resolve_device(rt.device))
    images, names, shard = load_image_shard(cfg.data, cfg.size, cfg.gray)
    rank = distributed.rank_world()[0]
    if rank == 0:
        write_config(Path(cfg.out).with_suffix(".config.json"), "pretrain", cfg)
    ckpt = Checkpointer(f"{cfg.out}.state", every=cfg.checkpoint_every, resume=cfg.resume,
                        fingerprint=dict(fingerprint, names=names))
    pretrain(images, steps=cfg.train.steps, lr=cfg.train.lr, out=cfg.out, names=names,
             shard=shard, checkpoint=ckpt, **net, **runtime_kwargs(rt))
    if rank == 0:
        print(f"wrote {cfg.out} (STRAINER-{len(names)}, {cfg.train.steps} steps)",
              file=sys.stderr)


def check_image_job(device: str, what: str, images: int, size: int, gray: bool,
                    points: int | None, width: int, layers: int) -> None:
    """``memory.check_fits`` for ``images`` square images of ``size`` px (3 channels
    unless ``gray``), before a job loads them or writes anything."""
    check_fits(resolve_device(device), f"{what} {images} image(s) of {size}x{size} px",
               signals=images, grid=size * size, channels=1 if gray else 3, points=points,
               width=width, layers=layers)


def fit_job(cfg: FitJob) -> None:
    """``strainer-fast fit``: one image from an init; report, metrics and config in OUT."""
    validate(cfg)
    rt, m = cfg.runtime, cfg.model
    encoder = None
    if cfg.init == "strainer":
        if not cfg.encoder:
            raise ValueError("--init strainer needs --encoder ENC.pt")
        expect = {"size": [cfg.size] * 2} if cfg.size is not None else None
        encoder = use_encoder(m, load_encoder(cfg.encoder, expect))
        if cfg.size is None and encoder.meta.get("size"):
            cfg.size = int(encoder.meta["size"][0])
    cfg.value_range = for_encoder(cfg.value_range,
                                  None if encoder is None else encoder.value_range,
                                  str(cfg.encoder)).name
    apply_defaults(cfg, dict(DEFAULT_NET, size=178))
    validate(cfg)
    check_image_job(rt.device, "fitting", 1, cfg.size, cfg.gray, cfg.fit.points or None,
                    m.width, m.layers)
    image, names = load_images(cfg.image, cfg.size, cfg.gray)
    opts = dict(runtime_kwargs(rt), value_range=cfg.value_range)
    net = dict(width=m.width, layers=m.layers, w0=m.w0)
    weights = None
    if cfg.init in ("siren-ft", "meta"):
        if not cfg.train_images:
            raise ValueError(f"--init {cfg.init} needs --train DIR (training images)")
        train, _ = load_images(cfg.train_images, cfg.size, cfg.gray)
        if train.shape[-1] != image.shape[-1]:
            raise ValueError(f"training images have {train.shape[-1]} channels, "
                             f"{cfg.image} has {image.shape[-1]}; use --gray")
        if cfg.init_steps is None:
            cfg.init_steps = cfg.fit.steps if cfg.init == "siren-ft" else 5000
        if cfg.init == "siren-ft":
            weights = siren_ft_init(train[0], steps=cfg.init_steps, lr=cfg.fit.lr,
                                    log_every=0, points=cfg.fit.points or None, **net, **opts)
        else:
            weights = meta_init(train, cfg.meta_method, steps=cfg.init_steps, lr=cfg.fit.lr,
                                points=cfg.fit.points or None, **net, **opts)
    write_config(Path(cfg.out) / "config.json", "fit", cfg)
    defaults = {f.name: f.default for f in dataclasses.fields(FitJob)}
    levers = {k: getattr(cfg, k) for k in FIT_LEVERS if getattr(cfg, k) != defaults[k]}
    ckpt = Checkpointer(Path(cfg.out) / "train_state", every=cfg.checkpoint_every,
                        resume=cfg.resume, fingerprint=dict(
                            init=cfg.init, image=str(cfg.image), encoder=cfg.encoder,
                            train=cfg.train_images, size=cfg.size, lr=cfg.fit.lr,
                            seed=rt.seed, gray=cfg.gray, precision=rt.precision,
                            points=cfg.fit.points or None, weight_scale=cfg.weight_scale,
                            **({} if cfg.fit.recipe == "paper" else {"recipe": cfg.fit.recipe}),
                            **levers, **range_fingerprint(cfg.value_range), **net))
    result = fit_many(image, encoder if encoder is not None else cfg.init, init_weights=weights,
                      steps=cfg.fit.steps, lr=cfg.fit.lr, log_every=cfg.fit.log_every,
                      checkpoint=ckpt, stabilize=cfg.fit.stabilize, keep=cfg.fit.keep,
                      recipe=cfg.fit.recipe,
                      points=cfg.fit.points or None, weight_scale=cfg.weight_scale,
                      transfer_lr=cfg.strainer_lr, freeze=cfg.freeze, sampling=cfg.sampling,
                      precision_schedule=cfg.precision_schedule, **net, **opts)
    write_report(cfg.out, {cfg.init: result}, image, names, cfg,
                 device=str(resolve_device(rt.device)), title=f"fit {names[0]}")
    print(f"{names[0]}: final PSNR {result.psnr[-1][0]:.2f} dB, SSIM {result.ssim[-1][0]:.4f}; "
          f"wrote {cfg.out}", file=sys.stderr)


def _compare_kwargs(cfg: CompareJob | DemoJob) -> dict:
    m, f = cfg.model, cfg.fit
    return dict(width=m.width, layers=m.layers, shared=m.shared, w0=m.w0, steps=f.steps,
                lr=f.lr, log_every=f.log_every, stabilize=f.stabilize, keep=f.keep,
                recipe=f.recipe,
                points=f.points or None, pretrain_steps=cfg.pretrain.steps,
                pretrain_lr=cfg.pretrain.lr, value_range=cfg.value_range,
                **runtime_kwargs(cfg.runtime))


def compare_job(cfg: CompareJob) -> None:
    """``strainer-fast compare``: every method's init on the test images; report in OUT."""
    validate(cfg)
    methods = parse_methods(cfg.methods)
    train, train_names = load_images(cfg.train_images, cfg.size, cfg.gray)
    test, test_names = load_images(cfg.test_images, cfg.size, cfg.gray)
    if train.shape[-1] != test.shape[-1]:
        raise ValueError(f"train images have {train.shape[-1]} channels, test images "
                         f"{test.shape[-1]}; use --gray")
    check_methods(methods, train.shape[0])
    check_image_job(cfg.runtime.device, "comparing on", max(train.shape[0], test.shape[0]),
                    cfg.size, cfg.gray, cfg.fit.points or None, cfg.model.width,
                    cfg.model.layers)
    write_config(Path(cfg.out) / "config.json", "compare", cfg)
    results = compare(train, test, methods, train_names=train_names, **_compare_kwargs(cfg),
                      generalizable=parse_checkpoints(cfg.gen_checkpoints),
                      generalizable_steps=cfg.gen_steps)
    write_report(cfg.out, results, test, test_names, cfg,
                 device=str(resolve_device(cfg.runtime.device)),
                 extra_config=dict(train=train_names))
    print(f"wrote {cfg.out}", file=sys.stderr)


def demo_job(cfg: DemoJob) -> None:
    """``strainer-fast demo``: STRAINER-10 vs SIREN on the embedded MRI slices."""
    apply_defaults(cfg, preset("demo", cfg.runtime.device))
    cfg.fit.log_every = min(cfg.fit.log_every, cfg.fit.steps)
    validate(cfg)
    device = resolve_device(cfg.runtime.device)
    t0 = time.perf_counter()
    train_paths, test_paths = default_split()
    train, train_names = load_images(train_paths, cfg.size)
    test, test_names = load_images(test_paths, cfg.size)
    check_image_job(cfg.runtime.device, "the demo on", len(train_names), cfg.size, True,
                    cfg.fit.points or None, cfg.model.width, cfg.model.layers)
    write_config(Path(cfg.out) / "config.json", "demo", cfg)
    results = compare(train, test, ["siren", "strainer-10"], train_names=train_names,
                      **_compare_kwargs(cfg))
    total = time.perf_counter() - t0
    siren, strainer = (np.mean(results[m].psnr, axis=1) for m in ("siren", "strainer-10"))
    steps = results["siren"].step
    at100 = steps.index(100) if 100 in steps else None
    gap = ("STRAINER-10 minus SIREN, mean test PSNR: "
           + (f"{strainer[at100] - siren[at100]:+.2f} dB at step 100, " if at100 is not None
              else "")
           + f"{strainer[-1] - siren[-1]:+.2f} dB at the final step {steps[-1]}.")
    notes = (f"Data: the embedded MNI MRI slices ({mri_dir().name}), train = {len(train_names)}, "
             f"test = {len(test_names)} (README split).\n\n{gap}\n\n"
             f"Total demo wall time (pretraining + both fits + metrics): {total:.1f} s.\n\n"
             "`demo.png`: both PSNR curves and all reconstructions in one figure.")
    title = "STRAINER-10 vs SIREN on MRI slices"
    data = write_report(cfg.out, results, test, test_names, cfg, device=str(device),
                        title=title, notes=notes)
    plot_overview(data["methods"], results, test, test_names, Path(cfg.out) / "demo.png", title)
    print(gap, file=sys.stderr)
    print(f"demo finished in {total:.1f} s; wrote {cfg.out}", file=sys.stderr)
