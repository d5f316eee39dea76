"""Paper Table 6: inverse problems. Super-resolution (x4 area average) and denoising
(gaussian:0.1) of the first ``test_images`` MRI test slices at ``task_size``, SIREN vs
STRAINER-10 (pretrained on the MRI train split; encoder / decoder learning rates x
``strainer_lr``, chosen on the validation split): PSNR vs step, and the steps and wall time
STRAINER needs to reach SIREN's final PSNR."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

import common
from strainer_fast.tasks.denoise import add_noise, denoise
from strainer_fast.tasks.superres import downsample, superres

NAME = "table6_inverse"
SCALE, NOISE = 4, "gaussian:0.1"


def reach(metrics: dict, value: float) -> tuple[int | None, float | None]:
    """(first logged step, its wall time in s) with mean PSNR >= value; (None, None) if never."""
    for step, psnr, wall in zip(metrics["step"], metrics["psnr"], metrics["wall_s"]):
        if psnr >= value:
            return step, wall
    return None, None


def run(cfg: dict, out: Path) -> dict:
    size = cfg["task_size"]
    train, _, test, names, label = common.in_domain_data(cfg, size)
    test, names = test[:cfg["test_images"]], names[:cfg["test_images"]]
    enc = common.pretrained(cfg, "in-domain train", train[:10], shared=cfg["shared"],
                            steps=cfg["task_pretrain_steps"], seed=cfg["seed"])
    lr = tuple(float(x) for x in cfg["strainer_lr"])
    kw = common.fit_kw(cfg, steps=cfg["task_steps"])
    problems = {f"super-resolution x{SCALE}": lambda init, w, tl: superres(
                    downsample(test, SCALE), SCALE, init, init_weights=w, reference=test,
                    transfer_lr=tl, **kw),
                f"denoising {NOISE}": lambda init, w, tl: denoise(
                    add_noise(test, NOISE, cfg["seed"]), init, init_weights=w, clean=test,
                    transfer_lr=tl, **kw)}
    tasks = {}
    for task, solve in problems.items():
        rows = {"siren": common.curve_metrics(solve("siren", None, (1.0, 1.0)), names),
                "strainer": common.curve_metrics(solve("strainer", enc.layers, lr), names)}
        target = rows["siren"]["psnr"][-1]
        step, wall = reach(rows["strainer"], target)
        tasks[task] = dict(methods=rows, siren_final_psnr=target, strainer_steps_to_siren=step,
                           strainer_wall_to_siren_s=wall,
                           siren_wall_s=rows["siren"]["wall_s"][-1])
    data = dict(data=f"{label}, first {len(names)} test images", machine=common.machine(cfg),
                test=names, tasks=tasks, strainer_lr=list(lr),
                config=dict(size=size, width=cfg["width"], layers=cfg["layers"],
                            shared=cfg["shared"], lr=cfg["lr"], steps=cfg["task_steps"],
                            pretrain_steps=cfg["task_pretrain_steps"], seed=cfg["seed"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, (task, t) in zip(axes[0], tasks.items()):
        for m, d in t["methods"].items():
            ax.plot(d["step"], d["psnr"], label=m)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("fitting step")
        ax.set_ylabel("mean PSNR vs clean image (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Inverse problems, {size}px MRI test slices")
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
