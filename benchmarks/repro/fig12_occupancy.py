"""Paper Fig. 12: 3D occupancy, STRAINER (pretrained on the embedded chairs) vs SIREN on the
embedded statue, at width ``occupancy_width``, by running ``strainer-fast occupancy demo``
with the preset's sizes (IoU on the full ``occupancy_res``^3 grid vs step); the JSON's
``iou_at`` holds each method's IoU at the pre-registered ``occupancy_iou_steps``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt

import common
from strainer_fast import cli
from strainer_fast.config import flat_fields

NAME = "fig12_occupancy"


def eval_every(cfg: dict) -> int:
    """IoU evaluation interval: the largest that hits every ``occupancy_iou_steps`` step and
    the last step."""
    steps, at = cfg["occupancy_steps"], cfg["occupancy_iou_steps"]
    if not at or min(at) < 1 or max(at) > steps:
        raise ValueError(f"occupancy_iou_steps must lie in [1, occupancy_steps = {steps}], "
                         f"got {at}")
    return math.gcd(steps, *at)


def run(cfg: dict, out: Path) -> dict:
    folder = out / NAME
    options = {f"--{name}" for name, *_ in flat_fields(cli.COMMANDS["occupancy demo"][0])}
    sizes = {"--res": cfg["occupancy_res"], "--points": cfg["occupancy_points"],
             "--width": cfg["occupancy_width"], "--layers": cfg["occupancy_layers"],
             "--shared": cfg["occupancy_shared"],
             "--pretrain-steps": cfg["occupancy_pretrain_steps"],
             "--steps": cfg["occupancy_steps"], "--eval-every": eval_every(cfg),
             "--seed": cfg["seed"]}
    missing = sorted(set(sizes) - options)
    if missing:
        raise ValueError(f"occupancy demo does not take {missing}")
    argv = ["occupancy", "demo", "--out", str(folder)]
    argv += [x for k, v in sizes.items() for x in (k, str(v))]
    if not cfg["progress"]:
        argv.append("--no-progress")
    (code, wall, cpu) = common.timed(lambda: cli.main(argv))
    if code != 0:
        raise RuntimeError("strainer-fast occupancy demo failed (see its stderr)")
    metrics = json.loads((folder / "metrics.json").read_text())
    shown = [os.path.relpath(a, common.ROOT) if a == str(folder) else a for a in argv]
    methods = metrics.get("methods", {})
    data = dict(machine=common.machine(cfg), command="strainer-fast " + " ".join(shown),
                methods=methods, wall_s=wall, cpu_s=cpu,
                iou_at={m: {str(s): d["iou"][d["step"].index(s)]
                            for s in cfg["occupancy_iou_steps"]} for m, d in methods.items()},
                target_occupied_fraction=metrics.get("target_occupied_fraction"),
                config={k: cfg[k] for k in cfg if k.startswith("occupancy")})
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, d in data["methods"].items():
        if d.get("iou"):
            ax.plot(d["step"], d["iou"], label=m)
    ax.set_xlabel("fitting step")
    ax.set_ylabel("IoU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"3D occupancy, statue, {cfg['occupancy_res']}^3, width "
                 f"{cfg['occupancy_width']}", fontsize=9)
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
