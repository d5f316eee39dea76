"""Paper Table 4 analogue: does a wider SIREN close the gap? SIREN at each width of
``capacity_widths`` against the STRAINER encoders (width ``width``) on the colour skimage
test photos (the fits of the out-of-domain item are reused within one run)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

import common
import table2_ood

NAME = "table4_capacity"


def run(cfg: dict, out: Path) -> dict:
    size = cfg["small_size"]
    test, names = common.natural_test(cfg, size)
    mode = "photos, colour"
    rows, params = {}, {}
    for width in cfg["capacity_widths"]:
        name = f"siren (width {width})"
        r = table2_ood.fitted(cfg, mode, test, "siren", width=width)
        rows[name] = dict(common.curve_metrics(r, names), fit_wall_s=r.wall_s[-1])
        params[name] = common.weights_count(width, cfg["layers"], 3)
    for enc_name, (layers, channels) in table2_ood.encoders(cfg).items():
        if "photos" in enc_name:
            r = table2_ood.fitted(cfg, mode, test, enc_name, layers)
            rows[enc_name] = dict(common.curve_metrics(r, names), fit_wall_s=r.wall_s[-1])
            params[enc_name] = common.weights_count(cfg["width"], cfg["layers"], 3)
    data = dict(machine=common.machine(cfg), test=names, methods=rows, params=params,
                values=size * size * 3,
                config=dict(size=size, widths=cfg["capacity_widths"], width=cfg["width"],
                            layers=cfg["layers"], steps=cfg["natural_steps"],
                            pretrain_steps=cfg["natural_pretrain_steps"], seed=cfg["seed"]))
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, d in rows.items():
        ax.plot(d["step"], d["psnr"], label=f"{m}, {params[m] / 1e3:.0f}k weights")
    ax.set_xlabel("fitting step")
    ax.set_ylabel("mean test PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"Capacity: colour photos {size}px", fontsize=9)
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
