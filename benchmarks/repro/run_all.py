"""Runs every reproduction item and writes docs/repro-report.md from their JSON.

``python benchmarks/repro/run_all.py`` (preset ``cpu``, ``make repro``) or ``--preset paper``
(the paper's sizes, for a GPU; ``make repro-paper``); settings from preregistration.toml.
A failing item is reported as failed, the others still run; the exit status is 1 if any
failed. The report is rewritten after every item, so an interrupted run leaves a report of
the items measured so far (marked partial).

Resuming: when an item finishes, its ``<NAME>.json`` gets a ``provenance`` record with the
hash of its settings (``item_settings``: the item's key and the resolved config it is handed,
preset and tuned values, ``--set`` overrides and ``--train``/``--test`` paths) and its wall
and CPU time. A later run with the same ``--out`` reuses every item whose JSON carries the
same hash (status.json: ``"reused": true``, times of the run that measured it) and runs the
others, after deleting their old JSON and PNG, so an item killed mid-way (no record yet)
runs again from its start. Any change of the config re-runs every item (the whole config is
hashed, not only the keys an item reads). Not in the hash: the code, the contents of the data
files and the hardware; after changing those, run with ``--fresh`` (``make repro-fresh``),
which deletes the earlier results and cached encoders first. The report renders an item's
JSON only if its record is absent (older runs) or matches this run's settings.

Adding an item: a module with ``NAME`` and ``run(cfg, out) -> dict`` (see common.py), a rule
``(data) -> (lines, claims)`` (claims.py or the module), and one ``Item`` line in ``ITEMS``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

import claims
import common
import fig2_in_domain
import fig3_features
import fig4_grad_hist
import fig7_ablation
import fig12_occupancy
import stability
import table2_ood
import table3_generalizable
import table4_capacity
import table5_cost
import table6_inverse


@dataclass
class Item:
    module: ModuleType
    title: str
    rule: Callable[[dict], tuple[list[str], list[claims.Claim]]]
    note: str = ""


# In run order: the headline item first, so a cut-short run still has it.
ITEMS: dict[str, Item] = {
    "fig2": Item(fig2_in_domain, "1. In-domain fitting (paper Fig. 2 / Table 1)", claims.fig2,
                 "The paper's numbers are on CelebA-HQ faces (178x178 RGB, 5000 pretraining / "
                 "2000 fitting steps); ours are on the data and sizes named here, side by side "
                 "for orientation only, **not** a like-for-like comparison."),
    "table2": Item(table2_ood, "2. Out-of-domain fitting (paper Table 2)", claims.table2,
                   "Encoders: STRAINER-10 on the 10 MRI training slices (grayscale), STRAINER-10 "
                   "on 10 grayscale skimage photos (the grayscale-trained variant), STRAINER-3 "
                   "on 3 colour skimage photos; grayscale-trained encoders get a fresh "
                   "3-channel decoder for colour photos. MRI <-> photos in both directions."),
    "table4": Item(table4_capacity, "3. Capacity: wider SIREN vs STRAINER (paper Table 4 "
                   "analogue)", claims.table4),
    "table6": Item(table6_inverse, "4. Inverse problems (paper Table 6)", claims.table6),
    "table5": Item(table5_cost, "5. Pretraining cost (paper Table 5)", claims.table5),
    "fig7": Item(fig7_ablation, "6. Number of shared layers (paper Fig. 7)", claims.fig7),
    "fig3": Item(fig3_features, "7. Encoder features and spectra (paper Fig. 3)", claims.fig3,
                 "Features: output of the last shared (encoder) layer of the network fitted to "
                 "the first test image; for SIREN the same layer of its own network."),
    "fig4": Item(fig4_grad_hist, "8. Gradient histograms (paper Fig. 4)", claims.fig4,
                 "Histograms are pooled over the test images (one network each)."),
    "fig12": Item(fig12_occupancy, "9. 3D occupancy (paper Fig. 12)", claims.fig12),
    "stability": Item(stability, "10. Beyond the paper: stable test-time fitting",
                      claims.stability,
                      "Same images, inits, seeds and steps for every mode; grayscale skimage "
                      "photos at the small size."),
    "table3": Item(table3_generalizable, "11. Generalizable INRs (paper Table 3 analogue, "
                   "reduced scale)", claims.table3,
                   "STRAINER-10 and SIREN against reduced-scale TransINR and IPC (small "
                   "transformers, a few hundred training steps on a CPU; the papers': 42M "
                   "parameters, days on 4 GPUs), each as the feed-forward prediction and with "
                   "test-time optimisation (TTO) from it, on the first MRI test slices at the "
                   "small size; every fitted method gets the same fitting steps."),
}

PROVENANCE = "provenance"  # key of the record run_all adds to a finished item's JSON
UNHASHED = ("progress", "cache_dir")  # display and location only: no result depends on them


def item_settings(cfg: dict, key: str) -> dict:
    """What item ``key``'s result is keyed by: its key and ``cfg`` less ``UNHASHED``."""
    return dict(item=key, config={k: v for k, v in cfg.items() if k not in UNHASHED})


