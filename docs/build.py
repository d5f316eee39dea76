"""Builds and checks the documentation site (``make docs`` runs ``python docs/build.py``).

1. Renders every results table the pages show from the committed JSON
   (``benchmarks/results/*.json``, ``docs/repro/*.json``) into ``docs/generated/*.md``
   (git-ignored), each with the file, machine, date and commit it came from; the pages
   include them, so no hand-copied figure survives a rebuild.
2. Checks that ``docs/repro-report.md`` (written by ``benchmarks/repro/run_all.py``) still
   shows what its JSON says: its tables are re-rendered and compared.
3. ``mkdocs build --strict`` into ``site/`` (any warning, broken link or missing page fails).
4. API coverage: every name of ``strainer_fast.__all__`` has a docstring (and so do the
   public methods of its classes), type hints, and a rendered entry in ``site/api/``.
5. Opens ``site/api/index.html`` in headless Chromium, finds every entry in the rendered DOM
   and saves a screenshot as ``site/api-screenshot.png``.

``--tables-only`` stops after step 2 (no mkdocs needed); ``--no-browser`` skips step 5.
Exit status 1 with one line per problem on any failure.
"""

from __future__ import annotations

import argparse
import datetime
import html.parser
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
REPRO = DOCS / "repro"
SITE = ROOT / "site"
GENERATED = DOCS / "generated"
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "benchmarks" / "repro")]


class DocsError(Exception):
    """A check failed; the message says what and how to fix it."""


# ---------------------------------------------------------------------------- provenance
def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def git_commit(path: Path) -> str:
    """``abc1234 (2026-11-30)``: the commit that last changed ``path`` (and whether the file
    has uncommitted changes), or why it is unknown."""
    if not path.is_relative_to(ROOT):
        return "unknown (outside the repository)"
    rel = path.relative_to(ROOT)
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%h (%cs)", "--", str(rel)],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(rel)], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "commit unknown (not a git checkout)"
    if not out:
        return "not committed yet"
    return out + (", with uncommitted changes" if dirty else "")


def machine_text(m: dict | str | None) -> str:
    """One line for a result's ``machine`` record (dict or string)."""
    if not m:
        return "machine not recorded"
    if isinstance(m, str):
        return m
    parts = [m.get("cpu", "unknown CPU")]
    if m.get("simd"):
        parts[0] += f" ({', '.join(m['simd'])})"
    if "threads" in m:
        parts.append(f"{m['threads']} threads")
    if "torch" in m:
        parts.append(f"torch {m['torch']}")
    if "note" in m:
        parts.append(m["note"])
    return ", ".join(parts)


def source_line(path: Path, machine: dict | str | None = None, date: str | None = None) -> str:
    """Where a table comes from: file, measurement date (else the commit's), machine, commit."""
    when = f"measured {date}" if date else "no measurement date recorded"
    return (f"*Source: `{shown(path)}`, {when}, {machine_text(machine)}; last "
            f"changed in commit {git_commit(path)}.*")


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DocsError(f"cannot read {shown(path)}: {exc}") from exc


# -------------------------------------------------------------------------------- tables
def cpu_step(name: str) -> Callable[[], str]:
    def render() -> str:
        import bench_cpu_step

        path = RESULTS / name
        r = load(path)
        return (bench_cpu_step.markdown_table(r) + "\n\n"
                + source_line(path, r["machine"], r["machine"].get("date")))
    return render


def time_to_quality(name: str) -> Callable[[], str]:
    def render() -> str:
        import bench_time_to_quality

        path = RESULTS / name
        r = load(path)
        return bench_time_to_quality.markdown(r) + "\n" + source_line(path, r["machine"])
    return render


def tune_transfer() -> str:
    import tune_transfer as tt

    path = RESULTS / "tune_transfer.json"
    r = load(path)
    return tt.markdown(r) + "\n" + source_line(path, r["machine"])


