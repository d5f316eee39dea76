"""Chooses the stabiliser of the fast fitting recipe on the VALIDATION split only (issue 28).

Pre-registered before it was run (the rule below is in the committed script and in its JSON):

- Split: ``strainer_fast.data.validation_split()``: the 2 validation MRI slices (fitted), the 8
  tuning-train slices (STRAINER pretraining). The test slices are never loaded.
- Regime: 178 px, width 64, 6 layers (the time-to-quality benchmark's), targets on [-1, 1]
  values (PSNR on [0, 1] pixels), Adam, full grid, ``--steps`` (500) steps per run, the library's
  ``fit_many`` (fused exact), so every mode's schedule spans those 500 steps.
- Inits: ``siren``: the validation recipe (weight scale 1.5, lr 1e-3); ``strainer``: an encoder
  pretrained on the 8 tuning-train slices (500 steps, lr 1e-4, 5 shared layers) with a fresh
  decoder, fitted at the recipe's lr 1e-3. A reference row (not a candidate): STRAINER at the
  paper's lr 1e-4, plain Adam.
- Candidates: ``stability.STABILIZE``. Stage 1: off (plain Adam), cosine (warm-up + cosine
  decay), clip (per-network gradient-norm clipping), revert (roll back + halve the step on a
  1 dB drop). Stage 2, added after stage 1 had run (its warm-up made cosine miss the 30 dB
  bound; revert missed 45 dB for SIREN; no SIREN candidate had fewer drops within the bound):
  decay (cosine decay without warm-up), decay+clip, decay+revert. Stage 3, added while stage 2
  ran (decay had 1 drop but missed the 45 dB bound: 256 vs 248 steps): amsgrad, amsgrad+clip.
  Stage 4, added before the stage-3 results for amsgrad+clip and the STRAINER init were in
  (amsgrad: 8 drops, as off): wsd (the base rate for half the steps, then cosine decay).
  The rule was not changed; it is applied to all ten.
- Curve: mean training PSNR of the 2 slices per step; drops: ``stability.find_drops`` per
  slice (> 1 dB below the best so far), counted when the drop episode starts after step 100.
- Rule, per init: eligible = modes that reach every target in (30, 40, 45 dB) that "off"
  reaches, each within 1.10x the steps "off" needs; among them the fewest drops after step 100
  (summed over the slices), then the smallest summed depth of those drops, then the order of
  ``STABILIZE`` (off first). Steps, not wall time (wall time is measured by the benchmark,
  machine idle); wall seconds are recorded too.

Resumable: each run is written to ``results/tune_stabilizer/<init>_<mode>.json`` as it
finishes and skipped when present (``--fresh`` starts over); ``summary`` (run at the end
automatically) writes ``results/tune_stabilizer.json`` with ``chosen`` per init.

    python benchmarks/tune_stabilizer.py            # all runs, then the summary
    python benchmarks/tune_stabilizer.py summary
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch

import strainer_fast
from machine import cpu_name
from strainer_fast.checkpoint import load_encoder
from strainer_fast.data import load_images, validation_split
from strainer_fast.fit import fit_many
from strainer_fast.pretrain import pretrain
from strainer_fast.stability import STABILIZE, find_drops

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = RESULTS / "tune_stabilizer"
ROOT = RESULTS.parents[1]
TARGETS = (30.0, 40.0, 45.0)
AFTER_STEP = 100
MAX_EXTRA = 1.10
RECIPE = dict(siren=dict(lr=1e-3, weight_scale=1.5), strainer=dict(lr=1e-3))
REFERENCE = ("strainer", "off", 1e-4)


def steps_to(curve: np.ndarray, target: float) -> int | None:
    """First step (1-based) whose mean PSNR is >= ``target``, or None."""
    hit = np.flatnonzero(curve >= target)
    return int(hit[0]) + 1 if hit.size else None


def drops_after(per_slice: np.ndarray, start: int = AFTER_STEP) -> list[float]:
    """Depths (dB) of the > 1 dB drops that start after step ``start``, over all slices."""
    return [d["depth_db"] for k in range(per_slice.shape[1])
            for d in find_drops(per_slice[:, k]) if d["start"] >= start]


def record(per_slice: list[list[float]], wall_s: float) -> dict:
    c = np.asarray(per_slice)  # [step][slice]
    mean = c.mean(1)
    depths = drops_after(c)
    return dict(steps=int(c.shape[0]), wall_s=wall_s, psnr_mean=mean.round(3).tolist(),
                final_db=float(mean[-1]), best_db=float(mean.max()),
                steps_to={f"{t:g} dB": steps_to(mean, t) for t in TARGETS},
                drops_after_100=dict(count=len(depths), depths_db=depths,
                                     sum_depth_db=float(sum(depths)),
                                     max_depth_db=max(depths, default=0.0)))


def choose(runs: dict[str, dict]) -> tuple[str, dict]:
    """The pre-registered rule over one init's runs {mode: record}."""
    off = runs["off"]["steps_to"]
    verdict = {}
    for mode in STABILIZE:
        r = runs[mode]["steps_to"]
        late = [t for t, s in off.items() if s is not None
                and (r[t] is None or r[t] > MAX_EXTRA * s)]
        verdict[mode] = dict(eligible=not late, too_slow_to=late)
    eligible = [m for m in STABILIZE if verdict[m]["eligible"]]
    best = min(eligible, key=lambda m: (runs[m]["drops_after_100"]["count"],
                                         runs[m]["drops_after_100"]["sum_depth_db"],
                                         STABILIZE.index(m)))
    return best, verdict


