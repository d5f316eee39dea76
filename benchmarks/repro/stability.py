"""Beyond the paper: PSNR drops while fitting, with and without each stabilisation mode of
``strainer_fast.stability``, on the same runs (same images, inits and seeds): the grayscale
skimage test photos, SIREN and STRAINER-10 (pretrained on the grayscale skimage photos)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import claims
import common
from strainer_fast.data import load_images
from strainer_fast.fit import fit_many
from strainer_fast.stability import STABILIZE, drop_stats

NAME = "stability"


def better_everywhere(mode: dict, off: dict) -> bool:
    """Every case (init x image): final PSNR higher and no more steps spent in drops than
    plain Adam."""
    return all(mode[i]["final_psnr"][k] > off[i]["final_psnr"][k]
               and mode[i]["drops"]["steps_in_drops"][k] <= off[i]["drops"]["steps_in_drops"][k]
               for i in off for k in range(len(off[i]["final_psnr"])))


def run(cfg: dict, out: Path) -> dict:
    c = dict(cfg, size=cfg["small_size"], steps=cfg["stab_steps"])
    nat = common.natural_dir()
    train, _ = load_images(nat / "train_gray", c["size"], gray=True)
    test, names = load_images(nat / "test", c["size"], gray=True)
    test, names = test[:c["stab_images"]], names[:c["stab_images"]]
    enc = common.pretrained(c, "photos gray", train, shared=c["shared"],
                            steps=c["natural_pretrain_steps"], seed=c["seed"]).layers
    modes: dict[str, dict] = {}
    curves: dict[str, dict] = {}
    for mode in STABILIZE:
        modes[mode], curves[mode] = {}, {}
        for init, weights in (("siren", None), ("strainer-10", enc)):
            r = fit_many(test, init.split("-")[0], init_weights=weights, steps=c["steps"],
                         lr=c["lr"], log_every=0, stabilize=mode, desc=f"{init} {mode}",
                         **common.net(c), **common.opts(c))
            tp = np.asarray(r.train_psnr)
            curves[mode][init] = tp
            modes[mode][init] = dict(drops=drop_stats(tp), final_psnr=r.psnr[-1],
                                     drops_after_100=drop_stats(tp, start=common.DROP_START),
                                     last_psnr=r.last_psnr,
                                     best_train_psnr=tp.max(0).tolist(),
                                     final_train_psnr=tp[-1].tolist(), wall_s=r.wall_s[-1])
    off = modes["off"]
    verdicts = {m: dict(better_everywhere=better_everywhere(modes[m], off),
                        drops=int(sum(sum(v["drops"]["count"]) for v in modes[m].values())),
                        steps_in_drops=int(sum(sum(v["drops"]["steps_in_drops"])
                                               for v in modes[m].values())),
                        mean_final_psnr=float(np.mean([v["final_psnr"] for v in
                                                       modes[m].values()])))
                for m in STABILIZE}
    chosen = claims.choose_mode(verdicts)
    data = dict(data="skimage photos in grayscale (STRAINER-10 pretrained on 10 other "
                "grayscale skimage photos)", machine=common.machine(cfg), test=names,
                modes=modes, verdicts=verdicts,
                chosen=chosen, default_should_change=verdicts[chosen]["better_everywhere"],
                curve_source="training PSNR of every step (loss of the weights before the step)",
                config=dict(size=c["size"], width=c["width"], layers=c["layers"], lr=c["lr"],
                            steps=c["steps"], pretrain_steps=c["natural_pretrain_steps"],
                            images=len(names), seed=c["seed"]))
    inits = list(curves["off"])
    fig, axes = plt.subplots(len(inits), 1, figsize=(10, 3.2 * len(inits)), squeeze=False)
    for ax, init in zip(axes[:, 0], inits):
        for mode in ("off", chosen):
            for k in range(curves[mode][init].shape[1]):
                curve = curves[mode][init][:, k]
                ax.plot(np.arange(1, len(curve) + 1), curve, lw=0.7,
                        color="C0" if mode == "off" else "C3", label=mode if k == 0 else None)
        ax.set_title(f"{init}: training PSNR per step, plain Adam vs {chosen}", fontsize=9)
        ax.set_xlabel("fitting step")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
