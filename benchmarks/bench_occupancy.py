"""Occupancy fits, paper vs fast recipe: IoU at 50/150/300 steps and wall time of SIREN and
STRAINER (chairs encoder) on the embedded statue and on the chairs held out from pretraining.

- Targets: ``statue`` (``statue_volume``) and the held-out chairs ``tune_occupancy.HELD_OUT``
  (seen neither by the tuning nor by the pretraining).
- STRAINER: the encoder of ``tune_occupancy.split_encoder`` (pretrained on the 7 chairs other
  than the validation and the held-out ones; the cached file the tuning made, or made here),
  with a fresh decoder; SIREN: a random init of the same network.
- Recipes: "paper" (``recipes.OCCUPANCY_PAPER``: lr 1e-4, plain Adam, surface sampling) and
  "fast" (per init, ``chosen`` of ``--tuned``, default ``results/tune_occupancy.json``; while it
  is missing the run stops with the message to run ``tune_occupancy.py`` first; ``--recipes
  paper`` runs without it).
- Sizes: the tuning's flags and defaults (``tune_occupancy.add_regime``): 64^3, width 64,
  16384 points, one 300-step fit per run (a schedule spans the 300 steps), IoU at ``--at``
  steps (of the iterate; at the last step of the returned weights, ``keep="best"``) and the
  training wall seconds (evaluation excluded) to reach them; the whole run's wall seconds.
- Cost on 2 CPU cores: 3 targets x 2 inits x 2 recipes = 12 fits ~ 3-4 min at the defaults
  (``tune_occupancy``'s measurement: 12-19 s a fit), plus the pretraining if not cached.

Resumable: each fit is written to ``results/bench_occupancy/<target>_<init>_<recipe>.json`` as
it finishes and skipped when present (a part of other sizes or other fast settings is
refused; ``--fresh`` starts over); then ``results/bench_occupancy.json`` and ``.md``.

    python benchmarks/bench_occupancy.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from machine import machine_info
from strainer_fast.recipes import OCCUPANCY_PAPER, OCCUPANCY_TUNED, RECIPES, occupancy_fast
from strainer_fast.tasks.occupancy import chairs_dir
from strainer_fast.tasks.statue import statue_volume
from strainer_fast.tasks.volumes import load_volume
from tune_occupancy import (FIELDS, HELD_OUT, INITS, add_regime, fit_record, load_part, regime,
                            split_encoder, start_parts, write_md)


def targets(res: int) -> dict[str, np.ndarray]:
    """name -> occupancy [res]^3: the statue, then the held-out chairs."""
    return {"statue": statue_volume(res),
            **{name: load_volume(chairs_dir() / name, res) for name in HELD_OUT}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_regime(ap, "bench_occupancy")
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--tuned", type=Path, default=OCCUPANCY_TUNED,
                    help="tune_occupancy.py result whose 'chosen' is the fast recipe")
    args = ap.parse_args(argv)
    inits, recipes = args.inits.split(","), args.recipes.split(",")
    if not set(inits) <= set(INITS) or not set(recipes) <= set(RECIPES):
        ap.error(f"--inits takes {INITS}, --recipes {RECIPES}")
    settings = regime(ap, args)
    steps = settings["at"]
    try:
        fast = occupancy_fast(args.tuned) if "fast" in recipes else {}
    except ValueError as exc:
        ap.error(str(exc))
    missing = [i for i in inits if "fast" in recipes and i not in fast]
    if missing:
        ap.error(f"{args.tuned} has no fast recipe for {missing}")
    start_parts(args)
    volumes = targets(args.res)
    encoder, encoder_path = split_encoder(settings) if "strainer" in inits else (None, None)
    runs = []
    for target, volume in volumes.items():
        for init in inits:
            for recipe in recipes:
                r = OCCUPANCY_PAPER if recipe == "paper" else fast[init]
                name = f"{Path(target).stem}_{init}_{recipe}"
                path = args.parts / f"{name}.json"
                rec = load_part(path, settings=settings,
                                **{k: getattr(r, k) for k in FIELDS})
                if rec is None:
                    rec = dict(name=name, target=target, init=init, recipe=recipe,
                               settings=settings, machine=machine_info(),
                               occupied_fraction=float(volume.mean()),
                               **fit_record(volume, encoder if init == "strainer" else init,
                                            r, settings))
                    path.write_text(json.dumps(rec, indent=1))
                    print(f"{name}: IoU {rec['iou_at']}, {rec['total_s']:.0f} s", flush=True)
                runs.append(rec)
    gain = {}  # fast minus paper IoU per target, init and step
    for rec in runs:
        if rec["recipe"] == "fast" and "paper" in recipes:
            paper = next(p for p in runs if p["recipe"] == "paper"
                         and (p["target"], p["init"]) == (rec["target"], rec["init"]))
            gain.setdefault(rec["target"], {})[rec["init"]] = {
                s: rec["iou_at"][s] - paper["iou_at"][s] for s in rec["iou_at"]}
    out = dict(source=__doc__.split("\n\n", 1)[1].split("Resumable", 1)[0].strip(),
               settings=settings, recipes={"paper": {k: getattr(OCCUPANCY_PAPER, k)
                                                     for k in FIELDS},
                                           **({"fast": {i: {k: getattr(r, k) for k in FIELDS}
                                                        for i, r in fast.items()},
                                               "tuned": str(args.tuned)} if fast else {})},
               encoder=encoder_path, machine=machine_info(),
               total_fit_s=sum(r["total_s"] for r in runs), fast_minus_paper=gain,
               runs={r["name"]: r for r in runs})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=1))
    write_md(args.out.with_suffix(".md"), "Occupancy fits: paper vs fast recipe",
             [f"Settings {settings}; STRAINER encoder {encoder_path}; machine "
              f"{out['machine']['cpu']}, {out['machine']['threads']} threads."],
             runs, ["target", "init", "recipe"], steps)
    print(f"wrote {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
