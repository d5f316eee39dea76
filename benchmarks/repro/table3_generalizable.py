"""Paper Table 3, reduced scale: STRAINER-10 and SIREN against the generalizable INRs
TransINR and IPC, each as a feed-forward prediction and with test-time optimisation (TTO)
of every hyponet weight from it, on the first ``gen_test_images`` MRI test slices at
``gen_size`` px; PSNR / SSIM after the same ``gen_fit_steps`` fitting steps for every fitted
method. TransINR / IPC (transformer ``gen_*`` settings of preregistration.toml) are trained
on the 69 embedded MNI slices (every slice within 5 mm of a test or validation slice left
out) until their validation PSNR flattens: a feed-forward check on the 2 validation slices
every ``gen_check_every`` steps, stopping at the first that gains less than
``gen_min_gain`` dB over the previous, or at ``gen_max_steps`` (the stated budget); the
curve and the stop reason go into the JSON. Their hyponet is the preset's network."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch

import common
import table2_ood
from strainer_fast.data import default_split, load_images
from strainer_fast.generalizable import fit_generalizable, train_generalizable

NAME = "table3_generalizable"
GEN_KEYS = ("gen_size", "gen_test_images", "gen_fit_steps", "gen_dim", "gen_depth",
            "gen_heads", "gen_patch", "gen_groups", "gen_rank", "gen_max_steps",
            "gen_check_every", "gen_min_gain", "gen_batch", "gen_lr")


def run(cfg: dict, out: Path) -> dict:
    size, steps = cfg["gen_size"], cfg["gen_fit_steps"]
    if size % cfg["gen_patch"]:
        raise ValueError(f"gen_patch {cfg['gen_patch']} must divide gen_size {size}")
    train, train_names = load_images(default_split()[0], size)
    test, test_names = load_images(default_split()[1][:cfg["gen_test_images"]], size)
    models, training = {}, {}
    for kind in ("transinr", "ipc"):
        m, wall, cpu = common.timed(lambda kind=kind: train_generalizable(
            kind, size=size, **common.net(cfg), dim=cfg["gen_dim"], depth=cfg["gen_depth"],
            heads=cfg["gen_heads"], patch=cfg["gen_patch"], groups=cfg["gen_groups"],
            rank=cfg["gen_rank"], steps=cfg["gen_max_steps"], batch=cfg["gen_batch"],
            lr=cfg["gen_lr"], validate_every=cfg["gen_check_every"],
            min_gain=cfg["gen_min_gain"], **common.opts(cfg)))
        models[kind] = m
        training[kind] = dict(wall_s=wall, cpu_s=cpu,
                              parameters=sum(p.numel() for p in m.parameters()),
                              validation_psnr=m.meta["validation_psnr"],
                              train_images=m.meta["train_images"], steps=m.meta["steps"],
                              max_steps=m.meta["max_steps"], stop=m.meta["stop"],
                              validation_curve=m.meta["validation_curve"])
    # STRAINER-10 and SIREN through table2's memo: with gen_size == small_size and the same
    # steps, run_all reuses table2's encoder (same key) and its SIREN fit of these slices.
    mri = "in-domain train" if not cfg.get("train") else "MRI train"
    enc = common.pretrained(cfg, mri, train, shared=cfg["shared"],
                            steps=cfg["natural_pretrain_steps"], seed=cfg["seed"])
    fit_cfg = dict(cfg, natural_steps=steps)
    results = {"siren": table2_ood.fitted(fit_cfg, "MRI test slices", test, "siren"),
               "strainer-10": table2_ood.fitted(fit_cfg, "MRI test slices", test,
                                                "strainer-10 (MRI, gray)", enc.layers)}
    for kind, model in models.items():
        for tto in (False, True):
            method = f"{kind}-tto" if tto else kind
            results[method] = fit_generalizable(
                test, model, tto=tto, steps=steps, lr=cfg["lr"], log_every=cfg["log_every"],
                progress=cfg["progress"], desc=f"fit {method}")
    data = dict(data=f"embedded MNI MRI slices: the first {len(test_names)} test slices "
                f"({', '.join(test_names)}) at {size}px; STRAINER-10 pretrained on the 10 "
                "train slices; TransINR / IPC trained on the 69 embedded MNI slices of "
                "`strainer_fast/datasets/mri_slices` (no slice within 5 mm of a test or "
                "validation slice)",
                machine=common.machine(cfg), threads=torch.get_num_threads(), scale="reduced",
                test=test_names, training=training,
                strainer_pretrain=dict(wall_s=enc.wall_s, cpu_s=enc.cpu_s),
                methods={m: common.curve_metrics(r, test_names) for m, r in results.items()},
                config={"width": cfg["width"], "layers": cfg["layers"],
                        "shared": cfg["shared"], "w0": cfg["w0"], "lr": cfg["lr"],
                        "pretrain_steps": cfg["natural_pretrain_steps"], "seed": cfg["seed"],
                        **{k: cfg[k] for k in GEN_KEYS}})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, (m, d) in enumerate(data["methods"].items()):
        for ax, key in zip(axes, ("psnr", "ssim")):
            if len(d["step"]) == 1:  # feed-forward: one value, drawn across the steps
                ax.axhline(d[key][0], ls="--", color=f"C{i}", label=f"{m} (feed-forward)")
            else:
                ax.plot(d["step"], d[key], color=f"C{i}", label=m)
    for ax, what in zip(axes, ("mean test PSNR (dB)", "mean test SSIM")):
        ax.set_xlabel("fitting step")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Reduced-scale Table 3: MRI test slices, {size}px, width {cfg['width']}",
                 fontsize=9)
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
