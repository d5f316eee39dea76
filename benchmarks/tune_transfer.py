"""Chooses the levers of the STRAINER fast recipe on the VALIDATION split only (issue 24).

Pre-registered before it was run (2026-12-03; the rule below is in the committed script and in
its JSON):

- Split: ``strainer_fast.data.validation_split()``: STRAINER-8 pretrained on the 8
  tuning-train slices (``--pretrain-steps`` 500, lr 1e-4, 5 shared layers), fitted to the 2
  validation slices. The test slices are never loaded.
- Regime: 178 px, width 64, 6 layers, targets on [-1, 1] values (the library default; PSNR
  on [0, 1] pixels), the library's ``fit_many`` (fused exact), ``--steps`` (500) steps, the
  last iterate, full-grid PSNR every ``LOG_EVERY`` (5) steps; wall time = the fit's training
  time at that log point (metric evaluation excluded, every lever's own cost included, e.g.
  the error sampler's full-grid refresh).
- Start: the current STRAINER fast recipe (``recipes.FAST["strainer"]``: Adam lr 1e-3,
  stabiliser "decay"). Stages, each keeping the earlier stages' winners:
  1. ``transfer_lr`` (encoder, decoder multipliers): (1, 1), (0.3, 1), (0.3, 3), (1, 3);
  2. ``freeze``: 0, "auto" (stable rank), 1, 2;
  3. ``sampling``: uniform full grid, "error" with ``points`` = 1/4 of the grid;
  4. ``precision_schedule``: None, "bf16-then-exact" (only where the CPU has bf16
     instructions, else recorded as skipped).
- Targets: 40 dB and ``SIREN_TARGET``: the SIREN fast recipe's mean PSNR at step 500 on the
  same slices, measured first in the same run (its own row, the answer to "does STRAINER's
  recipe beat SIREN's").
- Rule, per stage: a candidate replaces the stage's current value only if it reaches both
  targets with at least 10% less wall time to each (``MIN_GAIN``) and no more drops > 1 dB
  after step 100 (summed over the slices, on the logged curve); among such candidates the
  least wall time to the higher target wins; otherwise (ties included) the current value
  stays.

Resumable: each fit is written to ``results/tune_transfer/<name>.json`` as it finishes and
reused when present with the same settings (``--fresh`` starts over); the summary is
``results/tune_transfer.{json,md}``.

    python benchmarks/tune_transfer.py [--steps 500] [--pretrain-steps 500]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from strainer_fast import ops
from strainer_fast.checkpoint import load_encoder
from strainer_fast.data import load_images, validation_split
from strainer_fast.fit import fit_many
from strainer_fast.pretrain import pretrain
from strainer_fast.recipes import FAST
from tune_stabilizer import AFTER_STEP, drops_after, machine

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = RESULTS / "tune_transfer"
# the pretrained encoder, reused by a later run (git-ignored build/; tests point it elsewhere)
BUILD = Path(os.environ.get("STRAINER_FAST_TUNE_TRANSFER_BUILD",
                            RESULTS.parents[1] / "build"))
LOG_EVERY = 5
MIN_GAIN = 0.10
STAGES: tuple[tuple[str, tuple], ...] = (
    ("transfer_lr", ((1.0, 1.0), (0.3, 1.0), (0.3, 3.0), (1.0, 3.0))),
    ("freeze", (0, "auto", 1, 2)),
    ("sampling", ("uniform", "error")),
    ("precision_schedule", (None, "bf16-then-exact")),
)
START = dict(transfer_lr=(1.0, 1.0), freeze=0, sampling="uniform", precision_schedule=None)


def curve_record(step: list[int], psnr: list[list[float]], wall_s: list[float],
                 targets: dict[str, float]) -> dict:
    """Steps and wall time to each target (first log point whose mean PSNR reaches it; None
    if never) and drops > 1 dB after step ``AFTER_STEP`` on the logged curve [log][slice]."""
    per = np.asarray(psnr)
    mean = per.mean(1)
    hits = {}
    for name, value in targets.items():
        i = np.flatnonzero(mean >= value)
        hits[name] = None if not i.size else dict(step=step[i[0]], wall_s=wall_s[i[0]])
    start = int(np.searchsorted(step, AFTER_STEP))
    depths = drops_after(per, start)
    return dict(final_db=float(mean[-1]), best_db=float(mean.max()), to=hits,
                drops_after_100=dict(count=len(depths), depths_db=depths),
                psnr_mean=mean.round(3).tolist(), step=step, wall_s=wall_s)


def better(cand: dict, cur: dict) -> bool:
    """The pre-registered entry rule: both targets reached, each >= MIN_GAIN less wall time
    than ``cur``, and no more drops."""
    if cand["drops_after_100"]["count"] > cur["drops_after_100"]["count"]:
        return False
    for t, hit in cur["to"].items():
        mine = cand["to"][t]
        if mine is None or (hit is not None and mine["wall_s"] > (1 - MIN_GAIN) * hit["wall_s"]):
            return False
    return True


def choose(current_value, runs: dict) -> tuple[object, str]:
    """Stage winner from {value: record} (``current_value`` among them): the candidate that
    passes ``better`` with the least wall time to the last target, else the current value."""
    cur = runs[repr(current_value)]
    last = list(cur["to"])[-1]
    passing = [v for v, r in runs.items() if v != repr(current_value) and better(r, cur)]
    if not passing:
        return current_value, "no candidate passes the entry rule: the current value stays"
    best = min(passing, key=lambda v: runs[v]["to"][last]["wall_s"])
    return runs[best]["value"], f"{best} passes the entry rule with the least wall time"


def name_of(levers: dict) -> str:
    return "strainer_" + "_".join(f"{k}={v}" for k, v in levers.items()).replace(" ", "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=178)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--shared", type=int, default=5)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--pretrain-steps", type=int, default=500)
    ap.add_argument("--parts", default=str(PARTS), help="folder of the per-fit results")
    ap.add_argument("--out", default=str(RESULTS / "tune_transfer"),
                    help="summary path without suffix (.json, .md)")
    ap.add_argument("--fresh", action="store_true", help="delete earlier fits first")
    args = ap.parse_args()
    parts = Path(args.parts)
    if args.fresh and parts.exists():
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("parts", "out", "fresh")}
    tune_paths, val_paths = validation_split()
    val, val_names = load_images(val_paths, args.size)
    net = dict(width=args.width, layers=args.layers, w0=30.0)
    base = dict(steps=args.steps, log_every=LOG_EVERY, keep="last", progress=False)

    def cached(name: str, make) -> dict:
        path = parts / f"{name}.json"
        if path.exists():
            rec = json.loads(path.read_text())
            if rec["settings"] == settings:
                return rec
        rec = dict(make(), name=name, settings=settings, slices=val_names, machine=machine())
        path.write_text(json.dumps(rec, indent=1))
        print(f"{name}: final {rec['final_db']:.2f} dB, to {rec['to']}, drops after "
              f"{AFTER_STEP}: {rec['drops_after_100']['count']}", flush=True)
        return rec

    siren = FAST["siren"]
    s = cached("siren_fast", lambda: curve_record(*(lambda r: (r.step, r.psnr, r.wall_s))(
        fit_many(val, "siren", lr=siren.lr, weight_scale=siren.weight_scale,
                 stabilize=siren.stabilize, **net, **base)), {"40 dB": 40.0}))
    targets = {"40 dB": 40.0, "SIREN fast @ final": s["final_db"]}
    saved = BUILD / (f"tune_transfer_encoder_{args.size}_{args.width}_{args.layers}_"
                     f"{args.shared}_{args.pretrain_steps}.pt")
    if saved.exists():
        encoder, pretrain_s = load_encoder(saved), None
    else:
        train, _ = load_images(tune_paths, args.size)
        t0 = time.perf_counter()
        saved.parent.mkdir(parents=True, exist_ok=True)
        encoder = pretrain(train, steps=args.pretrain_steps, lr=1e-4, shared=args.shared,
                           progress=False, out=saved, **net).encoder()
        pretrain_s = time.perf_counter() - t0
    strainer = FAST["strainer"]
    pixels = args.size * args.size
    levers = dict(START)
    stages = []
    for lever, values in STAGES:
        runs = {}
        skipped = None
        if lever == "precision_schedule" and not ops.CPU_HAS_NATIVE_BF16:
            skipped = "this CPU has no bf16 instructions: the schedule would run exact only"
            values = (None,)
        for value in values:
            trial = dict(levers, **{lever: value})
            extra = dict(points=pixels // 4) if trial["sampling"] == "error" else {}

            def make(trial=trial, extra=extra) -> dict:
                r = fit_many(val, encoder, lr=strainer.lr, stabilize=strainer.stabilize,
                             transfer_lr=trial["transfer_lr"], freeze=trial["freeze"],
                             sampling=trial["sampling"],
                             precision_schedule=trial["precision_schedule"], **extra, **base)
                return curve_record(r.step, r.psnr, r.wall_s, targets)

            runs[repr(value)] = dict(cached(name_of(trial), make), value=value, levers=trial)
        chosen, why = choose(levers[lever], runs)
        stages.append(dict(lever=lever, candidates=list(runs), chosen=chosen, why=why,
                           skipped=skipped, runs=runs))
        levers[lever] = chosen
    final = stages[-1]["runs"][repr(levers[stages[-1]["lever"]])]
    out = dict(rule=__doc__.split("Pre-registered", 1)[1].split("Resumable")[0].strip(),
               settings=settings, machine=machine(), recipe_start=dict(
                   lr=strainer.lr, stabilize=strainer.stabilize, **START),
               chosen=levers, targets=targets, siren_fast=s, strainer_chosen=final,
               pretrain_s=pretrain_s, stages=stages)
    path = Path(args.out)
    path.with_suffix(".json").write_text(json.dumps(out, indent=1, default=str))
    path.with_suffix(".md").write_text(markdown(out))
    print(markdown(out))


def markdown(r: dict) -> str:
    """Per stage and candidate: steps / wall s to each target, drops, final PSNR."""
    t = list(r["targets"])
    lines = [f"Validation slices {', '.join(r['siren_fast']['slices'])}; "
             f"{r['machine']['cpu']}, {r['machine']['threads']} threads. Targets: "
             + ", ".join(f"{k} ({v:.2f} dB)" for k, v in r["targets"].items()) + ".", "",
             "| stage | value | " + " | ".join(f"to {k}: step / s" for k in t)
             + " | drops > 1 dB after 100 | final dB |",
             "| --- | --- | " + " | ".join("---:" for _ in t) + " | ---: | ---: |"]

    def row(stage: str, value: str, rec: dict) -> str:
        cells = [("-" if rec["to"].get(k) is None else
                  f"{rec['to'][k]['step']} / {rec['to'][k]['wall_s']:.1f}") for k in t]
        return (f"| {stage} | {value} | " + " | ".join(cells)
                + f" | {rec['drops_after_100']['count']} | {rec['final_db']:.2f} |")

    lines.append(row("SIREN fast (reference)", "-", r["siren_fast"]))
    for st in r["stages"]:
        for v, rec in st["runs"].items():
            mark = " (chosen)" if v == repr(st["chosen"]) else ""
            lines.append(row(st["lever"], v + mark, rec))
    lines += ["", f"Chosen: {r['chosen']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
