"""Paper Fig. 7: STRAINER-10 with 1..5 shared encoder layers (6-layer networks)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

import common
from strainer_fast import compare
from strainer_fast.report import method_metrics

NAME = "fig7_ablation"


def run(cfg: dict, out: Path) -> dict:
    train, train_names, test, test_names, label = common.in_domain_data(cfg)
    curves = {}
    for shared in range(1, cfg["layers"]):
        r = compare(train, test, ["strainer-10"], train_names=train_names,
                    **common.compare_kwargs(dict(cfg, shared=shared)))["strainer-10"]
        curves[str(shared)] = method_metrics(r, test_names)
    data = dict(data=label, machine=common.machine(cfg), shared=curves,
                config={k: cfg[k] for k in ("size", "width", "layers", "lr", "steps",
                                             "pretrain_steps", "seed")})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for k, d in curves.items():
        axes[0].plot(d["step"], d["psnr"], label=f"{k} shared")
    ks = [int(k) for k in curves]
    axes[1].plot(ks, [curves[str(k)]["psnr"][-1] for k in ks], marker="o")
    axes[0].set_xlabel("fitting step")
    axes[0].set_ylabel("mean test PSNR (dB)")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("shared encoder layers")
    axes[1].set_ylabel(f"final mean test PSNR (dB), step {cfg['steps']}")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(f"Shared-layer ablation: {label}")
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
