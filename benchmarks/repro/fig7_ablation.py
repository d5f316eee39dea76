"""Paper Fig. 7: STRAINER-10 with each number of shared encoder layers of
``ablation_shared`` (6-layer networks), at ``small_size`` on the first ``test_images`` MRI
test slices (secondary item: cut sizes)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

import common
from strainer_fast.fit import fit_many

NAME = "fig7_ablation"


def run(cfg: dict, out: Path) -> dict:
    size = cfg["small_size"]
    train, _, test, test_names, label = common.in_domain_data(cfg, size)
    test, test_names = test[:cfg["test_images"]], test_names[:cfg["test_images"]]
    steps = cfg["ablation_pretrain_steps"]
    curves = {}
    for shared in cfg["ablation_shared"]:
        enc = common.pretrained(cfg, "in-domain train", train[:10], shared=shared, steps=steps,
                                seed=cfg["seed"])
        r = fit_many(test, "strainer", init_weights=enc.layers, desc=f"fit {shared} shared",
                     **common.fit_kw(cfg, steps=cfg["ablation_steps"]))
        curves[str(shared)] = common.curve_metrics(r, test_names)
    data = dict(data=f"{label}, first {len(test_names)} test images",
                machine=common.machine(cfg), shared=curves,
                config=dict(size=size, width=cfg["width"], layers=cfg["layers"], lr=cfg["lr"],
                            steps=cfg["ablation_steps"], pretrain_steps=steps, seed=cfg["seed"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for k, d in curves.items():
        axes[0].plot(d["step"], d["psnr"], label=f"{k} shared")
    ks = [int(k) for k in curves]
    axes[1].plot(ks, [curves[str(k)]["psnr"][-1] for k in ks], marker="o")
    axes[0].set_xlabel("fitting step")
    axes[0].set_ylabel("mean test PSNR (dB)")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("shared encoder layers")
    axes[1].set_ylabel(f"final mean test PSNR (dB), step {cfg['ablation_steps']}")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(f"Shared-layer ablation: {label}, {size}px")
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
