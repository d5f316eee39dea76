"""Runs every reproduction script and writes docs/REPRODUCTION.md from their JSON.

``python benchmarks/repro/run_all.py`` (CPU sizes, ``make repro-quick``) or ``--full``
(paper sizes, for a GPU; ``make repro-full``). A failing item is reported as failed, the
others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
import traceback
from pathlib import Path

import claims
import common
import fig2_in_domain
import fig3_features
import fig4_grad_hist
import fig7_ablation
import stability
import table2_ood
import table5_cost
import tasks_curves

# (module, section title, claim rule function)
ITEMS = {
    "fig2": (fig2_in_domain, "1. In-domain fitting (paper Fig. 2 / Table 1)", claims.fig2),
    "table2": (table2_ood, "2. Out-of-domain fitting (paper Table 2)", claims.table2),
    "table5": (table5_cost, "3. Pretraining cost (paper Table 5)", claims.table5),
    "fig7": (fig7_ablation, "4. Number of shared layers (paper Fig. 7)", claims.fig7),
    "fig3": (fig3_features, "5. Encoder features and spectra (paper Fig. 3)", claims.fig3),
    "fig4": (fig4_grad_hist, "6. Gradient histograms (paper Fig. 4)", claims.fig4),
    "tasks": (tasks_curves, "7. Super-resolution, denoising, 3D occupancy", tasks_curves.claims),
    "stability": (stability, "Beyond the paper: stable test-time fitting", claims.stability),
}

NOTES = {
    "fig2": "The paper's numbers are on CelebA-HQ faces (178x178 RGB, width 256, 5000 "
            "pretraining steps, 2000 fitting steps); ours are on the data and sizes named "
            "above. They are side by side for orientation only, **not** as a like-for-like "
            "comparison.",
    "table2": "Encoders: STRAINER-10 on the 10 MRI training slices (grayscale), STRAINER-10 "
              "on 10 grayscale skimage photos, and STRAINER on the 3 colour skimage photos; "
              "the grayscale-trained encoders get a fresh 3-channel decoder for colour "
              "photos (the encoder maps coordinates to features, so it is channel-agnostic).",
    "fig4": "Histograms are pooled over all test images (one network each).",
    "fig3": "Features: output of the last shared (encoder) layer of the network fitted to "
            "the first test image; for SIREN the same layer of its own network.",
    "stability": "Same images, inits, seeds and steps for every mode. Drops appear once a "
                 "fit reaches high PSNR: in the quick preset, small grayscale photos fitted "
                 "for many steps by a width-64 network (the MRI slices at quick sizes are "
                 "fitted almost exactly and showed hardly any drops in our trials).",
}


# Caveats of the CPU-sized preset (read with the numbers they qualify).
_Q = common.QUICK
_WEIGHTS = 3 * _Q["width"] + (_Q["layers"] - 2) * (_Q["width"] + 1) * _Q["width"] + _Q["width"] + 1
QUICK_NOTES = {
    "fig2": f"Caveat of the quick preset: {_Q['size']}x{_Q['size']} images have "
            f"{_Q['size'] ** 2} pixels per channel for {_WEIGHTS} weights per network, so "
            "every init can end far above the paper's PSNR range and the final-step ordering "
            "mostly says which init converges to a near-exact fit first; the early column is "
            "closer to the regime of the paper's Fig. 2. The encoders and meta-learned inits "
            f"also get {_Q['pretrain_steps']} pretraining steps, not the paper's "
            f"{common.FULL['pretrain_steps']}. Run `--full` (GPU) for the paper's regime.",
}


def write_report(out: Path, cfg: dict, status: dict, path: Path) -> None:
    """Renders the report from ``out``/<item>.json and the run ``status``."""
    flag = " --full" if cfg["preset"] == "full" else ""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rel = Path("repro") if out.resolve() == common.DOCS.resolve() else out.resolve()
    head = [
        "# Reproducing the STRAINER paper's claims", "",
        f"Generated {when} by `python benchmarks/repro/run_all.py{flag}` "
        f"(`make repro-{cfg['preset']}`), preset **{cfg['preset']}**, on: "
        f"{common.machine(cfg)}.",
        "Wall times were measured on a VM whose cores were shared with other jobs, so they "
        "are upper bounds." if "CPU" in common.machine(cfg) else "",
        "",
        "Every number and picture below is read from the JSON/PNG files that the named script "
        f"writes into `{rel}/`; each verdict is decided by the rules in "
        "`benchmarks/repro/claims.py` "
        f"(pairwise claims: *supported* if at least {claims.MARGIN_DB} dB better on average "
        f"and better on at least {claims.WIN_SHARE:.0%} of the images, *partly* if better on "
        "average, else *not supported*). The quick preset uses small images and networks, "
        "so absolute PSNRs are not the paper's; the claims are about orderings.", "",
        f"Quick-preset sizes: {common.QUICK['size']}px images, width {common.QUICK['width']}, "
        f"{common.QUICK['pretrain_steps']} pretraining / {common.QUICK['steps']} fitting steps"
        f" (paper / `--full`: {common.FULL['size']}px, width {common.FULL['width']}, "
        f"{common.FULL['pretrain_steps']} / {common.FULL['steps']}).", "",
        "## Summary", "", "| item | claim | verdict | evidence |", "| --- | --- | --- | --- |"]
    body = []
    for key, (module, title, rule) in ITEMS.items():
        body += [f"## {title}", "",
                 f"Command: `python benchmarks/repro/{Path(module.__file__).name}{flag}` "
                 f"(writes `{rel}/{module.NAME}.json`, `{rel}/{module.NAME}.png`).", ""]
        st = status.get(key, {})
        json_path = out / f"{module.NAME}.json"
        if st.get("error") or not json_path.exists():
            why = st.get("error", "not run")
            body += [f"**Not measured**: {why}", ""]
            head.append(f"| {title.split(' (')[0]} | - | not measured | {why} |")
            continue
        data = json.loads(json_path.read_text())
        lines, found = rule(data)
        if data.get("data"):
            body += [f"Data: {data['data']}.", ""]
        if key in NOTES:
            body += [NOTES[key], ""]
        if cfg["preset"] == "quick" and key in QUICK_NOTES:
            body += [QUICK_NOTES[key], ""]
        if (out / f"{module.NAME}.png").exists():
            body += [f"![{title}]({rel}/{module.NAME}.png)", ""]
        body += lines + [""]
        if "wall_s" in st:
            body += [f"Item wall time: {st['wall_s']:.0f} s.", ""]
        for c in found:
            body.append(f"- **{c.verdict}**: {c.claim}. {c.evidence}. Rule: {c.rule}.")
            head.append(f"| {title.split(' (')[0]} | {c.claim} | **{c.verdict}** | "
                        f"{c.evidence} |")
        body.append("")
    path.write_text("\n".join(head + [""] + body))


def main() -> int:
    cfg, out, args = common.parse(__doc__.splitlines()[0], driver=True)
    keys = list(ITEMS) if not args.only else [k.strip() for k in args.only.split(",")]
    unknown = [k for k in keys if k not in ITEMS]
    if unknown:
        print(f"error: unknown items {unknown}; choose from {list(ITEMS)}", file=sys.stderr)
        return 2
    status_path = out / "status.json"
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    if not args.report_only:
        out.mkdir(parents=True, exist_ok=True)
        for key in keys:
            t0 = time.perf_counter()
            print(f"== {key}", file=sys.stderr, flush=True)
            try:
                ITEMS[key][0].run(cfg, out)
                status[key] = dict(wall_s=time.perf_counter() - t0, preset=cfg["preset"])
            except Exception as exc:  # noqa: BLE001 - reported, the other items go on
                traceback.print_exc()
                status[key] = dict(error=f"{type(exc).__name__}: {exc}".splitlines()[0])
            status_path.write_text(json.dumps(status, indent=1))
    report = common.DOCS.parent / "REPRODUCTION.md" if out.resolve() == common.DOCS.resolve() \
        else out / "REPRODUCTION.md"
    write_report(out, cfg, status, report)
    print(f"wrote {report}", file=sys.stderr)
    return 1 if any("error" in status.get(k, {}) for k in keys) else 0


if __name__ == "__main__":
    sys.exit(main())
