"""Paper Table 2: out-of-domain fitting. STRAINER-10 encoders pretrained on MRI slices
(grayscale) and on grayscale skimage photos (the grayscale-trained variant), and a STRAINER
encoder on colour skimage photos, fitted to other skimage photos in colour and in
grayscale, against SIREN; plus the reverse direction (photo-trained encoders on the MRI
test slices)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

import common
from strainer_fast.data import default_split, load_images
from strainer_fast.fit import fit_many

NAME = "table2_ood"


def encoders(cfg: dict) -> dict[str, tuple[list, int]]:
    """name -> (encoder layers, training channels) at ``small_size``, first seed."""
    size, nat = cfg["small_size"], common.natural_dir()
    mri = "in-domain train" if not cfg.get("train") else "MRI train"  # memo key of item 1
    sets = (("strainer-10 (MRI, gray)", mri, load_images(default_split()[0], size)[0]),
            ("strainer-10 (photos, gray)", "photos gray",
             load_images(nat / "train_gray", size, gray=True)[0]),
            (f"strainer-{len(common.NATURAL_TRAIN_RGB)} (photos, colour)", "photos colour",
             load_images(nat / "train_rgb", size)[0]))
    return {name: (common.pretrained(cfg, data, images, shared=cfg["shared"],
                                     steps=cfg["natural_pretrain_steps"],
                                     seed=cfg["seed"]).layers, images.shape[-1])
            for name, data, images in sets}


def fit_key(cfg: dict, data: str, shape: tuple[int, ...], method: str,
            width: int | None = None) -> tuple:
    """Memo key of ``fitted``: images [K, H, W, C] named ``data``, the init, the width."""
    return ("fit", data, tuple(shape), method, width or cfg["width"], cfg["natural_steps"],
            cfg["seed"])


def uses(mode: str, channels: int, enc_name: str, enc_channels: int) -> bool:
    """Whether encoder ``enc_name`` (trained on ``enc_channels`` channels) is fitted to the
    test set ``mode`` of ``channels`` channels."""
    if enc_channels > channels:
        return False  # a colour-trained encoder is not used on grayscale images
    return not (mode.startswith("MRI") and "MRI" in enc_name)  # in-domain: item 1


def fitted(cfg: dict, data: str, images, method: str, layers=None, width: int | None = None):
    """Memoised ``fit_many`` of ``images`` (named ``data``) from ``method``'s init."""
    key = fit_key(cfg, data, images.shape, method, width)
    init = "siren" if layers is None else "strainer"
    return common.cached(key, lambda: fit_many(
        images, init, init_weights=layers, desc=f"fit {method} on {data}",
        **common.fit_kw(cfg, steps=cfg["natural_steps"], width=width)))


def run(cfg: dict, out: Path) -> dict:
    size = cfg["small_size"]
    encs = encoders(cfg)
    tests = {}
    sets = (("photos, colour", common.natural_test(cfg, size)),
            ("photos, gray", common.natural_test(cfg, size, gray=True)),
            ("MRI test slices", load_images(default_split()[1][:cfg["test_images"]], size)))
    for mode, (test, names) in sets:
        rows = {"siren": fitted(cfg, mode, test, "siren")}
        for enc_name, (layers, channels) in encs.items():
            if uses(mode, test.shape[-1], enc_name, channels):
                rows[enc_name] = fitted(cfg, mode, test, enc_name, layers)
        tests[mode] = dict(test=names, methods={m: common.curve_metrics(r, names)
                                                for m, r in rows.items()})
    data = dict(machine=common.machine(cfg), tests=tests,
                train=dict(mri="MRI train split (10 slices)",
                           photos_gray=list(common.NATURAL_TRAIN_GRAY),
                           photos_colour=list(common.NATURAL_TRAIN_RGB)),
                config=dict(size=size, width=cfg["width"], layers=cfg["layers"],
                            shared=cfg["shared"], lr=cfg["lr"], steps=cfg["natural_steps"],
                            pretrain_steps=cfg["natural_pretrain_steps"], seed=cfg["seed"]))
    fig, axes = plt.subplots(1, len(tests), figsize=(5.5 * len(tests), 4), squeeze=False)
    for ax, (mode, t) in zip(axes[0], tests.items()):
        for m, d in t["methods"].items():
            ax.plot(d["step"], d["psnr"], label=m)
        ax.set_title(f"test: {mode}", fontsize=9)
        ax.set_xlabel("fitting step")
        ax.set_ylabel("mean test PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Out-of-domain fitting, {size}px, width {cfg['width']}")
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
