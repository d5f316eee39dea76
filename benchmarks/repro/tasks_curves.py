"""Item 7: super-resolution, denoising and 3D occupancy, STRAINER vs SIREN, by running the
``strainer-fast`` task commands (``strainer_fast.tasks``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt

import claims as rules
import common
from strainer_fast import cli
from strainer_fast.config import flat_fields

NAME = "tasks_curves"
ROOT = Path(__file__).resolve().parents[2]
WANTED = ("superres", "denoise", "occupancy")
IOU_MARGIN = 0.01


def _command(task: str) -> tuple[list[str], set[str]]:
    """The task's command words (occupancy: its ``demo``) and the options they take."""
    words = "occupancy demo" if task == "occupancy" else task
    cls = cli.COMMANDS[words][0]
    return words.split(), {f"--{name}" for name, *_ in flat_fields(cls)}


def run(cfg: dict, out: Path) -> dict:
    tasks = list(WANTED)
    data = dict(machine=common.machine(cfg), missing=[], tasks={}, commands={})
    # quick preset: our CPU sizes where the command takes them; full: the tasks' GPU defaults
    sizes = {} if cfg["preset"] == "full" else {
        "--size": cfg["size"], "--width": cfg["width"], "--steps": cfg["steps"],
        "--pretrain-steps": cfg["pretrain_steps"], "--log-every": cfg["log_every"],
        "--res": cfg["occupancy_res"], "--points": cfg["occupancy_points"]}
    for task in tasks:
        folder = out / NAME / task
        words, options = _command(task)
        argv = [*words, "--out", str(folder), "--seed", str(cfg["seed"])]
        argv += [x for k, v in sizes.items() if k in options for x in (k, str(v))]
        if not cfg["progress"] and "--no-progress" in options:
            argv.append("--no-progress")
        shown = [os.path.relpath(a, ROOT) if a == str(folder) else a for a in argv]
        data["commands"][task] = "strainer-fast " + " ".join(shown)  # paths from the repo root
        if cli.main(argv) != 0:
            data["tasks"][task] = dict(error="command failed (see its stderr)")
            continue
        metrics = json.loads((folder / "metrics.json").read_text())
        methods = metrics.get("methods", {})
        key = "psnr" if all(m.get("psnr") for m in methods.values()) else "iou"
        data["tasks"][task] = dict(title=metrics.get("title", task), metric=key,
                                   methods=methods)
    curves = {t: d for t, d in data["tasks"].items() if d.get("methods")}
    if curves:
        fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4), squeeze=False)
        for ax, (task, t) in zip(axes[0], curves.items()):
            for m, d in t["methods"].items():
                if d.get(t["metric"]):
                    ax.plot(d["step"], d[t["metric"]], label=m)
            ax.set_title(t["title"], fontsize=9)
            ax.set_xlabel("fitting step")
            ax.set_ylabel("mean PSNR (dB)" if t["metric"] == "psnr" else "IoU")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(out / f"{NAME}.png", dpi=110)
        plt.close(fig)
    return common.save_json(out, NAME, data)


def claims(d: dict) -> tuple[list[str], list[rules.Claim]]:
    """Report lines and claims: STRAINER beats SIREN on each task that ran."""
    lines = [f"- `{c}`" for c in d["commands"].values()]
    if d["missing"]:
        lines += ["", f"Not yet available in this install: {', '.join(d['missing'])}."]
    found = [rules.Claim(f"STRAINER beats SIREN at {t}", "not measured", "command not "
                         "available yet", "-") for t in d["missing"]]
    for task, r in d["tasks"].items():
        ms = r.get("methods", {})
        if r.get("error") or not {"siren", "strainer"} <= ms.keys():
            found.append(rules.Claim(f"STRAINER beats SIREN at {task}", "not measured",
                                     r.get("error", "no curves for siren and strainer"), "-"))
            continue
        if r["metric"] == "iou":
            a, b = ms["strainer"]["iou"][-1], ms["siren"]["iou"][-1]
            found.append(rules.Claim(
                f"STRAINER beats SIREN at {task} (final IoU)",
                "supported" if a - b >= IOU_MARGIN else "partly" if a > b else "not supported",
                f"IoU {a:.3f} vs {b:.3f} at step {ms['siren']['step'][-1]}",
                f"supported if >= {IOU_MARGIN} higher, partly if higher"))
            continue
        fin = {m: [v["psnr"][-1] for v in ms[m]["per_signal"].values()]
               for m in ("siren", "strainer")}
        found.append(rules.beats("strainer", fin["strainer"], "siren", fin["siren"],
                                 f"STRAINER beats SIREN at {task} (final PSNR)"))
    return lines, found
