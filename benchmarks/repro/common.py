"""Shared settings and helpers of the paper-reproduction scripts (``benchmarks/repro``).

Every item script has ``NAME`` and ``run(cfg, out) -> dict``: it writes ``out/<NAME>.json``
(and usually ``out/<NAME>.png``) and returns the JSON data. The settings come from one
committed pre-registration file, ``preregistration.toml``: preset ``cpu`` (default; a 2-core
CPU) or ``paper`` (the paper's sizes, for a GPU). Pretrained encoders and fits are memoised
per process (``pretrained``, ``cached``), so ``run_all`` pretrains each encoder once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from strainer_fast.data import default_split, load_images  # noqa: E402
from strainer_fast.models import resolve_device  # noqa: E402
from strainer_fast.pretrain import initial_strainer  # noqa: E402
from strainer_fast.report import method_metrics  # noqa: E402
from strainer_fast.stability import drop_stats  # noqa: E402
from strainer_fast.train import Callback, image_mse, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "repro"
PREREG_PATH = Path(__file__).resolve().with_name("preregistration.toml")
PREREG = tomllib.loads(PREREG_PATH.read_text())
PRESETS = tuple(PREREG["presets"])

# skimage.data photos: test (colour), colour training set, grayscale training set.
NATURAL_TEST = tuple(PREREG["splits"]["natural_test"])
NATURAL_TRAIN_RGB = tuple(PREREG["splits"]["natural_train_rgb"])
NATURAL_TRAIN_GRAY = tuple(PREREG["splits"]["natural_train_gray"])
# The paper's network (Table 1): 2 -> 5 sine layers of width 256 -> linear, on 178x178x3 values.
PAPER_VALUES = 178 * 178 * 3


UNSET = "unset"  # a [tuned] value not chosen yet (validate.py writes it, by hand, after its part)
TUNED_BY = {"width": "width", "meta_steps": "meta"}  # the validate.py --part choosing each


def preset(name: str) -> dict:
    """The flat config of preset ``name`` with the tuned values filled in (a ``[tuned]`` value
    still ``UNSET`` stays ``UNSET``: ``check_tuned`` refuses such a config)."""
    if name not in PREREG["presets"]:
        raise ValueError(f"unknown preset {name!r}; choose from {list(PRESETS)}")
    cfg = dict(PREREG["presets"][name])
    for key, value in cfg.items():
        if value == "tuned":
            cfg[key] = PREREG["tuned"][key]
    cfg.update(strainer_lr=list(PREREG["tuned"]["strainer_lr"]), seed=cfg["seeds"][0],
               device="auto", progress=True, train=None, test=None, preset=name)
    return cfg


def check_tuned(cfg: dict, allow: tuple[str, ...] = ()) -> None:
    """ValueError naming the config values that are still ``UNSET`` (a "tuned" preset value
    whose ``[tuned]`` entry validate.py has not filled in, and no ``--set`` override), but
    those in ``allow``."""
    order = list(TUNED_BY)  # the order the parts must run in (meta fits at the width)
    unset = sorted((k for k, v in cfg.items() if v == UNSET and k not in allow),
                   key=lambda k: (order.index(k) if k in order else len(order), k))
    if unset:
        parts = " then ".join(f"`python benchmarks/repro/validate.py --part "
                              f"{TUNED_BY.get(k, k)}`" for k in unset)
        raise ValueError(
            f"preset {cfg['preset']!r}: {', '.join(unset)} is 'tuned' but [tuned] in "
            f"{PREREG_PATH.name} leaves it {UNSET!r}: run {parts} and copy the choice into "
            f"[tuned] (or override it with --set {unset[0]}=VALUE, which the report then "
            "declares)")


def weights_count(width: int, layers: int, channels: int, inputs: int = 2) -> int:
    """Weights + biases of a SIREN ``inputs`` -> (layers - 1) sine layers -> ``channels``."""
    return ((inputs + 1) * width + (layers - 2) * (width + 1) * width
            + (width + 1) * channels)


def capacity_line(cfg: dict, values: int, what: str, channels: int = 1) -> str:
    """Parameters per fitted value here (``channels`` outputs), next to the paper's (Table 1)."""
    ours = weights_count(cfg["width"], cfg["layers"], channels)
    paper = weights_count(256, 6, 3)
    return (f"{ours:,} weights per network for {values:,} values ({what}): "
            f"{ours / values:.2f} weights per value; the paper: {paper:,} weights for "
            f"178x178x3 = {PAPER_VALUES:,} values, {paper / PAPER_VALUES:.2f} per value")


