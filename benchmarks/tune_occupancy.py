"""Chooses the fast occupancy recipe (``recipes.occupancy_recipe``) on ONE validation chair.

Pre-registered before it was run (issue 24 item 5; the grid and the rule are in the committed
script and in its JSON, which also records every size flag a run used):

- Split of the 10 embedded chairs (``chairs_dir()``): the validation chair
  ``plasticChair.obj`` (``VALIDATION``: fitted and scored; 1.2% of the 64^3 grid occupied,
  the middle of the chairs' 0.3-4.7%; armchair.obj, first considered, is 0.4% and a
  paper-recipe SIREN had IoU 0.000 on it at step 150); the held-out test chairs ``chair.obj``
  (4.7%, watertight) and ``osakaChair.obj`` (1.0%) (``HELD_OUT``: fitted by
  ``bench_occupancy.py`` only, never loaded here); the other 7 pretrain the STRAINER
  encoder. The embedded statue is not used here.
- Regime: 64^3 grid, width 64, 5 layers with 4 shared (the occupancy CPU preset's network on
  half its grid side), w0 30, 16384 voxel centres per step, seed 0, 300 fitting steps, IoU
  (at 0.5, full grid) every 50 steps, ``keep="best"`` (the library default; the last logged
  IoU is of the returned weights). STRAINER encoder: ``pretrain_occupancy`` on the 7 chairs,
  1000 steps, lr 1e-4, sampling "surface" (the default), cached (``jobs.cached_encoder``).
- Grid, per init (siren; strainer = that encoder + a fresh decoder): lr in {1e-4, 3e-4, 1e-3}
  x sampling in {uniform, surface} x stabilize in {off, the image fast recipe's stabiliser of
  that init (``recipes.FAST``: wsd for siren, decay for strainer)}: 12 fits per init, 24 in
  all. A schedule spans the 300 steps.
- Score: the IoU at step 150 (the paper's snapshot; of the iterate, on the full grid).
- Rule, per init: the fits within 0.002 of the highest score are tied; among them the fewest
  settings that differ from the paper recipe (``recipes.OCCUPANCY_PAPER``: lr 1e-4, off,
  surface), then the highest IoU at step 300, then the grid order (lr ascending, sampling in
  ``recipes.VOXEL_SAMPLING`` order, off before the stabiliser).
- Limits: one chair, one seed: an IoU difference of about 0.01 may be noise. Steps are
  scored, not wall time (recorded, but the machine is shared).

Cost on 2 CPU cores (measured while writing this, shared machine; the paper-recipe SIREN
only, the regime check): a 300-step fit at these sizes, its 7 full-grid evaluations
included, took 12 s on the statue and 19 s on the validation chair (IoU at step 150: 0.78
and 0.84, so clearly below 1). So 24 fits ~ 6-8 min, the pretraining (7 one-layer decoders
on one encoder pass, 1000 steps) ~ 1 min, voxelising the chairs ~ 0.6 s each (cached); with
``bench_occupancy.py`` (12 fits) ~ 12 min in all. FLOPs alone (2 (3w + (L-2) w^2 + w) per
point forward, ~3x that a step: 1.3 GFLOP) would predict a few times less: small layers are
bound by the sines, the sampling and Adam. ``--res``, ``--points``, ``--steps``, ``--width``
shrink or grow the run.

Resumable: each fit is written to ``results/tune_occupancy/<name>.json`` as it finishes and
skipped when present (``--fresh`` starts over; a part written under other sizes is refused);
``summary`` (run at the end automatically) writes ``results/tune_occupancy.json`` (``chosen``
per init, read by ``recipe="fast"``) and ``.md``.

    python benchmarks/tune_occupancy.py            # all fits, then the summary
    python benchmarks/tune_occupancy.py summary
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from machine import machine_info
from strainer_fast.jobs import cached_encoder
from strainer_fast.models import Encoder
from strainer_fast.recipes import FAST, OCCUPANCY_PAPER, VOXEL_SAMPLING, OccupancyRecipe
from strainer_fast.stability import STABILIZE
from strainer_fast.tasks.occupancy import (OccupancyResult, chairs_dir, fit_occupancy,
                                           pretrain_occupancy, shape_files)
from strainer_fast.tasks.volumes import load_volume

RESULTS = Path(__file__).resolve().parent / "results"
VALIDATION = "plasticChair.obj"
HELD_OUT = ("chair.obj", "osakaChair.obj")
INITS = ("siren", "strainer")
LRS = (1e-4, 3e-4, 1e-3)
TIE = 0.002
SCORE_STEP = 150
FIELDS = ("lr", "stabilize", "sampling")  # what a recipe sets


def add_regime(ap: argparse.ArgumentParser, name: str) -> None:
    """The flags the tuning and the benchmark share: sizes (defaults: the pre-registration),
    inits, where the parts and the result ``name`` go, --fresh."""
    ap.add_argument("--inits", default=",".join(INITS))
    ap.add_argument("--parts", type=Path, default=RESULTS / name)
    ap.add_argument("--out", type=Path, default=RESULTS / f"{name}.json")
    ap.add_argument("--fresh", action="store_true", help="delete earlier parts first")
    for flag, default in (("res", 64), ("width", 64), ("layers", 5), ("shared", 4),
                          ("points", 16384), ("steps", 300), ("eval-every", 50),
                          ("pretrain-steps", 1000), ("seed", 0)):
        ap.add_argument(f"--{flag}", type=int, default=default)
    ap.add_argument("--at", default=f"50,{SCORE_STEP},300",
                    help="steps whose IoU is reported (logged ones: multiples of --eval-every "
                         "or the last)")


def start_parts(args: argparse.Namespace) -> None:
    """Makes the parts folder, emptied first with --fresh."""
    if args.fresh and args.parts.exists():
        shutil.rmtree(args.parts)
    args.parts.mkdir(parents=True, exist_ok=True)


def regime(ap: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    """The sizes a run uses (recorded with every part and in the JSON); bad report steps
    are a usage error."""
    at = sorted({int(v) for v in args.at.split(",")})
    bad = [s for s in at if not 0 < s <= args.steps or (s % args.eval_every and s != args.steps)]
    if bad:
        ap.error(f"--at {bad}: not logged by {args.steps} steps at --eval-every "
                 f"{args.eval_every}")
    return dict(res=args.res, width=args.width, layers=args.layers, shared=args.shared,
                w0=30.0, points=args.points, steps=args.steps, eval_every=args.eval_every,
                at=at, pretrain_steps=args.pretrain_steps, pretrain_lr=1e-4, seed=args.seed)


def pretraining_chairs() -> list[Path]:
    """The chairs the STRAINER encoder sees: all but the validation and held-out ones."""
    left_out = {VALIDATION, *HELD_OUT}
    files = [f for f in shape_files(chairs_dir()) if f.name not in left_out]
    if len(files) != 10 - len(left_out):
        raise RuntimeError(f"expected the 10 embedded chairs in {chairs_dir()}")
    return files


def split_encoder(settings: dict) -> tuple[Encoder, str]:
    """The STRAINER encoder pretrained on ``pretraining_chairs()`` under ``settings``
    (``regime``), cached by them (``jobs.cached_encoder``); (encoder, its path)."""
    files = pretraining_chairs()
    s = settings
    key = {k: s[k] for k in ("res", "width", "layers", "shared", "w0", "points",
                             "pretrain_steps", "pretrain_lr", "seed")}
    key["chairs"] = [f.name for f in files]

    def build(path: Path) -> None:
        volumes = np.stack([load_volume(f, s["res"]) for f in files])
        t0 = time.perf_counter()
        pretrain_occupancy(volumes, [f.name for f in files], width=s["width"],
                           layers=s["layers"], shared=s["shared"], w0=s["w0"],
                           points=s["points"], steps=s["pretrain_steps"], lr=s["pretrain_lr"],
                           seed=s["seed"], progress=False, out=path)
        print(f"pretraining on {len(files)} chairs: {time.perf_counter() - t0:.0f} s",
              flush=True)

    return cached_encoder(None, "tune_occupancy_chairs", key, build)


def at_steps(result: OccupancyResult, values: list[float], steps: list[int]
             ) -> dict[str, float]:
    """``values`` (one per log point of ``result``) at each of ``steps`` (logged steps;
    JSON keys are strings)."""
    return {str(s): values[result.step.index(s)] for s in steps}


def fit_record(volume: np.ndarray, init: str | Encoder, recipe: OccupancyRecipe,
               settings: dict) -> dict:
    """One ``fit_occupancy`` run as a JSON record: the IoU curve, IoU and training wall
    seconds (evaluation excluded) at the report steps, the recipe's settings."""
    s = settings
    t0 = time.perf_counter()
    r = fit_occupancy(volume, init, width=s["width"], layers=s["layers"], w0=s["w0"],
                      points=s["points"], steps=s["steps"], eval_every=s["eval_every"],
                      lr=recipe.lr, stabilize=recipe.stabilize, sampling=recipe.sampling,
                      seed=s["seed"], progress=False)
    return dict(lr=recipe.lr, stabilize=recipe.stabilize, sampling=recipe.sampling,
                step=r.step, iou=r.iou, wall_s=r.wall_s, iou_at=at_steps(r, r.iou, s["at"]),
                wall_at=at_steps(r, r.wall_s, s["at"]),
                last_iou=r.last_iou, best_step=r.best_step,
                total_s=time.perf_counter() - t0)


