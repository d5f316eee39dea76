"""Pre-registered choices made on the VALIDATION split (never on test images); writes
``docs/repro/validation.json``.

1. Image side of the cpu preset: SIREN (the preset's network and fitting budget) fitted to
   the 2 validation slices at each of ``[choices].size_candidates`` in order; the first
   side whose mean final PSNR is <= ``size_max_siren_psnr`` dB is chosen (else the last).
2. ``--strainer-lr`` multipliers of the inverse-problem tasks: a STRAINER-8 encoder
   pretrained on the 8 tuning-train slices; super-resolution (x4) and denoising
   (gaussian:0.1) of the validation slices at ``task_size`` from that encoder with each
   entry of ``[choices].strainer_lr_grid``; the highest mean final PSNR over both tasks wins.
3. Network width of the cpu preset (issue 29): SIREN (the preset's depth, w0, lr) fitted for
   ``width_steps`` steps to the 2 validation slices at ``width_size`` px in the
   ``width_value_range`` protocol, for each of ``[choices].width_candidates`` in increasing
   order. Each candidate first gets its pass cost timed (``pass_cost.measure_pass`` at the
   preset's side) and the whole preset's minutes estimated at that width (``budget.py``); an
   estimate over ``budget_minutes`` is recorded and not fitted, nor is any wider candidate.
   Chosen: the fitted width whose mean validation PSNR is closest to ``width_target_psnr``
   (ties: the narrower); if none fits the budget, the narrowest, and the result says so.

4. Outer steps of the meta-learned init (issue 29): ``meta_init`` (the preset's method,
   inner steps, lr, side, width and value range) on the 8 tuning-train slices for the
   largest of ``[choices].meta_checkpoints`` outer steps, its meta weights snapshotted at
   each checkpoint; the 2 validation slices fitted for ``meta_fit_steps`` steps from each
   snapshot. Chosen: the smallest checkpoint whose next one gains less than
   ``meta_flat_db`` dB of mean validation PSNR (the curve has flattened), else the last.
   Its cost in passes: ``budget.meta_validation_cost``.

``python benchmarks/repro/validate.py [--part size|strainer_lr|width|meta] [--preset cpu]``.
The chosen values are then copied by hand into ``[tuned]`` of preregistration.toml before
the report runs (run_all.py checks they agree). Parts 1, 2 and 4 use the preset's width, so
they need ``[tuned].width`` set first."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

import budget
import common
import pass_cost
from strainer_fast.data import load_images, validation_split
from strainer_fast.fit import fit_many
from strainer_fast.meta import meta_init
from strainer_fast.tasks.denoise import add_noise, denoise
from strainer_fast.tasks.superres import downsample, superres

NAME = "validation"
SCALE, NOISE = 4, "gaussian:0.1"


def choose_size(cfg: dict, val_paths) -> dict:
    rule = common.PREREG["choices"]
    rows = []
    for size in rule["size_candidates"]:
        val, _ = load_images(val_paths, size)
        (r, wall, cpu) = common.timed(lambda: fit_many(
            val, "siren", desc=f"validation SIREN {size}px", **common.fit_kw(cfg, log_every=0)))
        rows.append(dict(size=size, siren_final_psnr=r.final_psnr(), wall_s=wall, cpu_s=cpu))
        if r.final_psnr() <= rule["size_max_siren_psnr"]:
            break
    chosen = next((r["size"] for r in rows if r["siren_final_psnr"] <=
                   rule["size_max_siren_psnr"]), rows[-1]["size"])
    return dict(rule=f"first of {rule['size_candidates']} with SIREN's mean validation PSNR "
                f"after {cfg['steps']} steps <= {rule['size_max_siren_psnr']} dB (else the last)",
                candidates=rows, chosen=chosen)


def choose_strainer_lr(cfg: dict, tune_paths, val_paths) -> dict:
    size = cfg["task_size"]
    tune, _ = load_images(tune_paths, size)
    val, _ = load_images(val_paths, size)
    enc = common.pretrained(cfg, "tuning-train", tune, shared=cfg["shared"],
                            steps=cfg["task_pretrain_steps"], seed=cfg["seed"])
    observed, noisy = downsample(val, SCALE), add_noise(val, NOISE, cfg["seed"])
    kw = dict(init_weights=enc.layers, **common.fit_kw(cfg, steps=cfg["task_steps"],
                                                          log_every=0))
    rows = []
    for enc_mult, dec_mult in common.PREREG["choices"]["strainer_lr_grid"]:
        lr = (float(enc_mult), float(dec_mult))
        sr = superres(observed, SCALE, "strainer", reference=val, transfer_lr=lr, **kw)
        dn = denoise(noisy, "strainer", clean=val, transfer_lr=lr, **kw)
        rows.append(dict(strainer_lr=list(lr), superres_psnr=sr.final_psnr(),
                         denoise_psnr=dn.final_psnr(),
                         mean_psnr=float(np.mean([sr.final_psnr(), dn.final_psnr()]))))
        print(rows[-1], file=sys.stderr, flush=True)
    best = max(rows, key=lambda r: r["mean_psnr"])  # max keeps the first of equal entries
    return dict(rule="highest mean final validation PSNR over superres x4 and denoising "
                f"{NOISE}; encoder: STRAINER-{len(tune)} on the tuning-train slices, "
                f"{cfg['task_pretrain_steps']} steps; {size}px, {cfg['task_steps']} fitting "
                "steps", grid=rows, chosen=best["strainer_lr"],
                previous_default=[0.03, 10.0],
                changed=best["strainer_lr"] != [0.03, 10.0],
                encoder_cost=dict(wall_s=enc.wall_s, cpu_s=enc.cpu_s))


PASS_STEPS = 10  # timed steps per width candidate (after a 2-step warm-up)


def width_rows(widths: list[int], measure, fit, fit_max_minutes: float) -> list[dict]:
    """The candidates in increasing width, each ``{width, **measure(width), status}``:
    ``measure(width)`` gives at least ``estimate_min`` (the preset's minutes at that width)
    and ``fit_min`` (the validation fit's minutes); ``fit(width)`` (its results merged in,
    status "fitted") runs while ``fit_min`` stays within ``fit_max_minutes``: the first
    candidate over it and the wider ones are "not fitted"."""
    rows, costly = [], None
    for width in sorted(widths):
        row = dict(width=width, **measure(width))
        if costly is None and row["fit_min"] > fit_max_minutes:
            costly = width
        if costly is not None:
            row["status"] = (f"not fitted (the validation fit of width {costly} is estimated "
                             f"over {fit_max_minutes:g} min)")
        else:
            row.update(fit(width), status="fitted")
        rows.append(row)
    return rows


def pick_width(rows: list[dict], target_psnr: float, budget_minutes: float) -> tuple[int, str]:
    """(chosen width, note) from ``width_rows``: of the fitted widths whose preset estimate is
    within ``budget_minutes``, the one whose ``psnr`` is closest to ``target_psnr`` (ties: the
    narrower); if no fitted width is within the budget, the closest of all fitted widths, and
    the note says by how much its preset overruns the budget."""
    closest = lambda rs: min(rs, key=lambda r: (abs(r["psnr"] - target_psnr), r["width"]))  # noqa: E731
    fitted = [r for r in rows if r["status"] == "fitted"]
    if not fitted:
        raise ValueError("no width candidate was fitted: raise width_fit_max_minutes")
    within = [r for r in fitted if r["estimate_min"] <= budget_minutes]
    if within:
        return closest(within)["width"], ""
    best = closest(fitted)
    return best["width"], (
        f"no candidate's preset fits the {budget_minutes:g}-minute budget (the narrowest, "
        f"{min(rows, key=lambda r: r['width'])['width']}, is estimated at "
        f"{min(rows, key=lambda r: r['width'])['estimate_min']:.0f} min): the width closest to "
        f"{target_psnr} dB is chosen, {best['width']}, whose preset is estimated at "
        f"{best['estimate_min']:.0f} min; the report states the overrun")


def choose_width(cfg: dict, val_paths) -> dict:
    rule = common.PREREG["choices"]
    size, steps, vr = rule["width_size"], rule["width_steps"], rule["width_value_range"]
    target, limit = rule["width_target_psnr"], rule["budget_minutes"]
    fit_max = rule["width_fit_max_minutes"]
    val, _ = load_images(val_paths, size)
    fit_cfg = dict(cfg, value_range=vr)

    def measure(width: int) -> dict:
        cost = pass_cost.measure_pass(cfg, cfg["size"], width, PASS_STEPS)
        wide = dict(cfg, width=width)
        passes = sum(r["passes"] for r in budget.planned_passes(wide).values())
        row = dict(pass_wall_ms=cost["wall_ms"], pass_cpu_ms=cost["cpu_ms"],
                      planned_passes=passes,
                   estimate_min=budget.estimate_minutes(wide, cost["wall_ms"]),
                   fit_min=len(val) * steps * cost["wall_ms"] / 60e3)
        print(f"width {width}: {row}", file=sys.stderr, flush=True)
        return row

    def fit(width: int) -> dict:
        r, wall, cpu = common.timed(lambda: fit_many(
            val, "siren", desc=f"validation SIREN width {width}",
            **common.fit_kw(fit_cfg, steps=steps, log_every=0, width=width)))
        print(f"width {width}: SIREN {r.final_psnr():.2f} dB", file=sys.stderr, flush=True)
        return dict(psnr=r.final_psnr(), psnr_per_image=r.psnr[-1], wall_s=wall, cpu_s=cpu)

    rows = width_rows(rule["width_candidates"], measure, fit, fit_max)
    chosen, note = pick_width(rows, target, limit)
    return dict(rule=f"in increasing width: a pass timed at {cfg['size']}px, the "
                f"{cfg['preset']} preset's minutes estimated (budget.py passes x that pass); "
                f"SIREN ({cfg['layers']} layers, {size}px, value range {vr}, {steps} steps, "
                f"Adam lr {cfg['lr']:g}) fitted to the validation slices while that fit is "
                f"estimated within {fit_max:g} min; of the fitted widths whose preset is "
                f"within {limit:g} min, the one whose mean validation PSNR is closest to "
                f"{target} dB (ties: the narrower); if none is within the budget, the closest "
                "of all fitted widths, the overrun stated",
                candidates=rows, chosen=chosen, note=note, budget_minutes=limit,
                fit_max_minutes=fit_max, target_psnr=target, pass_steps=PASS_STEPS)


def pick_meta_steps(rows: list[dict], flat_db: float) -> int:
    """The chosen outer-step count of ``rows`` ``[{steps, psnr}]`` (any order): the smallest
    checkpoint after which the next one gains < ``flat_db`` dB of ``psnr``, else the last."""
    rows = sorted(rows, key=lambda r: r["steps"])
    if not rows:
        raise ValueError("no meta-learning checkpoint to choose from")
    return next((a["steps"] for a, b in zip(rows, rows[1:]) if b["psnr"] - a["psnr"] < flat_db),
                rows[-1]["steps"])


def choose_meta_steps(cfg: dict, tune_paths, val_paths) -> dict:
    rule = common.PREREG["choices"]
    checkpoints, fit_steps = sorted(rule["meta_checkpoints"]), rule["meta_fit_steps"]
    flat = rule["meta_flat_db"]
    tune, _ = load_images(tune_paths, cfg["size"])
    val, _ = load_images(val_paths, cfg["size"])
    snaps: dict = {}
    t0 = (time.perf_counter(), time.process_time())
    meta_init(tune, cfg["meta_method"], steps=checkpoints[-1],
              inner_steps=cfg["meta_inner_steps"], lr=cfg["lr"], **common.net(cfg),
              **common.opts(cfg), callbacks=[common.Snapshots(
                  set(checkpoints), snaps, t0, layers=lambda m: m.network_layers(0))])
    rows = []
    for steps in checkpoints:
        layers, meta_wall, meta_cpu = snaps[steps]
        r, wall, cpu = common.timed(lambda: fit_many(
            val, "meta", init_weights=layers, desc=f"validation meta-{steps}",
            **common.fit_kw(cfg, steps=fit_steps, log_every=0)))
        rows.append(dict(steps=steps, psnr=r.final_psnr(), psnr_per_image=r.psnr[-1],
                         meta_wall_s=meta_wall, meta_cpu_s=meta_cpu, fit_wall_s=wall,
                         fit_cpu_s=cpu))
        print(f"meta {steps} outer steps: {r.final_psnr():.2f} dB", file=sys.stderr, flush=True)
    cost = budget.meta_validation_cost(cfg, len(tune), len(val))
    return dict(rule=f"{cfg['meta_method']} ({cfg['meta_inner_steps']} inner steps, lr "
                f"{cfg['lr']:g}) on the {len(tune)} tuning-train slices at {cfg['size']}px, "
                f"width {cfg['width']}, value range {cfg['value_range']}, snapshotted at "
                f"{checkpoints} outer steps; the {len(val)} validation slices fitted "
                f"{fit_steps} steps from each; the smallest checkpoint after which the next "
                f"gains < {flat:g} dB of mean validation PSNR, else the last",
                candidates=rows, chosen=pick_meta_steps(rows, flat), flat_db=flat,
                fit_steps=fit_steps, planned_passes=cost)


PARTS = ("size", "strainer_lr", "width", "meta")


def run(cfg: dict, out: Path, parts: tuple[str, ...] = PARTS) -> dict:
    """Runs the choices in ``parts``; each writes ``out/validation_<part>.json`` (so the
    parts can run as separate processes), then ``out/validation.json`` holds every part
    written so far."""
    tune_paths, val_paths = validation_split()
    out.mkdir(parents=True, exist_ok=True)
    if set(parts) - {"width"}:
        common.check_tuned(cfg, allow=("meta_steps",))  # the others fit at the preset's width
    for part in parts:
        make = {"size": lambda: choose_size(cfg, val_paths),
                "strainer_lr": lambda: choose_strainer_lr(cfg, tune_paths, val_paths),
                "width": lambda: choose_width(cfg, val_paths),
                "meta": lambda: choose_meta_steps(cfg, tune_paths, val_paths)}[part]
        result, wall, cpu = common.timed(make)
        result.update(wall_s=wall, cpu_s=cpu)
        (out / f"{NAME}_{part}.json").write_text(json.dumps(result, indent=1))
        print(f"{part}: chosen {result['chosen']}", file=sys.stderr, flush=True)
    data = dict(machine=common.machine(cfg), preset=cfg["preset"],
                tuning_train=[p.name for p in tune_paths],
                validation=[p.name for p in val_paths])
    for part in PARTS:
        path = out / f"{NAME}_{part}.json"
        if path.exists():
            data[part] = json.loads(path.read_text())
    (out / f"{NAME}.json").write_text(json.dumps(data, indent=1))
    return data


def main() -> None:
    parts = PARTS
    if "--part" in sys.argv:  # --part size|strainer_lr|width|meta, before the common options
        i = sys.argv.index("--part")
        parts = (sys.argv[i + 1],)
        del sys.argv[i:i + 2]
        if parts[0] not in PARTS:
            sys.exit(f"error: --part must be one of {PARTS}")
    common.main(lambda cfg, out: run(cfg, out, parts), __doc__, needs_tuned=False)


if __name__ == "__main__":
    main()