def opts(cfg: dict, seed: int | None = None) -> dict:
    """Keyword options for fit_many / pretrain / meta_init / train_generalizable."""
    return dict(seed=cfg["seed"] if seed is None else seed, device=cfg["device"],
                progress=cfg["progress"], precision=cfg["precision"],
                value_range=cfg["value_range"])


def net(cfg: dict, width: int | None = None) -> dict:
    return dict(width=width or cfg["width"], layers=cfg["layers"], w0=cfg["w0"])


def fit_kw(cfg: dict, steps: int | None = None, seed: int | None = None,
           log_every: int | None = None, width: int | None = None) -> dict:
    """Keyword options of a ``fit_many`` run at the preset's network and schedule."""
    return dict(steps=steps or cfg["steps"], lr=cfg["lr"],
                log_every=cfg["log_every"] if log_every is None else log_every,
                **net(cfg, width), **opts(cfg, seed))


# -- per-process memo: run_all pretrains each encoder and runs each shared fit once --------
_MEMO: dict = {}


DROP_START = 100  # drops "after the first 100 steps" (issue 28)


def curve_metrics(result, names: list[str]) -> dict:
    """``report.method_metrics`` of a ``FitResult`` plus its drops > 1 dB
    (``stability.drop_stats`` of the per-step training PSNR per image): ``drops`` from step
    0, ``drops_after_100`` from the weights after ``DROP_START`` updates (none without
    steps)."""
    m = method_metrics(result, names)
    if result.train_psnr:
        m.update(drops=drop_stats(result.train_psnr),
                 drops_after_100=drop_stats(result.train_psnr, start=DROP_START))
    return m


def cached(key: tuple, make):
    """``make()``, memoised under ``key`` for this process."""
    if key not in _MEMO:
        _MEMO[key] = make()
    return _MEMO[key]


@dataclass
class Pretrained:
    """A pretrained encoder: its layers, the cost of pretraining it (wall and process CPU
    seconds) and snapshots {step: (layers, wall_s, cpu_s)} at earlier steps."""

    layers: list
    wall_s: float
    cpu_s: float
    snapshots: dict = field(default_factory=dict)


class Snapshots(Callback):
    """At every step of ``steps``: ``into[step] = (layers(t.model) copied, wall s, CPU s
    since t0 = (perf_counter, process_time))``; ``layers`` default: the encoder layers."""

    def __init__(self, steps: set[int], into: dict, t0: tuple[float, float],
                 layers: Callable = lambda model: model.encoder_layers()) -> None:
        self.steps, self.into, self.t0, self.layers = steps, into, t0, layers

    def after_step(self, t, mse) -> bool:
        if t.step in self.steps:
            self.into[t.step] = ([(w.detach().clone(), b.detach().clone())
                                  for w, b in self.layers(t.model)],
                                 time.perf_counter() - self.t0[0],
                                 time.process_time() - self.t0[1])
        return False


def pretrain_key(cfg: dict, data: str, shape: tuple[int, ...], shared: int, steps: int,
                 seed: int, width: int, layers: int) -> tuple:
    """Memo key of ``pretrained``: what its encoder depends on (images [S, H, W, C] named
    ``data``, the encoder's settings and ``cfg``'s w0 / lr / precision / value range)."""
    return ("pretrain", data, tuple(shape), shared, steps, seed, width, layers, cfg["w0"],
            cfg["lr"], cfg["precision"], cfg["value_range"])