def machine() -> dict:
    return dict(cpu=cpu_name(), threads=torch.get_num_threads(),
                python=platform.python_version(), torch=torch.__version__,
                strainer_fast=strainer_fast.__version__, load_average=list(os.getloadavg()))


def summary(args: argparse.Namespace) -> None:
    runs: dict[str, dict] = {}
    for f in sorted(PARTS.glob("*.json")):
        d = json.loads(f.read_text())
        runs[d["name"]] = d
    out = dict(rule=__doc__.split("Pre-registered", 1)[1].split("Resumable")[0].strip(),
               settings=dict(size=args.size, width=args.width, layers=args.layers,
                             shared=args.shared, steps=args.steps,
                             pretrain_steps=args.pretrain_steps, recipe=RECIPE,
                             value_range="[-1, 1] targets, PSNR on [0, 1] pixels"),
               chosen={}, verdicts={}, runs=runs)
    for init in RECIPE:
        mine = {d["mode"]: d for d in runs.values() if d["init"] == init
                and d["lr"] == RECIPE[init]["lr"]}
        if set(mine) != set(STABILIZE):
            print(f"{init}: runs missing ({sorted(set(STABILIZE) - set(mine))}); no choice")
            continue
        out["chosen"][init], out["verdicts"][init] = choose(mine)
    (RESULTS / "tune_stabilizer.json").write_text(json.dumps(out, indent=1))
    for name, d in runs.items():
        a = d["drops_after_100"]
        print(f"{name:32s} final {d['final_db']:6.2f}  best {d['best_db']:6.2f}  "
              f"to {d['steps_to']}  drops>100: {a['count']} (max {a['max_depth_db']:.1f} dB)  "
              f"{d['wall_s']:.0f} s")
    print("chosen:", out["chosen"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", nargs="?", default="all", choices=("all", "summary"))
    ap.add_argument("--size", type=int, default=178)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--shared", type=int, default=5)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--pretrain-steps", type=int, default=500)
    ap.add_argument("--fresh", action="store_true", help="delete earlier runs first")
    ap.add_argument("--modes", default=",".join(STABILIZE),
                    help="only these candidates (comma-separated; default: all)")
    args = ap.parse_args()
    if args.part == "all":
        if args.fresh and PARTS.exists():
            shutil.rmtree(PARTS)
        PARTS.mkdir(parents=True, exist_ok=True)
        tune_paths, val_paths = validation_split()
        val, val_names = load_images(val_paths, args.size)
        net = dict(width=args.width, layers=args.layers, w0=30.0)
        modes = args.modes.split(",")
        grid = [(i, m, RECIPE[i]["lr"]) for i in RECIPE for m in STABILIZE if m in modes]
        grid += [REFERENCE] if REFERENCE[1] in modes else []
        encoder = None
        for init, mode, lr in grid:
            name = f"{init}_{mode}" + ("" if lr == RECIPE[init]["lr"] else f"_lr{lr:g}")
            path = PARTS / f"{name}.json"
            if path.exists():
                continue
            extra = {}
            if init == "strainer":
                # the same seeded encoder in every process: cached in the git-ignored build/
                saved = ROOT / "build" / f"tune_stabilizer_encoder_{args.pretrain_steps}.pt"
                if encoder is None and saved.exists():
                    encoder = load_encoder(saved)
                if encoder is None:
                    train, _ = load_images(tune_paths, args.size)
                    t0 = time.perf_counter()
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    encoder = pretrain(train, steps=args.pretrain_steps, lr=1e-4,
                                       shared=args.shared, progress=False, out=saved,
                                       **net).encoder()
                    print(f"pretraining: {time.perf_counter() - t0:.0f} s", flush=True)
                start = encoder
            else:
                start, extra = "siren", dict(net, weight_scale=RECIPE[init]["weight_scale"])
            r = fit_many(val, start, steps=args.steps, lr=lr, stabilize=mode, log_every=0,
                         progress=False, **extra)
            rec = dict(name=name, init=init, mode=mode, lr=lr, slices=val_names,
                       machine=machine(), **record(r.train_psnr, r.wall_s[-1]))
            path.write_text(json.dumps(rec, indent=1))
            print(f"{name}: final {rec['final_db']:.2f} dB, to {rec['steps_to']}, drops after "
                  f"{AFTER_STEP}: {rec['drops_after_100']['count']}, {rec['wall_s']:.0f} s",
                  flush=True)
    summary(args)


if __name__ == "__main__":
    main()