def settings_hash(cfg: dict, key: str) -> str:
    """16 hex digits of the SHA-256 of ``item_settings(cfg, key)`` as sorted JSON."""
    text = json.dumps(item_settings(cfg, key), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def provenance(out: Path, key: str) -> dict | None:
    """The record run_all added to item ``key``'s JSON in ``out`` when it finished, or None
    (no JSON, an unreadable one, or one the item wrote without finishing)."""
    path = out / f"{ITEMS[key].module.NAME}.json"
    try:
        record = json.loads(path.read_text()).get(PROVENANCE)
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return record if isinstance(record, dict) and "settings_hash" in record else None


def mark_finished(out: Path, key: str, cfg: dict, record: dict) -> None:
    """Adds ``record`` (timing, ``settings_hash``) and the hashed settings to item ``key``'s
    JSON in ``out``, atomically: from here on the item counts as finished."""
    path = out / f"{ITEMS[key].module.NAME}.json"
    data = json.loads(path.read_text())
    data[PROVENANCE] = dict(record, settings=item_settings(cfg, key),
                            finished=datetime.datetime.now(datetime.timezone.utc).isoformat())
    common.write_atomic(path, json.dumps(data, indent=1))


CPU_CUTS = ("Cuts forced by the {budget}-minute budget on 2 CPU cores (pre-registered in "
            "`benchmarks/repro/preregistration.toml`; the budget arithmetic is "
            "`benchmarks/repro/budget.py`): the network width is {width}, **not** the paper's "
            "256: the width whose SIREN comes closest to the paper's {target} dB on the "
            "validation slices among the widths whose cpu preset fits the budget (the "
            "pre-registered rule, `validate.py --part width`); the meta-learned init gets "
            "{meta_steps} outer steps (paper: 5000), where its validation curve flattens "
            "among the pre-registered checkpoints (`validate.py --part meta`); the "
            "{second_value_range} rows run seeds {second_seeds}; the secondary items (2-6, "
            "9-11) run at {small_size}px (inverse problems {task_size}px) on "
            "{natural_test_images} of the 4 test photos with fewer steps, one seed, and the "
            "ablation with {ablation_shared} shared layers.")


def validation_lines(out: Path, cfg: dict) -> list[str]:
    """What the validation split chose, and whether preregistration.toml agrees."""
    path = out / "validation.json"
    if not path.exists():
        return ["**Validation choices: `validation.json` missing** (run "
                "`benchmarks/repro/validate.py`); the tuned values were not checked.", ""]
    v = json.loads(path.read_text())
    tuned = common.PREREG["tuned"]
    lines = ["Choices made on the validation split (`benchmarks/repro/validate.py` -> "
             f"`docs/repro/validation.json`; tuning-train {len(v['tuning_train'])} slices, "
             f"validation {', '.join(v['validation'])}; never the test slices):", ""]
    agree = True
    if "size" in v:
        size = v["size"]
        cands = "; ".join(f"{r['size']}px: SIREN {r['siren_final_psnr']:.2f} dB"
                          for r in size["candidates"])
        lines.append(f"- image side: **{size['chosen']}px** by the rule \"{size['rule']}\" "
                     f"({cands}; {size['wall_s']:.0f} s wall, {size['cpu_s']:.0f} s CPU);")
        agree &= size["chosen"] == tuned["size"]
    else:
        lines.append("- image side: **not yet chosen** (validate.py --part size did not finish)")
    if "strainer_lr" in v:
        lr = v["strainer_lr"]
        grid = "; ".join(f"{r['strainer_lr'][0]:g},{r['strainer_lr'][1]:g}: superres "
                         f"{r['superres_psnr']:.2f}, denoise {r['denoise_psnr']:.2f} dB"
                         for r in lr["grid"])
        lines.append(f"- `--strainer-lr` (encoder, decoder multipliers): **{lr['chosen'][0]:g}, "
                     f"{lr['chosen'][1]:g}** by the rule \"{lr['rule']}\" ({grid}; "
                     f"{lr['wall_s']:.0f} s wall, {lr['cpu_s']:.0f} s CPU); the previous default "
                     f"{lr['previous_default'][0]:g}, {lr['previous_default'][1]:g} "
                     f"{'changes' if lr['changed'] else 'stays'};")
        agree &= lr["chosen"] == list(tuned["strainer_lr"])
    else:
        lines.append("- `--strainer-lr`: **not yet chosen** (validate.py --part strainer_lr did "
                     "not finish)")
    if "width" in v:
        width = v["width"]
        cands = "; ".join(f"{r['width']}: {r['status']}, est. {r['estimate_min']:.0f} min"
                          + (f", SIREN {r['psnr']:.2f} dB" if r.get("psnr") is not None
                             else "") for r in width["candidates"])
        lines.append(f"- network width: **{width['chosen']}** by the rule \"{width['rule']}\" "
                     f"({cands}; {width['wall_s']:.0f} s wall, {width['cpu_s']:.0f} s CPU)"
                     + (f"; {width['note']}" if width.get("note") else "") + ";")
        agree &= width["chosen"] == tuned["width"]
    else:
        lines.append("- network width: **not yet chosen** (validate.py --part width did not "
                     "finish)")
    if "meta" in v:
        meta = v["meta"]
        cands = "; ".join(f"{r['steps']}: {r['psnr']:.2f} dB" for r in meta["candidates"])
        lines.append(f"- meta-learning outer steps: **{meta['chosen']}** by the rule "
                     f"\"{meta['rule']}\" ({cands}; {meta['wall_s']:.0f} s wall, "
                     f"{meta['cpu_s']:.0f} s CPU);")
        agree &= meta["chosen"] == tuned["meta_steps"]
    else:
        lines.append("- meta-learning outer steps: **not yet chosen** (validate.py --part meta "
                     "did not finish)")
    checked = [k for k in ("size", "strainer_lr", "width", "meta") if k in v]
    lines += [f"- preregistration.toml `[tuned]` {'agrees' if agree else '**DISAGREES**'} with "
              f"the choices above ({', '.join(checked)} checked).", ""]
    return lines


RANGE_NAMES = {"unit": "[0, 1]", "signed": "[-1, 1]"}  # value range -> what it means


def summary(out: Path, status: dict) -> str:
    """The reproduction at a glance (the docs page's summary), from ``out``/<item>.json: the
    regime next to the paper's, the in-domain rows in each value range, and every claim
    that is not supported or only partly. Items whose JSON is missing are named."""
    path = out / f"{fig2_in_domain.NAME}.json"
    if not path.exists():
        return "**No in-domain result yet** (`docs/repro/fig2_in_domain.json` is missing)."
    d = json.loads(path.read_text())
    c, runs, paper = d["config"], d["runs"], d["paper_psnr"]
    first = c.get("value_range", "signed")
    rows = d.get("protocol_rows", {first: {m: m for m in runs}})
    ranges = list(rows)

    def mean(row: str | None) -> str:
        finals = [r["psnr"][-1] for r in runs.get(row or "", {}).values()]
        return claims._ms(finals) if finals else "-"

    wall = sum(st.get("wall_s", 0) for st in status.values()) / 60
    lines = [f"Regime: {d['data']}; {c['size']} px, network width {c['width']} (the paper: "
             f"256), {c['layers']} layers, {c['pretrain_steps']} pretraining / {c['steps']} "
             f"fitting steps, Adam {c['lr']:g}, seeds {c['seeds']}; machine: {d['machine']}; "
             f"{wall:.0f} min wall for the whole report. The paper: CelebA-HQ faces, 178 px "
             "RGB, width 256, pixels in [0, 1] as its authors' code loads them.", "",
             "| init (final PSNR, dB) | " + " | ".join(f"here, targets in {RANGE_NAMES[r]}"
                                                   for r in ranges)
             + " | the paper |", "| --- |" + " ---: |" * (len(ranges) + 1)]
    second = {row for vr in ranges[1:] for row in rows[vr].values()}
    for m in runs:
        if m in second:
            continue  # a second-protocol row: shown in its method's line
        cells = [mean(m if vr == first else rows[vr].get(m)) for vr in ranges]
        ref = f"{paper[m]:.1f}" if m in paper else "-"
        lines.append(f"| {m} | {' | '.join(cells)} | {ref} |")
    verdicts: dict[str, list[str]] = {}
    missing = []
    for key, item in ITEMS.items():
        p = out / f"{item.module.NAME}.json"
        if not p.exists() or status.get(key, {}).get("error"):
            missing.append(item.title.split(" (")[0])
            continue
        for cl in item.rule(json.loads(p.read_text()))[1]:
            verdicts.setdefault(cl.verdict, []).append(
                f"{item.title.split(' (')[0]}: {cl.claim} ({cl.evidence})")
    counts = ", ".join(f"{len(verdicts.get(v, []))} {v}"
                       for v in ("supported", "partly", "not supported"))
    n_claims = sum(map(len, verdicts.values()))
    lines += ["", "Mean +- standard deviation over seeds (a row without one ran one seed); "
              "PSNR on [0, 1] pixels in every column.", "",
              f"Claims ({n_claims}): {counts}, decided by the rules in "
              "`benchmarks/repro/claims.py`"
              + (f"; not measured: {', '.join(missing)}" if missing else "") + "."]
    for v in ("not supported", "partly"):
        if verdicts.get(v):
            lines += ["", f"**{v.capitalize()}:**", ""] + [f"- {x}" for x in verdicts[v]]
    return "\n".join(lines)


def write_report(out: Path, cfg: dict, status: dict, path: Path) -> None:
    """Renders the report from ``out``/<item>.json and the run ``status``."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rel = Path("repro") if out.resolve() == common.DOCS.resolve() else out.resolve()
    other_settings = {}  # items whose JSON was finished under other settings than ``cfg``
    for k in ITEMS:
        record = provenance(out, k)
        if record and record["settings_hash"] != settings_hash(cfg, k):
            other_settings[k] = (f"the JSON in `{rel}/` was measured with other settings "
                                 f"(hash {record['settings_hash']}, this run's "
                                 f"{settings_hash(cfg, k)})")
    measured = [k for k in ITEMS if (out / f"{ITEMS[k].module.NAME}.json").exists()
                and not status.get(k, {}).get("error") and k not in other_settings]
    wall = sum(status[k].get("wall_s", 0) for k in measured if k in status)
    cpu = sum(status[k].get("cpu_s", 0) for k in measured if k in status)
    c = cfg
    head = [
        "# Reproducing the STRAINER paper's claims", "",
        f"Generated {when} by `python benchmarks/repro/run_all.py --preset {cfg['preset']}` "
        f"(`make repro{'' if cfg['preset'] == 'cpu' else '-' + cfg['preset']}`) on: "
        f"{common.machine(cfg)}.",
        "" if len(measured) == len(ITEMS) else
        f"**Partial report: {len(measured)} of {len(ITEMS)} items measured** "
        f"({', '.join(measured) or 'none'}); the others say *not measured*.", "",
        f"Measured items took {wall / 60:.1f} min wall, {cpu / 60:.1f} min process CPU time "
        "in total. "
        + "CPU times are this process's own; whether the machine was idle during the run is "
        "said in the run notes below.",
        "",
        "Pre-registered: presets, seeds, splits, tuned defaults and their selection rules are "
        "in `benchmarks/repro/preregistration.toml`, fixed before this run. "
        + (f"**This run departs from it**: {cfg['overrides']}." if cfg.get("overrides") else
           "This run uses it unchanged."), "",
        f"Preset **{cfg['preset']}**: the paper's network (2 -> {c['layers'] - 1} sine layers "
        f"of width {c['width']}, {c['shared']} shared, -> one linear layer per signal; w0 "
        f"{c['w0']:g}; Adam lr {c['lr']:g}; full-grid MSE on targets in the "
        f"{c['value_range']} value range; {c['precision']} fp32), "
        f"{c['size']}px images, {c['pretrain_steps']} pretraining / {c['steps']} fitting "
        f"steps, seeds {c['seeds']} for the headline rows. "
        + (common.capacity_line(c, c["size"] ** 2, f"{c['size']}x{c['size']} grayscale MRI")
           if c["width"] != common.UNSET else "The width is not chosen yet ([tuned].width)")
        + ".", "",
        *(([CPU_CUTS.format(**c, budget=common.PREREG["choices"]["budget_minutes"],
                            target=common.PREREG["choices"]["width_target_psnr"]), ""])
          if cfg["preset"] == "cpu" else []),
        *validation_lines(out, cfg),
        *((["Run notes (written by hand in `notes.md` next to the JSON):", "",
             (out / "notes.md").read_text().strip(), ""]) if (out / "notes.md").exists() else []),
        "Every number and picture below is read from the JSON/PNG files that the named script "
        f"writes into `{rel}/`; each verdict is decided by the rules in "
        "`benchmarks/repro/claims.py` (pairwise claims: *supported* if at least "
        f"{claims.MARGIN_DB} dB better on average and better on at least "
        f"{claims.WIN_SHARE:.0%} of the images, *partly* if better on average, else *not "
        "supported*; headline rows over seeds: the same over all (seed, image) pairs and, for "
        "*supported*, better for every seed).", "",
        "## Summary", "", "| item | claim | verdict | evidence |", "| --- | --- | --- | --- |"]
    body = []
    for key, item in ITEMS.items():
        name, title = item.module.NAME, item.title
        body += [f"## {title}", "",
                 f"Command: `python benchmarks/repro/{Path(item.module.__file__).name} "
                 f"--preset {cfg['preset']}` (writes `{rel}/{name}.json`, `{rel}/{name}.png`).",
                 ""]
        st = status.get(key, {})
        json_path = out / f"{name}.json"
        if st.get("error") or not json_path.exists() or key in other_settings:
            why = st.get("error") or other_settings.get(key, "not run")
            body += [f"**Not measured**: {why}", ""]
            head.append(f"| {title.split(' (')[0]} | - | not measured | {why} |")
            continue
        data = json.loads(json_path.read_text())
        lines, found = item.rule(data)
        if data.get("data"):
            body += [f"Data: {data['data']}.", ""]
        if item.note:
            body += [item.note, ""]
        if (out / f"{name}.png").exists():
            body += [f"![{title}]({rel}/{name}.png)", ""]
        body += lines + [""]
        if "wall_s" in st:
            body += [f"Item time: {st['wall_s']:.0f} s wall, {st.get('cpu_s', 0):.0f} s process "
                     "CPU" + (" (measured by an earlier run with the same settings, whose "
                              "result this run reused)." if st.get("reused") else "."), ""]
        for cl in found:
            body.append(f"- **{cl.verdict}**: {cl.claim}. {cl.evidence}. Rule: {cl.rule}.")
            head.append(f"| {title.split(' (')[0]} | {cl.claim} | **{cl.verdict}** | "
                        f"{cl.evidence} |")
        body.append("")
    common.write_atomic(path, "\n".join(head + [""] + body))


def run_item(cfg: dict, out: Path, key: str) -> dict:
    """Runs item ``key`` into ``out`` and marks its JSON finished; its status.json entry
    (wall / CPU seconds, settings hash, or the error it failed with)."""
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        ITEMS[key].module.run(cfg, out)
        record = dict(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0,
                      preset=cfg["preset"], overrides=cfg["overrides"],
                      settings_hash=settings_hash(cfg, key))
        mark_finished(out, key, cfg, record)
        return dict(record, reused=False)
    except Exception as exc:  # noqa: BLE001 - reported, the other items go on
        traceback.print_exc()
        return dict(error=f"{type(exc).__name__}: {exc}".splitlines()[0])


def main() -> int:
    cfg, out, args = common.parse(__doc__.splitlines()[0], driver=True)
    try:
        common.check_tuned(cfg)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keys = list(ITEMS) if not args.only else [k.strip() for k in args.only.split(",")]
    unknown = [k for k in keys if k not in ITEMS]
    if unknown:
        print(f"error: unknown items {unknown}; choose from {list(ITEMS)}", file=sys.stderr)
        return 2
    cfg["cache_dir"] = str(out / "cache")  # encoders shared by items (and processes)
    if args.fresh:
        import shutil

        shutil.rmtree(out / "cache", ignore_errors=True)
        (out / "status.json").unlink(missing_ok=True)
        (out / "notes.md").unlink(missing_ok=True)  # hand-written notes of an earlier run
        for key in ITEMS:
            (out / f"{ITEMS[key].module.NAME}.json").unlink(missing_ok=True)
    status_path = out / "status.json"
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    report = common.DOCS.parent / "repro-report.md" if out.resolve() == common.DOCS.resolve() \
        else out / "repro-report.md"
    if not args.report_only:
        out.mkdir(parents=True, exist_ok=True)
        done = {key: r for key in keys if (r := provenance(out, key))
                and r["settings_hash"] == settings_hash(cfg, key)}
        for key in keys:
            if key not in done:  # stale or unfinished: must not show in the report meanwhile
                for suffix in (".json", ".png"):
                    (out / f"{ITEMS[key].module.NAME}{suffix}").unlink(missing_ok=True)
        for key in keys:
            if key in done:
                print(f"== {key}: reused (finished {done[key]['finished']}, same settings)",
                      file=sys.stderr, flush=True)
                status[key] = dict({k: v for k, v in done[key].items() if k != "settings"},
                                   reused=True)
            else:
                print(f"== {key}", file=sys.stderr, flush=True)
                status[key] = run_item(cfg, out, key)
            latest = json.loads(status_path.read_text()) if status_path.exists() else {}
            status = dict(latest, **{key: status[key]})  # another process may run other items
            common.write_atomic(status_path, json.dumps(status, indent=1))
            write_report(out, cfg, status, report)
            print(f"   {key}: " + ", ".join(f"{k} {v:.0f} s" if isinstance(v, float) else
                                        f"{k} {v}" for k, v in status[key].items()
                                        if k != "overrides"), file=sys.stderr, flush=True)
    write_report(out, cfg, status, report)
    print(f"wrote {report}", file=sys.stderr)
    return 1 if any("error" in status.get(k, {}) for k in keys) else 0


if __name__ == "__main__":
    sys.exit(main())