def pretrained(cfg: dict, data: str, images: torch.Tensor, *, shared: int, steps: int,
               seed: int, width: int | None = None, layers: int | None = None,
               snapshots: tuple[int, ...] = ()) -> Pretrained:
    """STRAINER pretraining on images [S, H, W, C] (Adam, ``cfg["lr"]``), memoised by
    (``data``, size, settings). ``data`` names the training set (part of the memo key).
    Snapshots of the encoder are kept at every step of ``snapshots`` and of
    ``cfg["cost_budgets"]`` / ``cfg["ablation_pretrain_steps"]`` below ``steps``."""
    width, layers = width or cfg["width"], layers or cfg["layers"]
    key = pretrain_key(cfg, data, tuple(images.shape), shared, steps, seed, width, layers)

    def make() -> Pretrained:
        dev = resolve_device(cfg["device"])
        model = initial_strainer(images.shape[0], 0, images.shape[0], in_features=2,
                                 out_features=images.shape[-1], width=width, layers=layers,
                                 shared=shared, w0=cfg["w0"], seed=seed,
                                 precision=cfg["precision"]).to(dev)
        want = {s for s in (*snapshots, *cfg.get("cost_budgets", ()),
                            cfg.get("ablation_pretrain_steps", 0)) if 0 < s < steps}
        snaps: dict = {}
        t0 = (time.perf_counter(), time.process_time())
        train(model, image_mse(model, images.to(dev, torch.float32),
                               value_range=cfg["value_range"]), steps, lr=cfg["lr"],
              callbacks=[Snapshots(want, snaps, t0)], progress=cfg["progress"],
              value_range=cfg["value_range"],
              desc=f"pretrain STRAINER-{images.shape[0]} ({data}, seed {seed})")
        return Pretrained([(w.detach(), b.detach()) for w, b in model.encoder_layers()],
                          time.perf_counter() - t0[0], time.process_time() - t0[1], snaps)

    return cached(key, lambda: _on_disk(cfg, key, make))


def _on_disk(cfg: dict, key: tuple, make) -> Pretrained:
    """``make()`` through the folder ``cfg["cache_dir"]`` (if set): items run as separate
    processes share their encoders; a cached encoder keeps the cost of the run that made it."""
    if not cfg.get("cache_dir"):
        return make()
    import hashlib

    path = Path(cfg["cache_dir"]) / f"{hashlib.sha1(repr(key).encode()).hexdigest()[:16]}.pt"
    if path.exists():
        return Pretrained(**torch.load(path, map_location=resolve_device(cfg["device"])))
    result = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(dict(vars(result)), tmp)
    tmp.replace(path)
    return result


def permuted(layers: list, seed: int) -> list:
    """Random-weight control: every weight matrix and bias vector with its entries randomly
    permuted (same per-layer value distribution, no learned structure)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for w, b in layers:
        pw = torch.randperm(w.numel(), generator=g)
        pb = torch.randperm(b.numel(), generator=g)
        out.append((w.flatten()[pw.to(w.device)].reshape(w.shape),
                    b.flatten()[pb.to(b.device)].reshape(b.shape)))
    return out


def timed(fn):
    """(fn(), wall seconds, process CPU seconds)."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - t0, time.process_time() - c0


def in_domain_data(cfg: dict, size: int | None = None
                   ) -> tuple[torch.Tensor, list[str], torch.Tensor, list[str], str]:
    """(train, train names, test, test names, label) at ``size`` (default ``cfg["size"]``):
    ``cfg["train"]``/``cfg["test"]`` folders if given, else the embedded MRI split."""
    size = size or cfg["size"]
    if cfg.get("train") or cfg.get("test"):
        if not (cfg.get("train") and cfg.get("test")):
            raise ValueError("give both --train and --test folders, or neither")
        train_src, test_src, label = cfg["train"], cfg["test"], f"{cfg['train']} -> {cfg['test']}"
    else:
        (train_src, test_src), label = default_split(), "embedded MNI MRI slices (README split)"
    train, train_names = load_images(train_src, size)
    test, test_names = load_images(test_src, size)
    if train.shape[-1] != test.shape[-1]:
        raise ValueError("train and test images have different channel counts")
    return train, train_names, test, test_names, label


