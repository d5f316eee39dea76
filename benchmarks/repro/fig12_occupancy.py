"""Paper Fig. 12: 3D occupancy, STRAINER (pretrained on the embedded chairs) vs SIREN on the
embedded statue, at width ``occupancy_width``, by running ``strainer-fast occupancy demo``
with the preset's sizes (IoU vs step)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt

import common
from strainer_fast import cli
from strainer_fast.config import flat_fields

NAME = "fig12_occupancy"


def run(cfg: dict, out: Path) -> dict:
    folder = out / NAME
    options = {f"--{name}" for name, *_ in flat_fields(cli.COMMANDS["occupancy demo"][0])}
    sizes = {"--res": cfg["occupancy_res"], "--points": cfg["occupancy_points"],
             "--width": cfg["occupancy_width"], "--layers": cfg["occupancy_layers"],
             "--shared": cfg["occupancy_shared"],
             "--pretrain-steps": cfg["occupancy_pretrain_steps"],
             "--steps": cfg["occupancy_steps"], "--seed": cfg["seed"]}
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
    data = dict(machine=common.machine(cfg), command="strainer-fast " + " ".join(shown),
                methods=metrics.get("methods", {}), wall_s=wall, cpu_s=cpu,
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