def occupancy_bench() -> str:
    path = RESULTS / "bench_occupancy.json"
    r = load(path)
    at = r["settings"]["at"]
    lines = ["| target | init | recipe | lr | stabilize | sampling | "
             + " | ".join(f"IoU @ {s}" for s in at) + f" | fit wall s @ {at[-1]} |",
             "| --- | --- | --- | ---: | --- | --- | " + " | ".join("---:" for _ in at)
             + " | ---: |"]
    for run in r["runs"].values():
        lines.append(f"| {run['target']} | {run['init']} | {run['recipe']} | {run['lr']:g} | "
                     f"{run['stabilize']} | {run['sampling']} | "
                     + " | ".join(f"{run['iou_at'][str(s)]:.3f}" for s in at)
                     + f" | {run['wall_at'][str(at[-1])]:.1f} |")
    cfg = r["settings"]
    return ("\n".join(lines) + "\n\n" + occupancy_verdict(r) + f"\n\n{cfg['res']}^3 grid, "
            f"width {cfg['width']}, "
            f"{cfg['layers']} layers ({cfg['shared']} shared), {cfg['points']} points a step, "
            f"seed {cfg['seed']}; STRAINER: encoder pretrained {cfg['pretrain_steps']} steps on "
            "the 7 chairs that are neither the validation chair nor held out.\n\n"
            + source_line(path, r["machine"]))


def occupancy_verdict(r: dict, step: int = 150) -> str:
    """Plain statement: is STRAINER's IoU at ``step`` ahead of SIREN's, per target, at the
    fast recipe (issue 24's occupancy target)? Level means equal to 3 decimals."""
    iou = {(run["target"], run["init"]): run["iou_at"][str(step)]
           for run in r["runs"].values() if run["recipe"] == "fast"}
    parts = {"ahead": [], "level": [], "behind": []}
    for target in dict.fromkeys(t for t, _ in iou):
        s, n = iou.get((target, "strainer")), iou.get((target, "siren"))
        if s is None or n is None:
            continue
        side = ("level" if round(s, 3) == round(n, 3) else "ahead" if s > n else "behind")
        parts[side].append(f"{target} ({s:.3f} vs {n:.3f})")
    said = [f"{side} on {', '.join(v)}" for side, v in parts.items() if v]
    return (f"At the fast recipe, STRAINER's IoU at step {step} against SIREN's: "
            + "; ".join(said) + ".") if said else "No fast-recipe pair measured."


def memory() -> str:
    import bench_memory

    a_path, b_path = RESULTS / "memory_rss.json", RESULTS / "memory_psnr.json"
    a, b = load(a_path), load(b_path)
    return (bench_memory.markdown(a, b) + "\n" + source_line(a_path, a["machine"]) + "\n\n"
            + source_line(b_path, b["machine"]))


def bf16_psnr() -> str:
    path = RESULTS / "bf16_psnr.json"
    r = load(path)
    lines = [f"{r['image']} at {r['size']}x{r['size']}, {r['steps']} Adam steps from one "
             "SIREN init:", "", "| precision | final PSNR (dB) | step (ms) |",
             "| --- | ---: | ---: |"]
    lines += [f"| {p} | {r[p]['psnr_db']:.2f} | {r[p]['step_ms']:.1f} |"
              for p in ("exact", "bf16")]
    return "\n".join(lines) + "\n\n" + source_line(path, r["machine"])


def distributed() -> str:
    path = RESULTS / "distributed_cpu.json"
    r = load(path)
    c = r["config"]
    lines = [f"STRAINER-{c['signals']} pretraining, {c['size']}x{c['size']}, width "
             f"{c['width']}, {c['layers']} layers ({c['shared']} shared), {c['steps']} timed "
             f"steps after {c['warmup']} warm-up steps, slowest rank's rate:", "",
             "| ranks | threads / rank | steps/s | vs 1 rank |", "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {x['ranks']} | {x['threads_per_rank']} | {x['steps_per_s']:.2f} | "
              f"{x['speedup_vs_1']:.2f}x |" for x in r["results"]]
    return "\n".join(lines) + "\n\n" + source_line(path, r["machine"])


