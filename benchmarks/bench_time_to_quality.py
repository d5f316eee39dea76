"""Time to quality: wall time and steps each method needs to reach fixed PSNR targets on the
embedded MRI test slices, side by side in one process.

Methods (same network: 2 -> sine layers of ``--width`` -> 1, w0 30; Adam; full grid):

- ``eager SIREN (paper-style)``: the baseline, written the way the STRAINER authors' library
  writes it (``paper_style.py``: ``nn.Linear`` + sine modules, a Python loop over decoders,
  fp32), at the papers' Adam lr;
- ``SIREN (fused exact)``: the library's SIREN (fused ops, fp32);
- ``SIREN bf16``: only where the CPU has bf16 instructions (elsewhere it would run exact);
- ``SIREN alpha=A``: the library's SIREN with weight-scaled init (alpha from the validation
  split, ``tune_weight_scale.py``);
- ``STRAINER-10``: encoder pretrained on the 10 train slices (``--pretrain-steps``), fresh
  decoder; its pretraining wall time is reported apart and amortised over the 6 test slices;
- ``STRAINER-10 alpha=A``: the same, pretrained from the alpha-scaled init (only with
  ``--compose``, i.e. where the validation split said it composes);
- ``SIREN alpha=A lr=L (validation recipe)``: the library's SIREN with the alpha and Adam lr
  that ``tune_weight_scale.py lr`` chose on the validation split, plain Adam, and the same
  ``+ MODE`` with the validated stabiliser (``--stabilize``); ``STRAINER-10 lr=L`` and
  ``STRAINER-10 lr=L + MODE``: STRAINER-10 at the recipe's lr without / with its stabiliser.
  These rows run ``--recipe-steps`` steps without early stop, so drops after step 100 show.
- the strongest plain-PyTorch peer, at that same SIREN recipe (alpha, lr, stabiliser, steps):
  ``eager loop SIREN ...`` (``paper_style.EagerStrainer`` with no encoder: one module per
  layer, the K networks looped over in Python, as the authors' library writes them; last
  iterate), ``eager batched SIREN ...`` (``paper_style.BatchedSiren``: the K networks'
  weights stacked, one ``baddbmm`` + ``sin`` per layer, no loop over signals; last iterate)
  and
  ``torch.compile batched SIREN ...`` (the same module through ``torch.compile``; its
  compilation, paid once per process, is in its wall time and reported apart as
  ``compile_s``: the first step's time less a median step's). Every library row's wall time
  to a target is also set against the faster peer to that target (``speedup_vs_peer``).

Value ranges: the paper-style baseline fits the authors' protocol by default (pixels in
[0, 1] as loaded, ``--baseline-value-range unit``), every other row ``--value-range`` (the
library's default, [-1, 1]); each row of the JSON and the table names its range, and a
speed-up over the baseline across two ranges includes what the range does.

Targets: 30 dB, 40 dB and the eager SIREN's PSNR at step ``--steps``. PSNR per step is the
training loss's (full grid, before clamping; mean over the fitted slices), on [0, 1] pixels
whatever the ``--value-range`` of the targets (every row of the JSON names its range). The
baseline runs ``--steps`` steps; every other method until it has reached the highest target
or for ``--cap`` steps (default ``--steps``), but the recipe rows.
Every library method returns its best iterate (``train.KeepBest``, per slice, its cost in the
wall time); the eager baseline its last, as the authors' library does. Per method the JSON
records drops > 1 dB (``stability.drop_stats`` of the per-slice curves) from step 0 and after
step 100, and the returned weights' full-grid PSNR against the best PSNR of the curve.

``--rows recipe`` runs only the baseline, the recipe rows with their validated stabiliser
and the peers (for wide networks, where every row costs minutes); ``--recipe-early-stop``
stops those rows at the highest target too.

    python benchmarks/bench_time_to_quality.py [--slices 1] [--width 64] [--stabilize MODE]
    python benchmarks/bench_time_to_quality.py --slices 2 --width 256 --rows recipe \
        --recipe-early-stop --out benchmarks/results/time_to_quality_w256

Writes ``<out>.{json,md,png}`` (default benchmarks/results/time_to_quality). Resumable: every
finished row goes to ``<out>.partial.json`` at once, each STRAINER pretraining to a library
checkpoint ``<out>.partial.<name>.pt``; a run with the same settings continues from them (``--fresh``: start over), and the JSON records per row the process that measured it.
Run it alone, at normal priority, with no other jobs on the cores (its results are wall-time
ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from pathlib import Path
import torch

import strainer_fast
from machine import cpu_name, cpu_simd
from paper_style import BatchedSiren, EagerStrainer
from strainer_fast import ops
from strainer_fast.checkpoint import load_encoder, save_checkpoint
from strainer_fast.data import default_split, load_images
from strainer_fast.fit import initial_model
from strainer_fast.models import Encoder
from strainer_fast.pretrain import pretrain
from strainer_fast.stability import STABILIZE
from strainer_fast.value_range import DEFAULT_VALUE_RANGE, VALUE_RANGES, resolve
from ttq import DROP_START, first_reach, fit_until

RESULTS = Path(__file__).resolve().parent / "results"
TUNED = RESULTS / "tune_weight_scale.json"
STABILIZER = RESULTS / "tune_stabilizer.json"
EAGER = "eager SIREN (paper-style)"
INIT_KINDS = ("siren", "strainer")


def stabilizers(mode: str | None, path: Path) -> dict[str, str]:
    """The stabiliser of each init kind ("siren", "strainer"): ``mode`` for both, or the
    validation grid's choice, ``path``'s key ``chosen`` (one mode, or one per init kind)."""
    if mode is None:
        if not path.exists():
            raise SystemExit(f"{path} missing: run the stabiliser grid first (or pass "
                             "--stabilize MODE)")
        mode = json.loads(path.read_text())["chosen"]
    chosen = mode if isinstance(mode, dict) else dict.fromkeys(INIT_KINDS, mode)
    bad = {k: v for k, v in chosen.items() if v not in STABILIZE}
    if bad or set(chosen) != set(INIT_KINDS):
        raise SystemExit(f"stabilisers must be one of {STABILIZE} for {INIT_KINDS}, got "
                         f"{chosen}")
    return chosen


def tuned(path: Path, wait_s: float) -> dict:
    """``tune_weight_scale.py summary``'s choices on the validation split (``chosen_alpha``,
    ``chosen_recipe``), waiting up to ``wait_s`` seconds for them (the tuning may still run
    when this benchmark starts: the alpha-free methods run first)."""
    deadline = time.monotonic() + wait_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} missing: run benchmarks/tune_weight_scale.py first "
                             "(or pass --alpha)")
        time.sleep(10)
    return json.loads(path.read_text())


class Partial:
    """The rows finished so far (``<out>.partial.json``) and the pretrained encoders (one
    library checkpoint per pretraining, ``<out>.partial.<name>.pt``), kept while the benchmark
    runs so that a run cut short continues: ``settings`` must equal the stored ones, else (or
    with ``fresh``) it starts over. An encoder is reused only if its pretraining time is in
    the JSON, which is written after its checkpoint."""

    def __init__(self, out: Path, settings: dict, fresh: bool) -> None:
        self.json = out.with_suffix(".partial.json")
        self.settings = settings
        state = json.loads(self.json.read_text()) if self.json.is_file() and not fresh else {}
        if state.get("settings") != settings:
            state = {}
        self.runs: dict[str, dict] = state.get("runs", {})
        self.pretrain_s: dict[str, float] = state.get("pretrain_s", {})
        self.compile_error: str | None = state.get("compile_error")
        self.process = state.get("processes", 0) + 1
        if self.runs or self.pretrain_s:
            print(f"continuing from {self.json}: {len(self.runs)} row(s) done "
                  f"({', '.join(self.runs)}); process {self.process}", flush=True)

    def encoder_file(self, name: str) -> Path:
        """Where the encoder of pretraining ``name`` (a ``pretrain_s`` key) is kept."""
        return self.json.with_name(f"{self.json.stem}.{re.sub(r'[^A-Za-z0-9]+', '_', name)}.pt")

    def save(self) -> None:
        self.json.parent.mkdir(parents=True, exist_ok=True)
        state = dict(settings=self.settings, processes=self.process, runs=self.runs,
                     pretrain_s=self.pretrain_s, compile_error=self.compile_error)
        tmp = self.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.json)

    def remove(self) -> None:
        self.json.unlink(missing_ok=True)
        for name in self.pretrain_s:
            self.encoder_file(name).unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=178)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--shared", type=int, default=5)
    ap.add_argument("--slices", type=int, default=1, help="first N MRI test slices")
    ap.add_argument("--steps", type=int, default=2000, help="baseline steps (and every cap)")
    ap.add_argument("--cap", type=int, default=0,
                    help="steps of every other method at most (0: --steps)")
    ap.add_argument("--pretrain-steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--value-range", choices=VALUE_RANGES, default=DEFAULT_VALUE_RANGE,
                    help="targets: signed = pixels mapped to [-1, 1], unit = [0, 1] as loaded")
    ap.add_argument("--baseline-value-range", choices=VALUE_RANGES, default="unit",
                    help="the paper-style baseline's targets (default: the authors' [0, 1])")
    ap.add_argument("--no-compile", action="store_true",
                    help="leave out the torch.compile peer")
    ap.add_argument("--alpha", type=float, default=None, help="default: the tuned alpha")
    ap.add_argument("--wait-alpha", type=float, default=0,
                    help="seconds to wait for the tuned alpha after the alpha-free methods")
    ap.add_argument("--compose", action="store_true",
                    help="also STRAINER pretrained from the alpha init")
    ap.add_argument("--tuned", default=str(TUNED), help="tune_weight_scale.py's summary")
    ap.add_argument("--stabilize", choices=STABILIZE, default=None,
                    help="stabiliser of the '+ MODE' rows (default: --stabilizer-json's "
                         "validated choice per init)")
    ap.add_argument("--stabilizer-json", default=str(STABILIZER),
                    help="the stabiliser grid's results: key 'chosen', a mode or "
                         "{siren: MODE, strainer: MODE}")
    ap.add_argument("--recipe-steps", type=int, default=500,
                    help="steps of the recipe rows (no early stop unless --recipe-early-stop)")
    ap.add_argument("--recipe-early-stop", action="store_true",
                    help="the recipe rows and the peers stop at the highest target too")
    ap.add_argument("--rows", choices=("all", "recipe"), default="all",
                    help="recipe: only the baseline, the recipe rows with their validated "
                         "stabiliser, and the peers")
    ap.add_argument("--out", default=str(RESULTS / "time_to_quality"))
    ap.add_argument("--fresh", action="store_true",
                    help="ignore the rows a former run with these settings left in "
                         "<out>.partial.json")
    args = ap.parse_args()
    stab = stabilizers(args.stabilize, Path(args.stabilizer_json))  # before hours of runs
    if args.rows == "recipe" and args.compose:
        raise SystemExit("--compose adds a paper-lr row; it does not go with --rows recipe")
    train_paths, test_paths = default_split()
    test, names = load_images(test_paths[: args.slices], args.size)
    k, channels = test.shape[0], test.shape[-1]
    net = dict(width=args.width, layers=args.layers, w0=30.0)
    load_start = os.getloadavg()
    out = Path(args.out)
    partial = Partial(out, {a: v for a, v in vars(args).items() if a != "fresh"}, args.fresh)
    runs = partial.runs
    peers: list[str] = []  # the plain-PyTorch rows at the SIREN recipe
    pretrain_s = partial.pretrain_s
    pretrained: dict[str, str] = {}  # row -> the pretraining (pretrain_s key) it uses
    all_rows = args.rows == "all"

    def run(name: str, model: torch.nn.Module, stop: float | None, lr: float = args.lr,
            steps: int | None = None, stabilize: str = "off", peer: bool = False) -> None:
        if name in runs:
            return
        steps = steps or (args.steps if name == EAGER else (args.cap or args.steps))
        keep = "last" if name == EAGER or peer else "best"
        vr = args.baseline_value_range if name == EAGER else args.value_range
        runs[name] = dict(fit_until(model, test, max_steps=steps, lr=lr, stop_psnr=stop,
                                    stabilize=stabilize, keep=keep, value_range=vr),
                          lr=lr, stabilize=stabilize, keep=keep, early_stop=stop is not None,
                          process=partial.process)
        partial.save()
        c = runs[name]
        print(f"{name}: {c['steps']} steps, {c['wall_s'][-1]:.1f} s, {c['psnr'][-1]:.2f} dB; "
              f"returned {sum(c['returned_psnr']) / k:.2f} dB, "
              f"{sum(c['drops_late']['count'])} drops > 1 dB after step {DROP_START}",
              flush=True)

    siren0 = initial_model("siren", k, channels, **net)  # the library's SIREN init
    eager = EagerStrainer([], [siren0.network_layers(i) for i in range(k)], w0=30.0)
    run(EAGER, eager, None)
    targets = {"30 dB": 30.0, "40 dB": 40.0,
               f"SIREN@{args.steps} ({runs[EAGER]['psnr'][-1]:.2f} dB)": runs[EAGER]["psnr"][-1]}
    stop = max(targets.values())
    bf16 = bool(ops.CPU_HAS_NATIVE_BF16)
    if all_rows:
        run("SIREN (fused exact)", initial_model("siren", k, channels, **net), stop)
        if bf16:
            run("SIREN (fused bf16)", initial_model("siren", k, channels, precision="bf16",
                                                    **net), stop)
    train, _ = load_images(train_paths, args.size)
    arch = dict(net, shared=args.shared)

    def strainer(name: str, a: float, row: bool = True) -> Encoder:
        if name in pretrain_s:
            enc = load_encoder(partial.encoder_file(name))
        else:
            t0 = time.perf_counter()
            model = pretrain(train, steps=args.pretrain_steps, lr=args.lr, weight_scale=a,
                             progress=False, value_range=args.value_range, **arch)
            seconds = time.perf_counter() - t0
            save_checkpoint(model, partial.encoder_file(name), value_range=model.value_range)
            pretrain_s[name] = seconds
            partial.save()
            print(f"{name}: pretraining {seconds:.1f} s", flush=True)
            enc = model.encoder()
        if row:
            pretrained[name] = name
            run(name, initial_model(enc, k, channels), stop)
        return enc

    enc10 = strainer("STRAINER-10", 1.0, row=all_rows)
    choice = tuned(Path(args.tuned), args.wait_alpha) if args.alpha is None else {}
    alpha = args.alpha if args.alpha is not None else float(choice["chosen_alpha"])
    if all_rows:
        run(f"SIREN alpha={alpha:g}",
            initial_model("siren", k, channels, weight_scale=alpha, **net), stop)
    if args.compose:
        strainer(f"STRAINER-10 alpha={alpha:g}", alpha)
    recipe = choice.get("chosen_recipe")
    if not recipe and not all_rows:
        raise SystemExit(f"--rows recipe needs a chosen_recipe in {args.tuned}")
    if recipe:
        lr, n = recipe["lr"], args.recipe_steps
        rstop = stop if args.recipe_early_stop else None
        rows = {"siren": (f"SIREN alpha={recipe['alpha']:g} lr={lr:g} (validation recipe)",
                          lambda: initial_model("siren", k, channels,
                                                weight_scale=recipe["alpha"], **net)),
                "strainer": (f"STRAINER-10 lr={lr:g}", lambda: initial_model(enc10, k,
                                                                             channels))}
        for kind, (name, model) in rows.items():
            names_stab = ([(name, "off")] if all_rows or stab[kind] == "off" else []) + (
                [(f"{name} + {stab[kind]}", stab[kind])] if stab[kind] != "off" else [])
            for row, mode in names_stab:
                if kind == "strainer":
                    pretrained[row] = "STRAINER-10"
                run(row, model(), rstop, lr=lr, steps=n, stabilize=mode)
        mode = stab["siren"]
        suffix = f"SIREN alpha={recipe['alpha']:g} lr={lr:g}" + (
            f" + {mode}" if mode != "off" else "")
        nets = [initial_model("siren", k, channels, weight_scale=recipe["alpha"],
                              **net).network_layers(i) for i in range(k)]
        for name, peer in ((f"eager loop {suffix}", EagerStrainer([], nets, w0=30.0)),
                           (f"eager batched {suffix}", BatchedSiren(nets, w0=30.0))):
            run(name, peer, rstop, lr=lr, steps=n, stabilize=mode, peer=True)
            peers.append(name)
        if not args.no_compile:
            name = f"torch.compile batched {suffix}"
            try:
                if name not in runs and partial.compile_error is None:
                    run(name, torch.compile(BatchedSiren(nets, w0=30.0)), rstop, lr=lr,
                        steps=n, stabilize=mode, peer=True)
                    runs[name]["compile_s"] = compile_seconds(runs[name]["wall_s"])
                    partial.save()
            except Exception as exc:  # noqa: BLE001  recorded, the other rows stand
                partial.compile_error = (f"{type(exc).__name__}: "
                                         f"{str(exc).splitlines()[0][:300]}")
                partial.save()
                print(f"{name}: failed ({partial.compile_error})", flush=True)
            if name in runs:
                peers.append(name)

    n_test = len(test_paths)
    table, strongest = {}, {}
    for t, value in targets.items():
        hits = {p: first_reach(runs[p], value) for p in peers}
        reached = {p: h["wall_s"] for p, h in hits.items() if h is not None}
        strongest[t] = min(reached, key=reached.get) if reached else None
    for name, curve in runs.items():
        row = {}
        for t, value in targets.items():
            hit = first_reach(curve, value)
            base = first_reach(runs[EAGER], value)
            peer = None if strongest[t] is None else first_reach(runs[strongest[t]], value)
            if hit is not None:
                pre = pretrain_s[pretrained[name]] if name in pretrained else 0.0
                hit.update(wall_amortised_s=hit["wall_s"] + pre / n_test,
                           wall_with_pretraining_s=hit["wall_s"] + pre)
                if base is not None:
                    hit["speedup_vs_eager"] = base["wall_s"] / hit["wall_s"]
                    hit["speedup_vs_eager_amortised"] = base["wall_s"] / hit["wall_amortised_s"]
                    hit["speedup_vs_eager_with_pretraining"] = (base["wall_s"]
                                                                / hit["wall_with_pretraining_s"])
                if peer is not None and name not in peers and name != EAGER:
                    hit["speedup_vs_peer"] = peer["wall_s"] / hit["wall_s"]
            row[t] = hit
        table[name] = row
    result = dict(
        machine=dict(cpu=cpu_name(), simd=cpu_simd(), threads=torch.get_num_threads(),
                     bf16_native=bf16,
                     python=platform.python_version(), torch=torch.__version__,
                     strainer_fast=strainer_fast.__version__,
                     load_average_start=list(load_start), load_average_end=list(os.getloadavg())),
        settings=dict({k: v for k, v in vars(args).items()
                       if k not in ("out", "tuned", "stabilizer_json", "fresh")},
                      alpha=alpha, recipe=recipe, stabilizers=stab, slices=names,
                      amortised_over=n_test, drop_start=DROP_START,
                      values=f"targets in {resolve(args.value_range)}; PSNR on [0, 1] pixels "
                             "of the training MSE, before clamping"),
        targets=targets,
        peers=peers,
        strongest_peer=strongest,
        compile_error=partial.compile_error,
        processes=partial.process,
        pretrain_wall_s=pretrain_s,
        pretrained_with=pretrained,
        table=table,
        runs={n: run_record(c) for n, c in runs.items()},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    md = markdown(result)
    out.with_suffix(".md").write_text(md)
    plot(result, out.with_suffix(".png"))
    partial.remove()
    print(md)


def compile_seconds(wall_s: list[float]) -> float:
    """The first step's wall time less a median later step's (``torch.compile`` compiles the
    forward and backward graphs in the first step); [cumulative s per step] -> s."""
    steps = [b - a for a, b in zip(wall_s, wall_s[1:])]
    if not steps:
        return wall_s[0]
    return max(0.0, wall_s[0] - sorted(steps)[len(steps) // 2])


def run_record(c: dict) -> dict:
    """A method's JSON record: value range, steps, times, mean curve, the returned weights'
    PSNR vs the curve's best, drops > 1 dB from step 0 and after ``DROP_START``."""

    def drops(d: dict) -> dict:
        return dict(count=sum(d["count"]), per_slice=d["count"], max_depth_db=d["max_depth_db"],
                    depths_db=[round(v, 3) for v in d["depths_db"]])

    returned, best = c["returned_psnr"], c["best_psnr"]
    return dict(value_range=c["value_range"], steps=c["steps"], cpu_s=c["cpu_s"],
                wall_s=c["wall_s"][-1],
                step_ms=1e3 * c["wall_s"][-1] / c["steps"], lr=c["lr"],
                stabilize=c["stabilize"], keep=c["keep"], early_stop=c["early_stop"],
                returned_psnr=returned, returned_step=c["returned_step"], best_psnr=best,
                mean_returned_psnr=sum(returned) / len(returned),
                mean_best_psnr=sum(best) / len(best),
                returned_minus_best_db=min(a - b for a, b in zip(returned, best)),
                drops=drops(c["drops"]), drops_after=drops(c["drops_late"]),
                psnr=[round(p, 3) for p in c["psnr"]],
                wall=[round(w, 3) for w in c["wall_s"]],
                process=c.get("process", 1),
                **({"compile_s": c["compile_s"]} if "compile_s" in c else {}))