def grid(init: str, lrs: list[float], samplings: list[str], stabilizers: list[str]
         ) -> list[OccupancyRecipe]:
    """The candidates of ``init`` in grid order; stabiliser "image" stands for the image
    fast recipe's (``FAST[init].stabilize``)."""
    stabs = list(dict.fromkeys(FAST[init].stabilize if m == "image" else m
                               for m in stabilizers))
    return [OccupancyRecipe(lr=lr, stabilize=m, sampling=s)
            for lr in sorted(lrs) for s in VOXEL_SAMPLING if s in samplings for m in stabs]


def run_name(init: str, r: OccupancyRecipe) -> str:
    return f"{init}_lr{r.lr:g}_{r.sampling}_{r.stabilize}"


def changes(run: dict) -> int:
    """How many recipe settings of ``run`` differ from the paper recipe."""
    return sum(run[k] != getattr(OCCUPANCY_PAPER, k) for k in FIELDS)


def choose(runs: list[dict], score_step: int, final_step: int) -> dict:
    """The pre-registered rule over one init's runs, given in grid order (module doc)."""
    top = max(r["iou_at"][str(score_step)] for r in runs)
    tied = [(i, r) for i, r in enumerate(runs) if r["iou_at"][str(score_step)] >= top - TIE]
    return min(tied, key=lambda ir: (changes(ir[1]), -ir[1]["iou_at"][str(final_step)],
                                     ir[0]))[1]


