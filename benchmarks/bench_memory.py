"""Memory of large-signal fitting: peak RSS against signal size, and the PSNR cost of
point minibatches at equal wall time.

  python benchmarks/bench_memory.py rss     # peak RSS, 256^2 .. 4096^2 (nice it)
  python benchmarks/bench_memory.py psnr    # equal wall time (a speed measurement:
                                            #   run it with the cores to itself)
  python benchmarks/bench_memory.py report  # memory.md + memory.png from both JSON files

Signal: the embedded MRI slice ``mni_z062.png`` of the tuning-train split
(``data.validation_split``; never a test slice), grayscale, 233 px upscaled by the loader
(bilinear) to each size. ``rss``: every (size, mode) runs in a fresh interpreter (its
VmHWM, which unlike ru_maxrss does not inherit the forking parent's RSS; ru_maxrss is
recorded too): load the image, fit a few steps with ``points`` per step or the full grid,
evaluate PSNR on the full grid (chunked) at step 0 and the end. Full-grid runs whose
up-front estimate (``memory.run_bytes``) exceeds ``--full-cap`` GiB are not run, to spare
the shared machine; those the machine refuses are recorded with the refusal.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_name  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SLICE = "mni_z062.png"
NET = dict(width=64, layers=5)  # the occupancy CPU preset's network: 2-core budget


def slice_path() -> Path:
    from strainer_fast.data import validation_split

    path = [p for p in validation_split()[0] if p.name == SLICE]
    assert path, f"{SLICE} is not in the tuning-train split"
    return path[0]


def machine() -> dict:
    return dict(cpu=cpu_name(), threads=torch.get_num_threads(), torch=torch.__version__,
                load_avg=os.getloadavg(), note="2 cores shared with other jobs (niced)")


def child(size: int, points: int, steps: int) -> dict:
    """One run in this (fresh) interpreter; points 0 = the full grid."""
    from strainer_fast import fit
    from strainer_fast.data import load_images

    t0, c0 = time.perf_counter(), time.process_time()
    image, _ = load_images(slice_path(), size, gray=True)
    r = fit(image[0], "siren", steps=steps, log_every=0, points=points or None,
            progress=False, device="cpu", **NET)
    hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
    return dict(vmhwm_mb=int(hwm.split()[1]) / 1024,
                ru_maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                psnr=[p[0] for p in r.psnr], wall_s=time.perf_counter() - t0,
                cpu_s=time.process_time() - c0)


def run_child(size: int, points: int, steps: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "_child", str(size), str(points),
                           str(steps)], capture_output=True, text=True)
    if proc.returncode:
        return dict(error=proc.stderr.strip().splitlines()[-1])
    return json.loads(proc.stdout.splitlines()[-1])


def rss(args) -> None:
    from strainer_fast import memory

    rows = []
    base = run_child(16, 16, 1)  # interpreter + torch + extension, a tiny fit
    for size in args.sizes:
        for points in (args.points, 0):
            est = memory.run_bytes(signals=1, grid=size * size, channels=1,
                                   points=points or None, **NET)
            row = dict(size=size, points=points or None, estimate_mb=est / 2 ** 20)
            if points == 0 and est > args.full_cap * 2 ** 30:
                try:
                    memory.check_fits("cpu", "full grid", signals=1, grid=size * size,
                                      channels=1, points=None, **NET)
                    row["skipped"] = f"estimate above --full-cap {args.full_cap} GiB"
                except memory.WontFit as exc:
                    row["refused"] = str(exc)
            else:
                row.update(run_child(size, points, args.steps))
            print(row, file=sys.stderr, flush=True)
            rows.append(row)
    out = dict(machine=machine(), image=f"{SLICE} (tuning-train split) upscaled, gray",
               net=NET, steps=args.steps, baseline=base, rows=rows)
    (RESULTS / "memory_rss.json").write_text(json.dumps(out, indent=1))


def psnr(args) -> None:
    """Full grid vs point minibatches on one image, each given ``budget`` s of training."""
    from strainer_fast import fit
    from strainer_fast.data import load_images

    image, _ = load_images(slice_path(), args.size, gray=True)
    runs = []
    for points in [0, *args.batch]:
        kw = dict(points=points or None, progress=False, device="cpu", **NET)
        probe = fit(image[0], "siren", steps=3, log_every=0, **kw)  # step time
        steps = max(4, int(args.budget / (probe.wall_s[-1] / 3)))
        c0 = time.process_time()
        r = fit(image[0], "siren", steps=steps, log_every=max(1, steps // 10), **kw)
        cpu = time.process_time() - c0
        within = [i for i, w in enumerate(r.wall_s) if w <= args.budget]
        i = within[-1]
        runs.append(dict(points=points or None, steps_planned=steps, step=r.step,
                         wall_s=r.wall_s, psnr=[p[0] for p in r.psnr],
                         at_budget=dict(step=r.step[i], wall_s=r.wall_s[i],
                                        psnr=r.psnr[i][0]), cpu_s=cpu))
        print(points, runs[-1]["at_budget"], file=sys.stderr, flush=True)
    out = dict(machine=machine(), image=f"{SLICE} (tuning-train split) {args.size} px, gray",
               net=NET, budget_s=args.budget, lr=1e-4, runs=runs)
    (RESULTS / "memory_psnr.json").write_text(json.dumps(out, indent=1))


def markdown(a: dict, b: dict) -> str:
    """The two result tables: peak RSS per signal size (``a``: memory_rss.json) and PSNR at
    equal wall time per points-per-step (``b``: memory_psnr.json)."""
    from strainer_fast import memory

    m = a["machine"]
    lines = [f"Machine: {m['cpu']}, {m['threads']} threads, torch {m['torch']}; {m['note']}.",
             f"Network: SIREN width {a['net']['width']}, {a['net']['layers']} layers; image: "
             f"{a['image']}. Baseline (interpreter + torch + a 16 px fit): "
             f"{a['baseline']['vmhwm_mb']:.0f} MB.", "",
             f"Peak RSS (VmHWM of a fresh process: load, {a['steps']} steps, full-grid PSNR "
             "at step 0 and the end):", "",
             "| signal | points / step | up-front estimate (MB) | peak RSS (MB) "
             "| minus baseline (MB) | wall (s) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in a["rows"]:
        pts = "full grid" if r["points"] is None else str(r["points"])
        if "vmhwm_mb" in r:
            peak, wall = f"{r['vmhwm_mb']:.0f}", f"{r['wall_s']:.0f}"
            grown = f"{r['vmhwm_mb'] - a['baseline']['vmhwm_mb']:.0f}"
        else:
            peak, grown, wall = ("refused up front" if "refused" in r else
                                 r.get("skipped", r.get("error", "?"))), "-", "-"
        est = memory.run_bytes(signals=1, grid=r["size"] ** 2, channels=1, points=r["points"],
                               **a["net"]) / 2 ** 20  # the current estimate
        lines.append(f"| {r['size']}^2 | {pts} | {est:.0f} | {peak} | {grown} | {wall} |")
    lines += ["", f"PSNR at equal wall time ({b['image']}, {b['budget_s']:.0f} s of training "
              "each, Adam lr 1e-4; PSNR on the full grid):", "",
              "| points / step | step (last log point in budget) | wall (s) | CPU (s, whole run) "
              "| PSNR (dB) |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in b["runs"]:
        pts = "full grid" if r["points"] is None else str(r["points"])
        at = r["at_budget"]
        lines.append(f"| {pts} | {at['step']} | {at['wall_s']:.1f} | {r['cpu_s']:.0f} | "
                     f"{at['psnr']:.2f} |")
    return "\n".join(lines) + "\n"


def report(args) -> None:
    a = json.loads((RESULTS / "memory_rss.json").read_text())
    b = json.loads((RESULTS / "memory_psnr.json").read_text())
    md = markdown(a, b)
    (RESULTS / "memory.md").write_text(md)
    print(md, end="")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for full, label in ((False, "points / step"), (True, "full grid")):
        rows = [r for r in a["rows"] if (r["points"] is None) == full and "vmhwm_mb" in r]
        ax1.plot([r["size"] for r in rows], [r["vmhwm_mb"] for r in rows], "o-", label=label)
    ax1.set(xscale="log", yscale="log", xlabel="image side (px)", ylabel="peak RSS (MB)")
    ax1.legend()
    for r in b["runs"]:
        ax2.plot(r["wall_s"], r["psnr"], label="full grid" if r["points"] is None
                 else f"{r['points']} points")
    ax2.axvline(b["budget_s"], color="gray", ls=":")
    ax2.set(xlabel="training wall time (s)", ylabel="PSNR (dB)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "memory.png", dpi=100)


def main() -> None:
    if sys.argv[1:2] == ["_child"]:
        print(json.dumps(child(*map(int, sys.argv[2:5]))))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="part", required=True)
    r = sub.add_parser("rss")
    r.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")],
                   default=[256, 512, 1024, 2048, 4096])
    r.add_argument("--points", type=int, default=65536)
    r.add_argument("--steps", type=int, default=2)
    r.add_argument("--full-cap", type=float, default=4.0, help="GiB")
    q = sub.add_parser("psnr")
    q.add_argument("--size", type=int, default=512)
    q.add_argument("--batch", type=lambda s: [int(v) for v in s.split(",")],
                   default=[16384, 65536])
    q.add_argument("--budget", type=float, default=40.0)
    sub.add_parser("report")
    args = p.parse_args()
    RESULTS.mkdir(exist_ok=True)
    {"rss": rss, "psnr": psnr, "report": report}[args.part](args)


if __name__ == "__main__":
    main()