def markdown(r: dict) -> str:
    """The results table: per method and target, steps, wall time and speed-up vs eager."""
    m, s = r["machine"], r["settings"]
    simd = f" ({', '.join(m['simd'])})" if m.get("simd") else ""
    lines = [f"Machine: {m['cpu']}{simd}, {m['threads']} threads, torch {m['torch']}; load average "
             f"{m['load_average_start'][0]:.1f} at the start, {m['load_average_end'][0]:.1f} at "
             f"the end. MRI test slice(s) {', '.join(s['slices'])} at {s['size']}x{s['size']}; "
             f"width {s['width']}, {s['layers']} layers; Adam lr {s['lr']:g}; alpha "
             f"{s['alpha']:g} (from tune_weight_scale.json: see its `source`); STRAINER "
             f"pretraining {s['pretrain_steps']} steps on the 10 train slices." + notes(r), "",
             "| method | value range | ms/step | " + " | ".join(
                 f"to {t}: steps / wall s / vs eager{' / vs peer' if r.get('peers') else ''}"
             for t in r["targets"])
             + f" | drops > 1 dB after step {s['drop_start']}: n / max dB | returned - best "
               "(dB, worst slice) |",
             "| --- | --- | ---: | " + " | ".join("---:" for _ in r["targets"])
             + " | ---: | ---: |"]
    for name, row in r["table"].items():
        cells = []
        for t in r["targets"]:
            hit = row[t]
            if hit is None:
                cells.append("not reached")
                continue
            cell = f"{hit['step']} / {hit['wall_s']:.1f}"
            if "speedup_vs_eager" in hit:
                cell += f" / **{hit['speedup_vs_eager']:.1f}x**"
                if "speedup_vs_peer" in hit:
                    cell += f" / **{hit['speedup_vs_peer']:.1f}x**"
                if name in r["pretrained_with"]:
                    cell += (f" ({hit['speedup_vs_eager_amortised']:.1f}x amortised, "
                             f"{hit['speedup_vs_eager_with_pretraining']:.1f}x with all "
                             "pretraining)")
            cells.append(cell)
        run = r["runs"][name]
        late = run["drops_after"]
        cells += [f"{late['count']} / {late['max_depth_db']:.1f}",
                  f"{run['returned_minus_best_db']:+.2f}"]
        lines.append(f"| {name} | {resolve(run['value_range'])} | {run['step_ms']:.0f} | "
                     + " | ".join(cells) + " |")
    if r.get("peers"):
        lines.append("")
        lines.append("Peers (plain PyTorch at the SIREN recipe, last iterate): "
                     + "; ".join(f"{p}, {r['runs'][p]['step_ms']:.0f} ms/step"
                                 + (f", compilation {r['runs'][p]['compile_s']:.1f} s in its wall"
                                    " time" if "compile_s" in r["runs"][p] else "")
                                 for p in r["peers"])
                     + ". Strongest peer per target: "
                     + "; ".join(f"{t}: {p or 'none reached it'}"
                                 for t, p in r["strongest_peer"].items()) + ".")
    if r.get("compile_error"):
        lines.append("")
        lines.append(f"torch.compile peer failed: {r['compile_error']}")
    for name, sec in r["pretrain_wall_s"].items():
        lines.append("")
        lines.append(f"{name} pretraining: {sec:.1f} s wall (amortised over "
                     f"{s['amortised_over']} test slices: {sec / s['amortised_over']:.1f} s "
                     "per slice).")
    return "\n".join(lines) + "\n"