def load_part(path: Path, **expect: object) -> dict | None:
    """A finished part (None when absent); one whose ``expect`` keys (e.g. the settings)
    differ is refused."""
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    differ = {k: d.get(k) for k, v in expect.items() if d.get(k) != v}
    if differ:
        raise SystemExit(f"{path} was run with other {', '.join(differ)} ({differ}); use "
                         f"--fresh or --parts DIR")
    return d


def write_md(path: Path, title: str, lines: list[str], runs: list[dict], label: list[str],
             steps: list[int]) -> None:
    """``lines``, then a table of ``runs``: the ``label`` keys, the recipe's settings, IoU
    and fit wall time at ``steps``."""
    cols = [*label, *FIELDS, *(f"IoU @ {s}" for s in steps), f"fit wall s @ {steps[-1]}"]
    table = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for r in runs:
        cells = [*(str(r[k]) for k in label), f"{r['lr']:g}", r["stabilize"], r["sampling"],
                 *(f"{r['iou_at'][str(s)]:.4f}" for s in steps),
                 f"{r['wall_at'][str(steps[-1])]:.1f}"]
        table.append("| " + " | ".join(cells) + " |")
    path.write_text("\n".join([f"# {title}", "", *lines, "", *table, ""]))


def rule_text() -> str:
    return __doc__.split("Pre-registered", 1)[1].split("Cost on", 1)[0].strip()


