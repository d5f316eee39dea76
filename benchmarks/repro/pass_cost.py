"""Wall and CPU time of one network pass ("image-step") of the preset's network at several
image sides and widths, the unit of the cpu preset's budget arithmetic (``budget.py``).

``python benchmarks/repro/pass_cost.py [--sizes 178] [--widths 32,48,...] [--steps 40]``:
times ``fit_many`` of one random image per (side, width) (one pass = forward + backward +
Adam of one network of ``layers`` layers; a STRAINER-10 pretraining step costs about the
same, the shared encoder dominates: see ``budget.py``). Defaults: the side and the width
candidates of ``[choices]`` in preregistration.toml. Prints a table; ``--out FILE`` also
writes JSON, one row per (size, width)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import common
from strainer_fast.fit import fit_many


def measure_pass(cfg: dict, size: int, width: int, steps: int) -> dict:
    """{size, width, wall_ms, cpu_ms}: the mean cost (ms) of one pass of a width-``width``
    network (``cfg``'s depth, w0, lr, precision, value range, device) on one random
    ``size`` x ``size`` grayscale image, over ``steps`` steps after a 2-step warm-up."""
    image = torch.rand(1, size, size, 1, generator=torch.Generator().manual_seed(0))
    kw = dict(steps=steps, lr=cfg["lr"], log_every=0, width=width, layers=cfg["layers"],
              w0=cfg["w0"], **dict(common.opts(cfg), progress=False))
    fit_many(image, "siren", **dict(kw, steps=2))  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    fit_many(image, "siren", **kw)
    return dict(size=size, width=width, wall_ms=(time.perf_counter() - t0) / steps * 1e3,
                cpu_ms=(time.process_time() - c0) / steps * 1e3)


def main() -> None:
    choices = common.PREREG["choices"]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=str(choices["width_size"]))
    p.add_argument("--widths", default=",".join(map(str, choices["width_candidates"])))
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    cfg = common.preset("cpu")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for width in (int(w) for w in args.widths.split(",")):
            rows.append(measure_pass(cfg, size, width, args.steps))
            print(f"{size:4d}px, width {width:4d}: {rows[-1]['wall_ms']:8.1f} ms wall, "
                  f"{rows[-1]['cpu_ms']:8.1f} ms CPU per pass", flush=True)
    if args.out:
        args.out.write_text(json.dumps(dict(machine=common.machine(cfg), layers=cfg["layers"],
                                            threads=torch.get_num_threads(), rows=rows),
                                       indent=1))


if __name__ == "__main__":
    main()
