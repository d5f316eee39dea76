"""Paper Table 2: out-of-domain fitting. STRAINER-10 encoders pretrained on MRI slices
(grayscale) and on grayscale / colour skimage photos, fitted to other skimage photos in
colour and in grayscale, against SIREN."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

import common
from strainer_fast.data import default_split, load_images
from strainer_fast.fit import fit_many
from strainer_fast.pretrain import pretrain
from strainer_fast.report import method_metrics

NAME = "table2_ood"


def run(cfg: dict, out: Path) -> dict:
    size = cfg["natural_size"]
    nat = common.natural_dir()
    mri_train, _ = load_images(default_split()[0], size)
    train_gray, _ = load_images(nat / "train_gray", size, gray=True)
    train_rgb, _ = load_images(nat / "train_rgb", size)
    encoders = {}
    for name, images in (("strainer-10 (MRI, gray)", mri_train),
                         ("strainer-10 (photos, gray)", train_gray),
                         (f"strainer-{len(train_rgb)} (photos, colour)", train_rgb)):
        model = pretrain(images, shared=cfg["shared"], steps=cfg["pretrain_steps"], lr=cfg["lr"],
                         **common.net(cfg), **common.opts(cfg))
        encoders[name] = (model.encoder_layers(), images.shape[-1])
    tests = {}
    for mode, gray in (("colour", False), ("gray", True)):
        test, names = load_images(nat / "test", size, gray=gray)
        rows = {"siren": fit_many(test, "siren", steps=cfg["steps"], lr=cfg["lr"],
                                  log_every=cfg["log_every"], **common.net(cfg),
                                  **common.opts(cfg))}
        for enc_name, (layers, channels) in encoders.items():
            if channels > test.shape[-1]:
                continue  # a colour-trained encoder is not used on grayscale images
            rows[enc_name] = fit_many(test, "strainer", init_weights=layers, steps=cfg["steps"],
                                      lr=cfg["lr"], log_every=cfg["log_every"],
                                      **common.net(cfg), **common.opts(cfg))
        tests[mode] = dict(test=names, methods={m: method_metrics(r, names)
                                                for m, r in rows.items()})
    data = dict(machine=common.machine(cfg), tests=tests,
                train=dict(mri=len(mri_train), photos_gray=list(common.NATURAL_TRAIN_GRAY),
                           photos_colour=list(common.NATURAL_TRAIN_RGB)),
                config={k: cfg[k] for k in ("natural_size", "width", "layers", "shared", "lr",
                                             "steps", "pretrain_steps", "seed")})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (mode, t) in zip(axes, tests.items()):
        for m, d in t["methods"].items():
            ax.plot(d["step"], d["psnr"], label=m)
        ax.set_title(f"test photos in {mode} ({', '.join(n[:-4] for n in t['test'])})",
                     fontsize=9)
        ax.set_xlabel("fitting step")
        ax.set_ylabel("mean test PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Out-of-domain fitting, {size}px, width {cfg['width']}")
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
