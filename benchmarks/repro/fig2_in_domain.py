"""Paper Fig. 2 / Table 1: in-domain fitting, PSNR and SSIM vs step for SIREN, SIREN
fine-tuned, meta-learned inits, STRAINER-1 and STRAINER-10 (default: embedded MRI split)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

import common
from strainer_fast import compare
from strainer_fast.meta import META_METHODS
from strainer_fast.report import method_metrics, write_report

NAME = "fig2_in_domain"
# Paper Table 1 (CelebA-HQ, 178x178, width 256, 2000 steps): mean test PSNR (dB).
PAPER_PSNR = {"siren": 44.9, "siren-ft": 51.0, "meta": 53.0, "strainer-1": 50.3,
              "strainer-10": 57.7}


def methods() -> list[str]:
    return ["siren", "siren-ft", *(f"meta-{m}" for m in META_METHODS), "strainer-1",
            "strainer-10"]


def run(cfg: dict, out: Path) -> dict:
    train, train_names, test, test_names, label = common.in_domain_data(cfg)
    results = compare(train, test, methods(), train_names=train_names,
                      **common.compare_kwargs(cfg))
    write_report(out / NAME, results, test, test_names, {k: cfg[k] for k in
                 ("size", "width", "layers", "shared", "lr", "steps", "pretrain_steps")},
                 device=common.machine(cfg), title="In-domain fitting (paper Fig. 2)")
    data = dict(data=label, machine=common.machine(cfg), test=test_names,
                train=train_names, paper_psnr=PAPER_PSNR,
                methods={m: method_metrics(r, test_names) for m, r in results.items()},
                config={k: cfg[k] for k in ("size", "width", "layers", "shared", "lr", "steps",
                                             "pretrain_steps", "meta_inner_steps", "seed")})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for m, d in data["methods"].items():
        axes[0].plot(d["step"], d["psnr"], label=m)
        axes[1].plot(d["step"], d["ssim"], label=m)
    for ax, what in zip(axes, ("mean test PSNR (dB)", "mean test SSIM")):
        ax.set_xlabel("fitting step")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"In-domain fitting: {label}, {cfg['size']}px, width {cfg['width']}")
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
