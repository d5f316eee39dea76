"""Paper Table 5: cost of pretraining STRAINER-10 vs a meta-learned init. For each budget of
pretraining steps: wall and process CPU time, gradient evaluations, and the test quality
(mean PSNR after a short fit) of the resulting init; then the cost for STRAINER-10 to equal
the best meta init. At ``small_size`` (secondary item); the STRAINER budgets are snapshots
of one pretraining run (its wall/CPU time up to that step)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import common
from strainer_fast.fit import fit_many
from strainer_fast.meta import meta_init

NAME = "table5_cost"


def grads_per_step(method: str, inner: int) -> int:
    """Backward passes (each over all training images at once) per pretraining step."""
    return {"strainer-10": 1, "fomaml": inner + 1, "maml": inner + 1, "reptile": inner}[method]


def run(cfg: dict, out: Path) -> dict:
    size = cfg["small_size"]
    train, _, test, _, label = common.in_domain_data(cfg, size)
    test = test[:cfg["test_images"]]
    inner, method = cfg["meta_inner_steps"], cfg["meta_method"]
    fit_kw = common.fit_kw(cfg, steps=cfg["cost_fit_steps"], log_every=0)
    budgets = cfg["cost_budgets"]
    enc = common.pretrained(cfg, "in-domain train", train[:10], shared=cfg["shared"],
                            steps=max(budgets), seed=cfg["seed"], snapshots=tuple(budgets))
    snaps = {**enc.snapshots, max(budgets): (enc.layers, enc.wall_s, enc.cpu_s)}

    def quality(init: str, weights) -> float:
        return float(np.mean(fit_many(test, init, init_weights=weights, **fit_kw).psnr[-1]))

    rows: dict[str, list[dict]] = {"strainer-10": [], method: []}
    for budget in budgets:
        layers, wall, cpu = snaps[budget]
        rows["strainer-10"].append(dict(steps=budget, wall_s=wall, cpu_s=cpu, grad_evals=budget,
                                        test_psnr=quality("strainer", layers)))
    for budget in cfg["cost_meta_budgets"]:
        weights, wall, cpu = common.timed(lambda: meta_init(
            train, method, steps=budget, inner_steps=inner, lr=cfg["lr"], **common.net(cfg),
            **common.opts(cfg)))
        rows[method].append(dict(steps=budget, wall_s=wall, cpu_s=cpu,
                                 grad_evals=budget * grads_per_step(method, inner),
                                 test_psnr=quality("meta", weights)))
    best_meta = max(rows[method], key=lambda r: r["test_psnr"])
    match = next((r for r in rows["strainer-10"] if r["test_psnr"] >= best_meta["test_psnr"]),
                 None)
    data = dict(data=f"{label}, first {len(test)} test images", machine=common.machine(cfg),
                rows=rows, quality=f"mean test PSNR after {cfg['cost_fit_steps']} fitting steps",
                best_meta=dict(best_meta, method=method), strainer_match=match,
                config=dict(size=size, width=cfg["width"], layers=cfg["layers"],
                            shared=cfg["shared"], lr=cfg["lr"], cost_budgets=budgets,
                            cost_meta_budgets=cfg["cost_meta_budgets"],
                            cost_fit_steps=cfg["cost_fit_steps"], meta_inner_steps=inner,
                            seed=cfg["seed"]))
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
    fig.suptitle(f"Pretraining cost vs test quality, {size}px ({common.machine(cfg)})",
                 fontsize=9)
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
