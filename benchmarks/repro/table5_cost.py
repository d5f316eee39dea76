"""Paper Table 5: cost of pretraining STRAINER-10 vs meta-learned inits. For each budget of
pretraining steps: wall time, gradient evaluations, and the test quality (mean PSNR after a
short fit) of the resulting init; then the cost for STRAINER-10 to equal the best meta init."""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import common
from strainer_fast.fit import fit_many
from strainer_fast.meta import META_METHODS, meta_init
from strainer_fast.pretrain import pretrain

NAME = "table5_cost"


def grads_per_step(method: str, inner: int) -> int:
    """Backward passes (each over all training images at once) per pretraining step."""
    return {"strainer-10": 1, "fomaml": inner + 1, "maml": inner + 1, "reptile": inner}[method]


def run(cfg: dict, out: Path) -> dict:
    train, _, test, _, label = common.in_domain_data(cfg)
    inner = cfg["meta_inner_steps"]
    fit_kw = dict(steps=cfg["cost_fit_steps"], lr=cfg["lr"], log_every=0, **common.net(cfg),
                  **common.opts(cfg))
    metas = [m for m in META_METHODS if cfg["cost_meta"] is None or m in cfg["cost_meta"]]
    rows: dict[str, list[dict]] = {}
    for method in ("strainer-10", *metas):
        rows[method] = []
        for budget in cfg["cost_budgets"]:
            t0 = time.perf_counter()
            if method == "strainer-10":
                weights = pretrain(train[:10], shared=cfg["shared"], steps=budget, lr=cfg["lr"],
                                   **common.net(cfg), **common.opts(cfg)).encoder_layers()
                init = "strainer"
            else:
                weights = meta_init(train, method=method, steps=budget, inner_steps=inner,
                                    lr=cfg["lr"], **common.net(cfg), **common.opts(cfg))
                init = "meta"
            wall = time.perf_counter() - t0
            r = fit_many(test, init, init_weights=weights, **fit_kw)
            rows[method].append(dict(steps=budget, wall_s=wall,
                                     grad_evals=budget * grads_per_step(method, inner),
                                     test_psnr=float(np.mean(r.psnr[-1]))))
    best_meta = max((r for m in metas for r in rows[m]), key=lambda r: r["test_psnr"])
    best_meta_method = next(m for m in metas if best_meta in rows[m])
    match = next((r for r in rows["strainer-10"] if r["test_psnr"] >= best_meta["test_psnr"]),
                 None)
    data = dict(data=label, machine=common.machine(cfg), rows=rows,
                quality=f"mean test PSNR after {cfg['cost_fit_steps']} fitting steps",
                best_meta=dict(best_meta, method=best_meta_method), strainer_match=match,
                config={k: cfg[k] for k in ("size", "width", "layers", "shared", "lr",
                                             "cost_budgets", "cost_meta", "cost_fit_steps",
                                             "meta_inner_steps", "seed")})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for m, rs in rows.items():
        for ax, key in zip(axes, ("wall_s", "grad_evals")):
            ax.plot([r[key] for r in rs], [r["test_psnr"] for r in rs], marker="o", label=m)
    for ax, what in zip(axes, ("pretraining wall time (s)", "gradient evaluations")):
        ax.set_xscale("log")
        ax.set_xlabel(what)
        ax.set_ylabel(data["quality"] + " (dB)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Pretraining cost vs test quality ({common.machine(cfg)})", fontsize=9)
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
