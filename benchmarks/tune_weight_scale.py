"""Chooses the weight-scaling alpha (and checks whether it composes with STRAINER) on the
VALIDATION split only: ``strainer_fast.data.validation_split()`` = 8 tuning-train + 2
validation MRI slices carved from the train split. The test slices are never loaded.

1. SIREN sweep: for each alpha, fit the 2 validation slices (Adam, full grid) until the mean
   training PSNR reaches the target = plain SIREN's (alpha 1) PSNR at step ``--steps``, or
   for ``--cap`` steps (default ``--steps`` / 2: an alpha slower than that is of no use).
   Chosen alpha: fewest steps to the target (ties: the smaller alpha).
2. Composition with STRAINER (chosen alpha): encoders pretrained on the 8 tuning-train
   slices, fitted to the validation slices to the same target: the plain STRAINER encoder;
   its weights times alpha; an encoder pretrained from the alpha-scaled init. (Scaling the
   fresh decoder is a no-op when the decoder is one layer, ``shared = layers - 1``, as here:
   the last layer is never scaled.)
3. Precision: bf16 is tried only where the CPU has bf16 instructions (otherwise the library
   runs it as exact fp32, so there is nothing to choose).

    python benchmarks/tune_weight_scale.py [--width 64 --steps 1000 --alphas 1,1.5,2,2.5,3,4]

Writes benchmarks/results/tune_weight_scale.json. Learning rate: 1e-4 (the STRAINER / weight
scaling papers' Adam setting), not tuned here.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import strainer_fast
from machine import cpu_name
from strainer_fast import ops
from strainer_fast.data import load_images, validation_split
from strainer_fast.fit import initial_model
from strainer_fast.models import Encoder
from strainer_fast.pretrain import pretrain
from ttq import first_reach, fit_until, scaled

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=178)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--shared", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1000, help="plain SIREN's steps (target)")
    ap.add_argument("--cap", type=int, default=0, help="steps of the other runs (0: steps/2)")
    ap.add_argument("--alphas", default="1,1.5,2,2.5,3,4")
    ap.add_argument("--pretrain-steps", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--out", default=str(RESULTS / "tune_weight_scale.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    alphas = sorted(float(a) for a in args.alphas.split(","))
    cap = args.cap or args.steps // 2
    if alphas[0] != 1.0:
        raise SystemExit("--alphas must include 1 (plain SIREN defines the target)")
    tune_paths, val_paths = validation_split()
    val, val_names = load_images(val_paths, args.size)
    net = dict(width=args.width, layers=args.layers, w0=30.0)
    t_start = time.perf_counter()

    def siren(alpha: float) -> torch.nn.Module:
        return initial_model("siren", val.shape[0], val.shape[-1], weight_scale=alpha, **net)

    sweep: dict[str, dict] = {}
    base = fit_until(siren(1.0), val, max_steps=args.steps, lr=args.lr)
    target = base["psnr"][-1]
    sweep["1.0"] = dict(base, reach=first_reach(base, target))
    print(f"alpha 1: {target:.2f} dB at step {args.steps}", flush=True)
    for alpha in alphas[1:]:
        curve = fit_until(siren(alpha), val, max_steps=cap, lr=args.lr, stop_psnr=target)
        sweep[str(alpha)] = dict(curve, reach=first_reach(curve, target))
        print(f"alpha {alpha}: reach {sweep[str(alpha)]['reach']}, "
              f"PSNR at its last step {curve['psnr'][-1]:.2f} dB", flush=True)
    reached = [(v["reach"]["step"], float(a)) for a, v in sweep.items() if v["reach"]
               and (float(a) == 1.0 or v["reach"]["step"] <= cap)]
    chosen = min(reached)[1]
    print(f"chosen alpha {chosen}", flush=True)

    compose: dict[str, dict] = {}
    if chosen != 1.0:
        train, _ = load_images(tune_paths, args.size)
        arch = dict(width=args.width, layers=args.layers, shared=args.shared, w0=30.0)
        encoders: dict[str, Encoder] = {}
        for name, alpha in (("pretrained", 1.0), ("pretrained from alpha init", chosen)):
            t0 = time.perf_counter()
            model = pretrain(train, steps=args.pretrain_steps, lr=args.lr, weight_scale=alpha,
                             progress=False, **arch)
            encoders[name] = model.encoder()
            compose.setdefault("pretrain_wall_s", {})[name] = time.perf_counter() - t0
        plain = encoders["pretrained"]
        encoders["pretrained, weights x alpha"] = Encoder(scaled(plain.layers, chosen),
                                                          plain.depth, plain.w0)
        for name, enc in encoders.items():
            model = initial_model(enc, val.shape[0], val.shape[-1])
            curve = fit_until(model, val, max_steps=cap, lr=args.lr, stop_psnr=target)
            compose[name] = dict(curve, reach=first_reach(curve, target))
            print(f"STRAINER {name}: reach {compose[name]['reach']}", flush=True)

    bf16_native = bool(ops.CPU_HAS_NATIVE_BF16)
    result = dict(
        machine=dict(cpu=cpu_name(), threads=torch.get_num_threads(),
                     python=platform.python_version(), torch=torch.__version__,
                     strainer_fast=strainer_fast.__version__, bf16_native=bf16_native,
                     load_average_at_end=list(__import__("os").getloadavg())),
        split=dict(tuning_train=[p.name for p in tune_paths], validation=val_names),
        settings=dict(vars(args), alphas=alphas),
        target_psnr=target,
        sweep=sweep,
        chosen_alpha=chosen,
        compose=compose,
        precision=("exact (this CPU has no bf16 instructions: precision='bf16' would run "
                   "exact fp32)") if not bf16_native else "exact (bf16 not evaluated here)",
        total_wall_s=time.perf_counter() - t_start,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