def summary(args: argparse.Namespace, settings: dict, plan: dict[str, list[OccupancyRecipe]]
            ) -> dict:
    """Writes ``args.out`` (.json, .md) from the parts of ``plan``; returns the JSON."""
    steps = settings["at"]
    runs: dict[str, list[dict]] = {}
    out = dict(rule=rule_text(), source=f"validation chair {VALIDATION}", settings=settings,
               score_step=args.score_step, tie=TIE,
               grid={i: [run_name(i, r) for r in rs] for i, rs in plan.items()},
               pretraining_chairs=[f.name for f in pretraining_chairs()],
               held_out=list(HELD_OUT), machine=machine_info(), chosen={}, runs={})
    for init, recipes in plan.items():
        parts = [load_part(args.parts / f"{run_name(init, r)}.json", settings=settings)
                 for r in recipes]
        runs[init] = [p for p in parts if p is not None]
        out["runs"].update({p["name"]: p for p in runs[init]})
        if len(runs[init]) < len(recipes):
            print(f"{init}: {len(recipes) - len(runs[init])} runs missing; no choice")
            continue
        best = choose(runs[init], args.score_step, steps[-1])
        out["chosen"][init] = dict({k: best[k] for k in FIELDS}, run=best["name"],
                                   iou_at=best["iou_at"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=1))
    chosen = [f"- {i}: {c['run']}" for i, c in out["chosen"].items()] or ["- none yet"]
    write_md(args.out.with_suffix(".md"), "Occupancy recipe tuning (validation chair)",
             [f"Validation chair {VALIDATION}; settings {settings}.", "", "Chosen:", *chosen],
             [r for rs in runs.values() for r in rs], ["name"], steps)
    print("chosen:", {i: c["run"] for i, c in out["chosen"].items()})
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", nargs="?", default="all", choices=("all", "summary"))
    add_regime(ap, "tune_occupancy")
    ap.add_argument("--lrs", default=",".join(f"{lr:g}" for lr in LRS))
    ap.add_argument("--samplings", default=",".join(VOXEL_SAMPLING))
    ap.add_argument("--stabilizers", default="off,image",
                    help="stabilisers (image: the image fast recipe's of each init)")
    ap.add_argument("--score-step", type=int, default=SCORE_STEP,
                    help="the rule's score: IoU at this step (one of --at)")
    args = ap.parse_args(argv)
    lists = {k: getattr(args, k).split(",") for k in ("inits", "samplings", "stabilizers")}
    if not (set(lists["inits"]) <= set(INITS) and set(lists["samplings"]) <= set(VOXEL_SAMPLING)
            and set(lists["stabilizers"]) <= {"image", *STABILIZE}):
        ap.error(f"--inits takes {INITS}, --samplings {VOXEL_SAMPLING}, --stabilizers image "
                 f"or {STABILIZE}")
    plan = {i: grid(i, [float(v) for v in args.lrs.split(",")], lists["samplings"],
                    lists["stabilizers"]) for i in lists["inits"]}
    settings = regime(ap, args)
    if args.score_step not in settings["at"]:
        ap.error(f"--score-step {args.score_step} is not one of --at {settings['at']}")
    if args.part == "all":
        start_parts(args)
        volume = load_volume(chairs_dir() / VALIDATION, args.res)
        encoder = None
        for init, recipes in plan.items():
            for r in recipes:
                name = run_name(init, r)
                path = args.parts / f"{name}.json"
                if load_part(path, settings=settings) is not None:
                    continue
                if init == "strainer" and encoder is None:
                    encoder = split_encoder(settings)[0]
                rec = fit_record(volume, encoder if init == "strainer" else init, r, settings)
                path.write_text(json.dumps(dict(name=name, init=init, settings=settings,
                                                machine=machine_info(), **rec), indent=1))
                print(f"{name}: IoU {rec['iou_at']}, {rec['total_s']:.0f} s", flush=True)
    summary(args, settings, plan)


if __name__ == "__main__":
    main()
