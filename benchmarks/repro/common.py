"""Shared settings and helpers of the paper-reproduction scripts (``benchmarks/repro``).

Every script has ``run(cfg, out) -> dict``: it writes ``out/<name>.json`` and
``out/<name>.png`` and returns the JSON data. ``QUICK`` sizes run on a 2-core CPU;
``FULL`` are the paper's (178x178 images, width 256, 5000 pretraining and 2000 fitting
steps; for a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from strainer_fast.data import default_split, load_images  # noqa: E402
from strainer_fast.models import resolve_device  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "repro"

QUICK = dict(
    size=32, width=64, layers=6, shared=5, w0=30.0, lr=1e-4, steps=500, pretrain_steps=500,
    log_every=10, seed=0, device="auto", progress=True, meta_inner_steps=3,
    # second-order MAML costs ~4x FOMAML per step on a CPU: left out of the quick cost table
    cost_budgets=[100, 250, 500], cost_meta=["fomaml", "reptile"], cost_fit_steps=100,
    feature_steps=[0, 50, 100],
    grad_steps=1000,
    # stability: grayscale photos, where plain Adam shows drops at these sizes
    stab_size=32, stab_width=64, stab_steps=1500, stab_pretrain_steps=500, stab_images=4,
    natural_size=32, occupancy_res=64, occupancy_points=4096, train=None, test=None,
)
FULL = dict(
    QUICK, size=178, width=256, steps=2000, pretrain_steps=5000, log_every=10,
    cost_budgets=[500, 1000, 2500, 5000], cost_meta=None, cost_fit_steps=200, stab_size=178,
    stab_width=256, stab_steps=2000, stab_pretrain_steps=5000, stab_images=4, natural_size=178,
)

# skimage.data photos: test (colour), colour training set, grayscale training set.
NATURAL_TEST = ("astronaut", "coffee", "chelsea", "rocket")
NATURAL_TRAIN_RGB = ("hubble_deep_field", "immunohistochemistry", "retina")
NATURAL_TRAIN_GRAY = ("camera", "coins", "moon", "grass", "gravel", "brick", "clock", "cell",
                      "page", "text")


def opts(cfg: dict) -> dict:
    """Keyword options for fit_many / pretrain / meta_init."""
    return dict(seed=cfg["seed"], device=cfg["device"], progress=cfg["progress"])


def compare_kwargs(cfg: dict) -> dict:
    """Keyword options for ``strainer_fast.compare``."""
    return dict(width=cfg["width"], layers=cfg["layers"], shared=cfg["shared"], w0=cfg["w0"],
                steps=cfg["steps"], lr=cfg["lr"], pretrain_steps=cfg["pretrain_steps"],
                log_every=cfg["log_every"], **opts(cfg))


def net(cfg: dict) -> dict:
    return dict(width=cfg["width"], layers=cfg["layers"], w0=cfg["w0"])


def in_domain_data(cfg: dict) -> tuple[torch.Tensor, list[str], torch.Tensor, list[str], str]:
    """(train, train names, test, test names, label): ``cfg["train"]``/``cfg["test"]``
    folders if given, else the embedded MRI split."""
    if cfg.get("train") or cfg.get("test"):
        if not (cfg.get("train") and cfg.get("test")):
            raise ValueError("give both --train and --test folders, or neither")
        train_src, test_src, label = cfg["train"], cfg["test"], f"{cfg['train']} -> {cfg['test']}"
    else:
        (train_src, test_src), label = default_split(), "embedded MNI MRI slices (README split)"
    train, train_names = load_images(train_src, cfg["size"])
    test, test_names = load_images(test_src, cfg["size"])
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


def save_json(out: Path, name: str, data: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=1))
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


def parse(description: str, driver: bool = False) -> tuple[dict, Path, argparse.Namespace]:
    """Command line of one script (``driver``: of ``run_all``): (config, output folder,
    parsed arguments)."""
    p = argparse.ArgumentParser(description=description)
    if driver:
        p.add_argument("--only", help="comma list of items to run (default: all)")
        p.add_argument("--report-only", action="store_true",
                       help="only rewrite the report from the JSON already in --out")
    p.add_argument("--full", action="store_true", help="paper sizes (for a GPU)")
    p.add_argument("--out", default=str(DOCS), help="output folder (default docs/repro)")
    p.add_argument("--train", help="training image folder for the in-domain items (default MRI)")
    p.add_argument("--test", help="test image folder for the in-domain items")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (JSON value), e.g. --set steps=20")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    cfg = dict(FULL if args.full else QUICK, train=args.train, test=args.test,
               progress=not args.no_progress, preset="full" if args.full else "quick")
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in cfg:
            p.error(f"unknown config key {key!r}")
        try:
            cfg[key] = json.loads(value)
        except json.JSONDecodeError:
            cfg[key] = value
    return cfg, Path(args.out), args


def main(run, description: str) -> None:
    """Entry point of one script: parses the command line and runs ``run(cfg, out)``."""
    cfg, out, _ = parse(description)
    try:
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