def weight_scale() -> str:
    path = RESULTS / "tune_weight_scale.json"
    r = load(path)
    s, rec = r["settings"], r["chosen_recipe"]
    lines = [f"Validation split, {s['size']} px, width {s['width']}, {s['layers']} layers; "
             f"target {s['target']:g} dB, at most {s['cap']} steps. Chosen alpha: "
             f"**{r['chosen_alpha']:g}** ({r['source']}: {r['criterion']}).", "",
             "| run | steps to target | wall to target (s) | PSNR after the run (dB) | steps run |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, row in r["table"].items():
        label = f"alpha={name}" if name.replace(".", "").isdigit() else name
        reach = ("not reached" if row["steps"] is None else str(row["steps"]))
        wall = "-" if row["wall_s"] is None else f"{row['wall_s']:.0f}"
        lines.append(f"| {label} | {reach} | {wall} | {row['psnr_last']:.2f} | "
                     f"{row['steps_run']} |")
    if rec:
        lines += ["", f"Fast recipe: alpha **{rec['alpha']:g}**, Adam lr **{rec['lr']:g}** "
                  f"({rec['psnr_last']:.2f} dB after {rec['steps']} steps; {rec['criterion']})."]
    return "\n".join(lines) + "\n\n" + source_line(path, r["machine"])


def stabilizer() -> str:
    """The stabiliser grid of ``tune_stabilizer.py`` (validation split), one row per run."""
    path = RESULTS / "tune_stabilizer.json"
    r = load(path)
    s, chosen = r["settings"], r["chosen"]
    targets = list(next(iter(r["runs"].values()))["steps_to"])
    lines = [f"Validation split, {s['size']} px, width {s['width']}, {s['layers']} layers, "
             f"{s['steps']} steps per run, {s['value_range']}. Chosen: "
             + ", ".join(f"**{m}** for {init}" for init, m in chosen.items()) + ".", "",
             "| run | " + " | ".join(f"steps to {t}" for t in targets)
             + " | drops > 1 dB after step 100 (max dB) | final dB | eligible |",
             "| --- | " + " | ".join("---:" for _ in targets) + " | ---: | ---: | --- |"]
    for name, run in sorted(r["runs"].items()):
        candidate = run["lr"] == s["recipe"][run["init"]]["lr"]
        verdict = r["verdicts"].get(run["init"], {}).get(run["mode"]) if candidate else None
        ok = "reference, not a candidate" if verdict is None else ("yes" if verdict["eligible"] else
                                                  "no: " + ", ".join(verdict["too_slow_to"]))
        d = run["drops_after_100"]
        steps = " | ".join("-" if v is None else str(v) for v in run["steps_to"].values())
        mark = "**" if chosen.get(run["init"]) == run["mode"] and verdict else ""
        lines.append(f"| {mark}{name} (lr {run['lr']:g}){mark} | {steps} | {d['count']} "
                     f"({d['max_depth_db']:.1f}) | {run['final_db']:.2f} | {ok} |")
    first = next(iter(r["runs"].values()))
    return "\n".join(lines) + "\n\n" + source_line(path, first["machine"])


def tasks() -> str:
    """One row per committed task run (benchmarks/results/tasks/*.json)."""
    rows = ["| run | settings | SIREN | STRAINER | source |", "| --- | --- | --- | --- | --- |"]
    for path in sorted((RESULTS / "tasks").glob("*.json")):
        r = load(path)
        c, s = r["config"], r["summary"]
        if "iou_final" in s:
            settings = (f"{c['res']}^3, width {c['width']}, {c['pretrain_steps']} pretraining "
                        f"/ {c['steps']} fitting steps")
            cells = [f"IoU at 150: {s['iou_at_150'][k]:.4f}, final {s['iou_final'][k]:.4f}"
                     for k in ("siren", "strainer")]
            cells[1] += f"; whole run {r['total_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU"
        else:
            settings = (f"{c['size']} px, width {c['width']}, `--strainer-lr "
                        f"{c['strainer_lr'][0]:g},{c['strainer_lr'][1]:g}`, {c['steps']} steps")
            if "best_psnr" in s.get("siren", {}):
                cells = [f"best {s[k]['best_psnr']:.2f} dB (step {s[k]['best_step']}), final "
                         f"{s[k]['final_psnr']:.2f} dB" for k in ("siren", "strainer")]
                settings += f"; noisy input {s['noisy_psnr']:.2f} dB"
            else:
                reach = s["strainer_steps_to_siren_final"]
                cells = [f"final {s['final_psnr'][k]:.2f} dB" for k in ("siren", "strainer")]
                cells[1] += ("; never reaches SIREN's final" if reach is None else
                             f"; passes SIREN's final at step {reach}")
        when = git_commit(path)
        rows.append(f"| {r['title']} | {settings} | {cells[0]} | {cells[1]} | "
                    f"`{path.name}` ({r['device']}, torch {r['versions']['torch']}; "
                    f"commit {when}) |")
    return "\n".join(rows)


def gpu_check() -> str:
    """The newest committed ``make gpu-check`` run (benchmarks/results/gpu_check.json), its
    CUDA step benchmark (cuda_step.md) when there is one, or that none is committed."""
    path = RESULTS / "gpu_check.json"
    if not path.exists():
        return ("**No GPU run is committed yet** (`make gpu-check` writes "
                "`benchmarks/results/gpu_check.json`): the CUDA kernels are compile-checked "
                "(`make cuda-check`) and guarded on a GPU by the first-call self-check.")
    import gpu_check as gc

    r = load(path)
    stages = [gc.Stage(**{k: v for k, v in st.items() if k in gc.Stage.__dataclass_fields__})
              for st in r["stages"]]
    m = r.get("machine", {})
    text = (f"Last `make gpu-check` run: {m.get('gpu', 'unknown GPU')}, commit "
            f"{m.get('commit', 'not recorded')}." + "\n" + gc.summary_table(stages, r["total_s"]))
    bench = RESULTS / "cuda_step.md"
    if bench.exists():
        text += "\n\nCUDA step benchmark (`benchmarks/bench_cuda_step.py`):\n\n" + bench.read_text()
    return text + "\n\n" + source_line(path, m)


def repro_sources() -> str:
    """Per reproduction item: its JSON, when it was last committed, its wall and CPU time."""
    status = load(REPRO / "status.json")
    import run_all

    rows = ["| item | result file | wall (min) | process CPU (min) | last changed in commit |",
            "| --- | --- | ---: | ---: | --- |"]
    for key, item in run_all.ITEMS.items():
        path = REPRO / f"{item.module.NAME}.json"
        st = status.get(key, {})
        times = ([f"{st['wall_s'] / 60:.1f}", f"{st['cpu_s'] / 60:.1f}"] if "wall_s" in st
                 else ["-", "-"])
        rows.append(f"| {item.title} | `docs/repro/{path.name}` | {times[0]} | {times[1]} | "
                    f"{git_commit(path) if path.exists() else 'missing'} |")
    return "\n".join(rows)


def repro_summary() -> str:
    """The reproduction at a glance: regime, in-domain rows per value range, weak claims."""
    import run_all

    path = REPRO / "fig2_in_domain.json"
    return (run_all.summary(REPRO, load(REPRO / "status.json")) + "\n\n"
            + source_line(path, load(path)["machine"]))


# benchmarks/results/ -> docs/generated/
FIGURES = ("time_to_quality.png", "time_to_quality_w256.png", "memory.png")

TABLES: dict[str, Callable[[], str]] = {
    "cpu_step.md": cpu_step("cpu_step.json"),
    "cpu_step_avx2.md": cpu_step("cpu_step_avx2.json"),
    "time_to_quality.md": time_to_quality("time_to_quality.json"),
    "time_to_quality_w256.md": time_to_quality("time_to_quality_w256.json"),
    "tune_transfer.md": tune_transfer,
    "bench_occupancy.md": occupancy_bench,
    "memory.md": memory,
    "bf16_psnr.md": bf16_psnr,
    "distributed_cpu.md": distributed,
    "weight_scale.md": weight_scale,
    "stabilizer.md": stabilizer,
    "tasks.md": tasks,
    "gpu_check.md": gpu_check,
    "repro_sources.md": repro_sources,
    "repro_summary.md": repro_summary,
}


def write_tables(out: Path = GENERATED) -> list[Path]:
    """Renders every table of ``TABLES`` into ``out`` (emptied first) and copies the
    ``FIGURES``; returns the files written."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    written = []
    for name, render in TABLES.items():
        path = out / name
        path.write_text(f"<!-- generated by docs/build.py at {stamp}; do not edit -->\n\n"
                        + render().rstrip() + "\n")
        written.append(path)
    for name in FIGURES:
        if not (RESULTS / name).is_file():
            raise DocsError(f"benchmarks/results/{name} is missing")
        written.append(Path(shutil.copy2(RESULTS / name, out / name)))
    return written


def check_reproduction_report() -> None:
    """docs/repro-report.md's tables (from "## Summary" on) must equal what run_all.py renders
    from docs/repro/*.json now (the header names when and where it ran, so it is not compared)."""
    import common
    import run_all

    cfg = dict(common.preset("cpu"), train=None, test=None, progress=False, overrides={})
    report = DOCS / "repro-report.md"
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "repro-report.md"
        run_all.write_report(REPRO, cfg, load(REPRO / "status.json"), fresh)
        want = fresh.read_text().partition("## Summary")[2]
    have = report.read_text().partition("## Summary")[2]
    if not want or have != want:
        raise DocsError("docs/repro-report.md is stale: its tables differ from what "
                        "docs/repro/*.json give; run `python benchmarks/repro/run_all.py "
                        "--report-only`")


# ------------------------------------------------------------------------------ API check
def public_objects() -> dict[str, object]:
    import strainer_fast

    return {name: getattr(strainer_fast, name) for name in strainer_fast.__all__}


def api_problems(objects: dict[str, object]) -> list[str]:
    """Public names without a docstring or type hints (classes: also their public methods
    and properties; plain values such as ``__version__`` need neither)."""
    problems = []

    def check_callable(label: str, fn: Callable) -> None:
        if not (fn.__doc__ or "").strip():
            problems.append(f"{label}: no docstring")
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return
        missing = [p for p, v in sig.parameters.items()
                   if v.annotation is inspect.Parameter.empty and p not in ("self", "cls")]
        if missing:
            problems.append(f"{label}: no type hint for {', '.join(missing)}")
        if sig.return_annotation is inspect.Signature.empty and fn.__name__ != "__init__":
            problems.append(f"{label}: no return type hint")

    for name, obj in objects.items():
        if inspect.isclass(obj):
            if not (obj.__doc__ or "").strip():
                problems.append(f"{name}: no docstring")
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, property):
                    if not (member.fget.__doc__ or "").strip():
                        problems.append(f"{name}.{attr}: no docstring")
                elif isinstance(member, (classmethod, staticmethod)):
                    check_callable(f"{name}.{attr}", member.__func__)
                elif inspect.isfunction(member):
                    check_callable(f"{name}.{attr}", member)
        elif callable(obj):
            check_callable(name, obj)
    return problems


HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


class _Entries(html.parser.HTMLParser):
    """Maps the id of every top-level mkdocstrings entry (one ``::: path`` line, not a member
    rendered inside another entry) to its object kind ("function", "class", "attribute",
    "module"), read from the enclosing ``div.doc-object.doc-KIND``."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: dict[str, str] = {}
        self._divs: list[str | None] = []  # kind of each open div (None: not a doc object)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "div":
            kind = next((c[4:] for c in classes if c.startswith("doc-") and c != "doc-object"),
                        None) if "doc-object" in classes else None
            self._divs.append(kind)
        elif tag in HEADINGS and a.get("id") and "doc-heading" in classes:
            kinds = [k for k in self._divs if k]
            if len(kinds) == 1:
                self.kinds[a["id"]] = kinds[0]

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._divs:
            self._divs.pop()


def expected_kind(obj: object) -> str:
    if inspect.isclass(obj):
        return "class"
    return "function" if callable(obj) else "attribute"


def missing_entries(objects: dict[str, object], page: str) -> list[str]:
    """Public names without a rendered entry of the right kind: ``strainer_fast.NAME``, or the
    defining module's path (``strainer_fast.fit.fit``, where a submodule has the same name)."""
    parser = _Entries()
    parser.feed(page)
    missing = []
    for name, obj in objects.items():
        paths = [f"strainer_fast.{name}"]
        if getattr(obj, "__module__", None):
            paths.append(f"{obj.__module__}.{name}")
        if not any(parser.kinds.get(p) == expected_kind(obj) for p in paths):
            found = [f"{p} is a {parser.kinds[p]}" for p in paths if p in parser.kinds]
            missing.append(name + (f" ({'; '.join(found)})" if found else ""))
    return missing


# -------------------------------------------------------------------------------- browser
def chromium() -> str:
    for exe in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(exe):
            return path
    raise DocsError("no headless browser found: install Chromium (Debian/Ubuntu: "
                    "`apt-get install chromium`) or pass --no-browser")


def browser_check(objects: dict[str, object], page: Path, screenshot: Path) -> None:
    """Renders ``page`` in headless Chromium; every API entry must be in the rendered DOM."""
    exe = chromium()
    with tempfile.TemporaryDirectory() as profile:
        flags = [exe, "--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"]
        url = page.resolve().as_uri()
        dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True,
                             timeout=120)
        if dom.returncode != 0 or "<html" not in dom.stdout:
            raise DocsError(f"headless Chromium could not render {url}: "
                            f"{dom.stderr.strip().splitlines()[-1:] or dom.returncode}")
        shot = subprocess.run(flags + [f"--screenshot={screenshot}", "--window-size=1280,2000",
                                       "--hide-scrollbars", url],
                              capture_output=True, text=True, timeout=120)
        if shot.returncode != 0 or not screenshot.is_file() or screenshot.stat().st_size < 1000:
            raise DocsError(f"headless Chromium wrote no screenshot of {url}")
    missing = missing_entries(objects, dom.stdout)
    if missing:
        raise DocsError(f"the rendered API page lacks entries for {', '.join(missing)}")


# ----------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables-only", action="store_true",
                    help="only render the tables and check the reproduction report")
    ap.add_argument("--no-browser", action="store_true", help="skip the headless-browser check")
    ap.add_argument("--site-dir", type=Path, default=SITE, help="where to build (default site/)")
    args = ap.parse_args(argv)
    site = args.site_dir.resolve()
    try:
        files = write_tables()
        print(f"docs: {len(files)} tables and figures from benchmarks/results and docs/repro "
              f"-> {shown(GENERATED)}/")
        check_reproduction_report()
        print("docs: docs/repro-report.md matches docs/repro/*.json")
        if args.tables_only:
            return 0
        objects = public_objects()
        problems = api_problems(objects)
        if problems:
            raise DocsError("public API without docstrings / type hints:\n  "
                            + "\n  ".join(problems))
        build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                                "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir",
                                str(site)], cwd=ROOT,
                               env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                   filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))))
        if build.returncode != 0:
            raise DocsError("mkdocs build --strict failed (see its messages above; the docs "
                            "tools: pip install -e '.[docs]' or pip install "
                            "'strainer_fast[docs]')")
        page = site / "api" / "index.html"
        missing = missing_entries(objects, page.read_text())
        if missing:
            raise DocsError(f"docs/api.md has no entry of the right kind for "
                            f"{', '.join(missing)} (add `::: strainer_fast.NAME`)")
        print(f"docs: API reference has all {len(objects)} public names")
        if not args.no_browser:
            shot = site / "api-screenshot.png"
            browser_check(objects, page, shot)
            print(f"docs: headless Chromium rendered every API entry (screenshot {shot})")
    except DocsError as exc:
        print(f"docs build failed: {exc}", file=sys.stderr)
        return 1
    print(f"docs: site built in {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