def notes(r: dict) -> str:
    """The header's remarks on a reduced row set (``--rows recipe``), early-stopped recipe
    rows and a run measured in more than one process."""
    s, text = r["settings"], ""
    if s.get("rows") == "recipe":
        text += (" Rows: the baseline, the fast recipe with its validated stabilisers and the "
                 "plain-PyTorch peers only (`--rows recipe`).")
    if s.get("recipe_early_stop"):
        text += (f" The recipe rows and the peers stop at the highest target (at most "
                 f"{s['recipe_steps']} steps), so their drop counts cover those steps only.")
    if r.get("processes", 1) > 1:
        text += (f" Measured in {r['processes']} processes (a run continued after a cut; each "
                 "row's process is in the JSON).")
    return text


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, run in r["runs"].items():
        steps = range(1, len(run["psnr"]) + 1)
        axes[0].plot(run["wall"], run["psnr"], label=name)
        axes[1].plot(steps, run["psnr"], label=name)
    for ax, xlabel in zip(axes, ("wall time (s, fitting only)", "step")):
        for t, v in r["targets"].items():
            ax.axhline(v, color="gray", lw=0.6, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Time to quality, MRI test slice(s) at {r['settings']['size']} px "
                 f"({r['machine']['cpu']}, {r['machine']['threads']} threads)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
