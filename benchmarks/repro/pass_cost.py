"""Wall and CPU time of one network pass ("image-step") of the preset's network at several
image sides, the unit of the cpu preset's budget arithmetic in preregistration.toml.

``python benchmarks/repro/pass_cost.py [--sizes 32,48,64,96] [--steps 40]``: times
``fit_many`` of one random image per side (one pass = forward + backward + Adam of one
width-``width`` network; a STRAINER-10 pretraining step costs about the same, the shared
encoder dominates). Prints a table; ``--out FILE`` also writes JSON."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import common
from strainer_fast.fit import fit_many


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="32,48,64,96")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    cfg = common.preset("cpu")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        image = torch.rand(1, size, size, 1, generator=torch.Generator().manual_seed(0))
        fit_many(image, "siren", steps=2, lr=cfg["lr"], log_every=0, progress=False,
                 **common.net(cfg))  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        fit_many(image, "siren", steps=args.steps, lr=cfg["lr"], log_every=0, progress=False,
                 **common.net(cfg))
        rows.append(dict(size=size, wall_ms=(time.perf_counter() - t0) / args.steps * 1e3,
                         cpu_ms=(time.process_time() - c0) / args.steps * 1e3))
        print(f"{size:4d}px: {rows[-1]['wall_ms']:7.1f} ms wall, {rows[-1]['cpu_ms']:7.1f} ms "
              "CPU per pass", flush=True)
    if args.out:
        args.out.write_text(json.dumps(dict(machine=common.machine(cfg), width=cfg["width"],
                                            layers=cfg["layers"], rows=rows), indent=1))


if __name__ == "__main__":
    main()