def natural_dir() -> Path:
    """Cache folder (~/.cache/strainer_fast/skimage_photos, written on first use) with the
    skimage.data photos as PNG: test/, train_rgb/, train_gray/. Also usable with
    ``strainer-fast compare``."""
    import skimage.data
    from PIL import Image

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = cache / "strainer_fast" / "skimage_photos"
    for sub, names in (("test", NATURAL_TEST), ("train_rgb", NATURAL_TRAIN_RGB),
                       ("train_gray", NATURAL_TRAIN_GRAY)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            path = root / sub / f"{name}.png"
            if not path.exists():
                img = np.asarray(getattr(skimage.data, name)())
                if img.dtype == bool:
                    img = img.astype(np.uint8) * 255
                Image.fromarray(img).save(path)
    return root


def natural_test(cfg: dict, size: int, gray: bool = False) -> tuple[torch.Tensor, list[str]]:
    """The first ``cfg["natural_test_images"]`` natural test photos at ``size``:
    (images (n, size, size, c), names)."""
    images, names = load_images(natural_dir() / "test", size, gray=gray)
    n = cfg["natural_test_images"]
    return images[:n], names[:n]


def machine(cfg: dict) -> str:
    """One line naming the hardware the numbers come from."""
    dev = resolve_device(cfg["device"])
    if dev.type == "cuda":
        return f"GPU {torch.cuda.get_device_name()}"
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU only, {os.cpu_count()} cores ({model})"


def write_atomic(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same folder and a rename, so
    a process killed mid-way leaves the old file or the new one, never a truncated one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def save_json(out: Path, name: str, data: dict) -> dict:
    """Writes ``data`` to ``out/name.json`` (atomically) and returns it."""
    write_atomic(out / f"{name}.json", json.dumps(data, indent=1))
    return data


def finish(fig, out: Path, name: str, data: dict) -> dict:
    """Saves an item's figure as ``out/name.png`` and its measurements as ``out/name.json``."""
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{name}.png", dpi=110)
    plt.close(fig)
    return save_json(out, name, data)


def mean_curve(psnr: list[list[float]]) -> list[float]:
    return [float(np.mean(v)) for v in psnr]


def parse(description: str, driver: bool = False,
          extra: Callable[[argparse.ArgumentParser], None] | None = None
          ) -> tuple[dict, Path, argparse.Namespace]:
    """Command line of one script (``driver``: of ``run_all``; ``extra`` adds the script's
    own options): (config, output folder, parsed arguments)."""
    p = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(p)
    if driver:
        p.add_argument("--only", help="comma list of items to run (default: all)")
        p.add_argument("--report-only", action="store_true",
                       help="only rewrite the report from the JSON already in --out")
        p.add_argument("--fresh", action="store_true",
                       help="start over: first delete the cached encoders, status.json, "
                            "notes.md and the items' JSON in --out (default: continue, reusing "
                            "every item finished there with the same settings)")
    p.add_argument("--preset", default="cpu", choices=PRESETS,
                   help="settings from preregistration.toml (default cpu; paper: for a GPU)")
    p.add_argument("--out", default=str(DOCS), help="output folder (default docs/repro)")
    p.add_argument("--train", help="training image folder for the in-domain items (default MRI)")
    p.add_argument("--test", help="test image folder for the in-domain items")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (JSON value), e.g. --set steps=20 (the "
                        "report then says the run departs from the pre-registration)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    cfg = dict(preset(args.preset), train=args.train, test=args.test,
               progress=not args.no_progress)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in cfg:
            p.error(f"unknown config key {key!r}")
        try:
            cfg[key] = json.loads(value)
        except json.JSONDecodeError:
            cfg[key] = value
        overrides[key] = cfg[key]
    if "seeds" in overrides or "seed" not in overrides:
        cfg["seed"] = cfg["seeds"][0]
    cfg["overrides"] = overrides
    return cfg, Path(args.out), args


def main(run, description: str, needs_tuned: bool = True) -> None:
    """Entry point of one script: parses the command line and runs ``run(cfg, out)``
    (refused while a tuned value it needs is ``UNSET``, unless not ``needs_tuned``)."""
    cfg, out, _ = parse(description)
    try:
        if needs_tuned:
            check_tuned(cfg)
        run(cfg, out)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        sys.exit(2)


def hidden_features(model, coords: torch.Tensor, depth: int, index: int = 0) -> torch.Tensor:
    """Output [N, width] of the first ``depth`` sine layers of network ``index`` of a
    ``Strainer`` at coords [N, 2], evaluated with the plain-PyTorch reference ops."""
    from strainer_fast.reference import sine_mlp

    layers = model.network_layers(index)[:depth]
    with torch.no_grad():
        return sine_mlp(coords, [w for w, _ in layers], [b for _, b in layers],
                        [model.config["w0"]] * depth, last_linear=False)
