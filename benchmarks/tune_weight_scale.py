"""Chooses the weight-scaling alpha (and checks whether it composes with STRAINER) on the
VALIDATION split only: ``strainer_fast.data.validation_split()`` = 8 tuning-train + 2
validation MRI slices carved from the train split. The test slices are never loaded.

Criterion: steps for the mean training PSNR of the 2 validation slices (178 px, Adam, full
grid) to reach ``--target`` dB (default 40, one of the benchmark's fixed targets), capped at
``--cap`` steps. Parts (each writes one JSON under ``results/tune_weight_scale/``, so parts
can run in parallel processes):

- ``sweep --alphas A,B``: SIREN from the alpha-scaled init, per alpha;
- ``strainer``: STRAINER encoder pretrained on the 8 tuning-train slices (``--pretrain-steps``)
  from the plain init, fitted to the validation slices;
- ``compose --alpha A``: the same encoder with its weights times A, and an encoder pretrained
  from the A-scaled init. (Scaling the fresh decoder is a no-op when the decoder is one layer,
  ``shared = layers - 1``, as here: the last layer is never scaled.);
- ``lr --alphas A,B --lrs L1,L2``: SIREN from the alpha-scaled init at Adam lr L, every pair,
  each run for the full ``--cap`` steps (no early stop): the fitting recipe;
- ``summary``: merges the parts into ``results/tune_weight_scale.json`` with the chosen alpha
  (fewest steps to the target among the ``sweep`` runs; ties: the smaller alpha) and the
  chosen recipe (highest mean validation PSNR after ``--cap`` steps among the ``lr`` runs;
  ties: the smaller lr, then the smaller alpha).

    python benchmarks/tune_weight_scale.py sweep --alphas 1,2,3
    python benchmarks/tune_weight_scale.py summary

Learning rate 1e-4 (the STRAINER / weight scaling papers' Adam setting) except in the ``lr``
part.
Precision: exact; bf16 is only an option on CPUs with bf16 instructions (recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

import strainer_fast
from machine import cpu_name
from strainer_fast import ops
from strainer_fast.checkpoint import load_encoder
from strainer_fast.data import load_images, validation_split
from strainer_fast.fit import initial_model
from strainer_fast.models import Encoder
from strainer_fast.pretrain import pretrain
from ttq import first_reach, fit_until, scaled

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = RESULTS / "tune_weight_scale"
ROOT = RESULTS.parents[1]


def machine() -> dict:
    return dict(cpu=cpu_name(), threads=torch.get_num_threads(),
                python=platform.python_version(), torch=torch.__version__,
                strainer_fast=strainer_fast.__version__,
                bf16_native=bool(ops.CPU_HAS_NATIVE_BF16), load_average=list(os.getloadavg()))


def record(curve: dict, target: float) -> dict:
    return dict(curve, reach=first_reach(curve, target))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=("sweep", "strainer", "compose", "lr", "summary"))
    ap.add_argument("--alphas", default="1,1.5,2,2.5,3,4", help="sweep / lr: alphas")
    ap.add_argument("--lrs", default="1e-4,3e-4,1e-3", help="lr: Adam learning rates")
    ap.add_argument("--alpha", type=float, default=None, help="compose: alpha")
    ap.add_argument("--size", type=int, default=178)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--shared", type=int, default=5)
    ap.add_argument("--target", type=float, default=40.0, help="dB")
    ap.add_argument("--cap", type=int, default=500, help="steps per run")
    ap.add_argument("--pretrain-steps", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--parts", default=str(PARTS))
    ap.add_argument("--summary", default=str(RESULTS / "tune_weight_scale.json"))
    ap.add_argument("--fallback-alpha", type=float, default=None,
                    help="summary: the alpha to record (marked as not chosen on validation) "
                         "when no sweep run has reached the target yet")
    args = ap.parse_args()
    parts = Path(args.parts)
    if args.part == "summary":
        return summary(parts, args.fallback_alpha, Path(args.summary))
    if args.part == "compose" and args.alpha is None:
        raise SystemExit("compose needs --alpha")
    tune_paths, val_paths = validation_split()
    val, val_names = load_images(val_paths, args.size)
    net = dict(width=args.width, layers=args.layers, w0=30.0)
    runs: dict[str, dict] = {}

    pretrain_s: dict[str, float] = {}
    label = {"sweep": "sweep_" + args.alphas.replace(",", "_"), "strainer": "strainer",
             "compose": f"compose_{args.alpha}",
             "lr": f"lr_{args.alphas}_{args.lrs}".replace(",", "_")}[args.part]

    def fit(name: str, model: torch.nn.Module, lr: float = args.lr, stop: bool = True) -> None:
        runs[name] = record(fit_until(model, val, max_steps=args.cap, lr=lr,
                                      stop_psnr=args.target if stop else None), args.target)
        print(f"{args.part} {name}: reach {runs[name]['reach']}, "
              f"{runs[name]['psnr'][-1]:.2f} dB at step {runs[name]['steps']}", flush=True)
        parts.mkdir(parents=True, exist_ok=True)  # after every run: parts survive a stop
        (parts / f"{label}.json").write_text(json.dumps(dict(
            part=args.part, machine=machine(), settings=settings(vars(args)),
            split=dict(tuning_train=[p.name for p in tune_paths], validation=val_names),
            pretrain_wall_s=pretrain_s, runs=runs), indent=1))

    def encoder(alpha: float, out: Path | None = None) -> Encoder:
        train, _ = load_images(tune_paths, args.size)
        t0 = time.perf_counter()
        model = pretrain(train, steps=args.pretrain_steps, lr=args.lr, weight_scale=alpha,
                         shared=args.shared, progress=False, out=out, **net)
        pretrain_s[f"alpha={alpha:g}"] = time.perf_counter() - t0
        return model.encoder()

    if args.part == "sweep":
        for alpha in (float(a) for a in args.alphas.split(",")):
            fit(f"{alpha:g}", initial_model("siren", val.shape[0], val.shape[-1],
                                            weight_scale=alpha, **net))
    elif args.part == "lr":
        for lr in (float(x) for x in args.lrs.split(",")):
            for alpha in (float(a) for a in args.alphas.split(",")):
                fit(f"alpha={alpha:g} lr={lr:g}", initial_model(
                    "siren", val.shape[0], val.shape[-1], weight_scale=alpha, **net),
                    lr=lr, stop=False)
    else:
        # the strainer part's encoder, reused by compose (git-ignored build/ folder)
        saved = ROOT / "build" / f"tune_plain_encoder_{args.pretrain_steps}.pt"
        saved.parent.mkdir(parents=True, exist_ok=True)
        if args.part == "compose" and saved.exists():
            plain = load_encoder(saved)
        else:
            plain = encoder(1.0, out=saved)
        if args.part == "strainer":
            fit("STRAINER", initial_model(plain, val.shape[0], val.shape[-1]))
        else:
            fit(f"STRAINER, encoder weights x {args.alpha:g}",
                initial_model(Encoder(scaled(plain.layers, args.alpha), plain.depth, plain.w0),
                              val.shape[0], val.shape[-1]))
            fit(f"STRAINER pretrained from the alpha={args.alpha:g} init",
                initial_model(encoder(args.alpha), val.shape[0], val.shape[-1]))
    print(f"wrote {parts / label}.json")


def settings(args: dict) -> dict:
    """The run's settings minus this machine's output paths."""
    return {k: v for k, v in args.items() if k not in ("parts", "summary")}


def summary(parts: Path, fallback: float | None, summary_path: Path) -> None:
    """Merges the parts; chosen alpha = fewest steps to the target among the sweep runs
    (``fallback``, marked as such, when none has reached it)."""
    files = sorted(parts.glob("*.json"))
    data = [json.loads(f.read_text()) for f in files]
    sweep = {k: v for d in data if d["part"] == "sweep" for k, v in d["runs"].items()}
    reached = sorted((v["reach"]["step"], float(k)) for k, v in sweep.items() if v["reach"])
    source = "validation split"
    if not reached:
        if fallback is None:
            raise SystemExit("no alpha reached the target: nothing to choose")
        reached = [(None, fallback)]
        source = ("FALLBACK, not chosen on validation: no sweep run had reached the target "
                  f"when the benchmark needed alpha; {fallback:g} is the weight scaling "
                  "paper's value")
    table = {k: dict(steps=v["reach"]["step"] if v["reach"] else None,
                     wall_s=v["reach"]["wall_s"] if v["reach"] else None,
                     psnr_last=v["psnr"][-1], steps_run=v["steps"])
             for d in data if d["part"] != "summary" for k, v in d["runs"].items()}
    target = data[0]["settings"]["target"] if data else None
    # lr-part run names are "alpha=A lr=L"
    recipes = [(-v["psnr"][-1], float(k.split("lr=")[1]), float(k.split()[0][6:]), v["steps"])
               for d in data if d["part"] == "lr" for k, v in d["runs"].items()]
    recipe = None
    if recipes:
        psnr, lr, alpha, steps = min(recipes)
        recipe = dict(alpha=alpha, lr=lr, psnr_last=-psnr, steps=steps,
                      criterion="highest mean training PSNR of the 2 validation slices after "
                      "the lr part's cap steps (ties: smaller lr, then smaller alpha)")
    out = dict(chosen_alpha=reached[0][1], source=source, criterion=(
        f"fewest steps to a mean training PSNR of {target} dB on the 2 "
        "validation slices"), chosen_recipe=recipe, table=table, parts=[f.name for f in files],
        settings=settings(data[0]["settings"]) if data else None,
        machine=data[0]["machine"] if data else None)
    summary_path.write_text(json.dumps(out, indent=1))
    print(json.dumps(table, indent=1))
    print(f"chosen alpha {out['chosen_alpha']:g}")


if __name__ == "__main__":
    main()
