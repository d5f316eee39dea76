"""Paper Fig. 2 / Table 1: in-domain fitting, PSNR and SSIM vs step for SIREN, SIREN
fine-tuned, a meta-learned init, STRAINER-1, STRAINER-10 and the random-weight control
(STRAINER-10's encoder with each layer's weights and biases randomly permuted), on the
embedded MRI split by default, in the preset's value range. The headline rows (SIREN,
STRAINER-10, control) run every seed of the preset (pretraining and fitting); the others run
the first seed. SIREN and STRAINER-10 also run in the second protocol
(``second_value_range``, seeds ``second_seeds``): rows "siren (<range>)" and
"strainer-10 (<range>)". Every row records its value range."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import common
from strainer_fast.fit import fit_many, siren_ft_init
from strainer_fast.meta import meta_init

NAME = "fig2_in_domain"
# Paper Table 1 (CelebA-HQ, 178x178, width 256, 2000 steps): mean test PSNR (dB).
PAPER_PSNR = {"siren": 44.9, "siren-ft": 51.0, "meta": 53.0, "strainer-1": 50.3,
              "strainer-10": 57.7}
HEADLINE = ("siren", "strainer-10", "control")
SECOND = ("siren", "strainer-10")  # the rows that also run in the second protocol


def second_row(method: str, value_range: str) -> str:
    """Name of ``method``'s row in the second protocol ``value_range``."""
    return f"{method} ({value_range})"


def meta_layers(cfg: dict, train, seed: int) -> tuple[list, float, float]:
    """Meta-learned init (``cfg["meta_method"]``, ``cfg["meta_steps"]`` outer steps) on all
    training images, memoised: (layers, wall s, CPU s)."""
    key = ("meta", cfg["meta_method"], tuple(train.shape), cfg["meta_steps"], seed,
           cfg["width"], cfg["layers"], cfg["precision"], cfg["value_range"])
    return common.cached(key, lambda: common.timed(lambda: meta_init(
        train, cfg["meta_method"], steps=cfg["meta_steps"], inner_steps=cfg["meta_inner_steps"],
        lr=cfg["lr"], **common.net(cfg), **common.opts(cfg, seed))))


def run(cfg: dict, out: Path) -> dict:
    train, train_names, test, test_names, label = common.in_domain_data(cfg)
    test, test_names = test[:cfg["test_images"]], test_names[:cfg["test_images"]]
    first, second = cfg["value_range"], cfg["second_value_range"]
    if second == first:
        raise ValueError(f"second_value_range must differ from value_range {first!r}")
    protocol_rows = {first: {m: m for m in SECOND},
                     second: {m: second_row(m, second) for m in SECOND}}
    runs: dict[str, dict[str, dict]] = {m: {} for m in
                                        ("siren", "siren-ft", "meta", "strainer-1",
                                         "strainer-10", "control",
                                         *protocol_rows[second].values())}
    init_cost: dict[str, dict[str, dict]] = {m: {} for m in runs}

    data = dict(data=f"{label}, first {len(test_names)} test images",
                machine=common.machine(cfg), test=test_names, train=train_names,
                paper_psnr=PAPER_PSNR, headline=list(HEADLINE), runs=runs, init_cost=init_cost,
                protocol_rows=protocol_rows, complete=False,
                capacity=common.capacity_line(cfg, cfg["size"] ** 2 * test.shape[-1],
                                              f"{cfg['size']}x{cfg['size']}x{test.shape[-1]}",
                                              test.shape[-1]),
                meta=f"{cfg['meta_method']}, {cfg['meta_steps']} outer steps, "
                     f"{cfg['meta_inner_steps']} inner SGD steps",
                control=f"STRAINER-10 encoder of the same seed, every layer's weight matrix "
                        f"and bias vector randomly permuted (permutation seed "
                        f"{cfg['control_seed']} + seed)",
                config={k: cfg[k] for k in ("size", "test_images", "width", "layers", "shared",
                                             "w0", "lr", "steps", "pretrain_steps",
                                             "meta_steps", "meta_inner_steps", "seeds",
                                             "precision", "value_range", "second_value_range",
                                             "second_seeds")})

    def fit(method: str, seed: int, init: str = "siren", weights=None, c: dict = cfg) -> None:
        r = fit_many(test, init, init_weights=weights, desc=f"fit {method} (seed {seed})",
                     **common.fit_kw(c, seed=seed))
        runs[method][str(seed)] = dict(common.curve_metrics(r, test_names),
                                       fit_wall_s=r.wall_s[-1], value_range=c["value_range"])
        common.save_json(out, NAME, data)  # a cut-short run keeps what it measured

    # First seed: every row; then the other seeds: the headline rows.
    for i, seed in enumerate(cfg["seeds"]):
        enc = common.pretrained(cfg, "in-domain train", train[:10], shared=cfg["shared"],
                                steps=cfg["pretrain_steps"], seed=seed)
        init_cost["strainer-10"][str(seed)] = dict(wall_s=enc.wall_s, cpu_s=enc.cpu_s)
        fit("siren", seed)
        fit("strainer-10", seed, "strainer", enc.layers)
        fit("control", seed, "strainer", common.permuted(enc.layers, cfg["control_seed"] + seed))
        if i:
            continue
        one = common.pretrained(cfg, "in-domain train", train[:1], shared=cfg["shared"],
                                steps=cfg["pretrain_steps"], seed=seed)
        init_cost["strainer-1"][str(seed)] = dict(wall_s=one.wall_s, cpu_s=one.cpu_s)
        fit("strainer-1", seed, "strainer", one.layers)
        ft, wall, cpu = common.timed(lambda: siren_ft_init(
            train[0], **common.fit_kw(cfg, seed=seed, log_every=0), desc="siren-ft init"))
        init_cost["siren-ft"][str(seed)] = dict(wall_s=wall, cpu_s=cpu)
        fit("siren-ft", seed, "siren-ft", ft)
        meta, wall, cpu = meta_layers(cfg, train, seed)
        init_cost["meta"][str(seed)] = dict(wall_s=wall, cpu_s=cpu)
        fit("meta", seed, "meta", meta)
    c2, rows2 = dict(cfg, value_range=second), protocol_rows[second]
    for seed in cfg["second_seeds"]:
        enc = common.pretrained(c2, "in-domain train", train[:10], shared=cfg["shared"],
                                steps=cfg["pretrain_steps"], seed=seed)
        init_cost[rows2["strainer-10"]][str(seed)] = dict(wall_s=enc.wall_s, cpu_s=enc.cpu_s)
        fit(rows2["siren"], seed, c=c2)
        fit(rows2["strainer-10"], seed, "strainer", enc.layers, c=c2)
    data["complete"] = True

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (m, per_seed) in enumerate((m, r) for m, r in runs.items() if r):
        curves = list(per_seed.values())
        step = curves[0]["step"]
        for ax, key in zip(axes, ("psnr", "ssim")):
            v = np.array([c[key] for c in curves])
            ax.plot(step, v.mean(0), color=f"C{i}",
                    label=m + (f" ({len(curves)} seeds)" if len(curves) > 1 else ""))
            if len(curves) > 1:
                ax.fill_between(step, v.min(0), v.max(0), color=f"C{i}", alpha=0.2)
    for ax, what in zip(axes, ("mean test PSNR (dB)", "mean test SSIM")):
        ax.set_xlabel("fitting step")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"In-domain fitting: {label}, {cfg['size']}px, width {cfg['width']}, "
                 f"value range {first} (rows named '({second})': {second}; band: min-max over "
                 "seeds)", fontsize=9)
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
