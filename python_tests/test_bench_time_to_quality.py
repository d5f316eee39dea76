"""Smoke test of the time-to-quality tooling at toy sizes: the validation tuning parts
(alpha sweep, lr recipe, summary) and the benchmark that reads their choice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import cli_env

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
TOY = ["--size", "8", "--width", "8", "--layers", "3", "--shared", "2"]


def script(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / name), *args], cwd=BENCH,
                          env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_tuning_parts_and_time_to_quality_at_toy_size(tmp_path):
    parts, summary = tmp_path / "parts", tmp_path / "tuned.json"
    where = ["--parts", str(parts), "--summary", str(summary)]
    script("tune_weight_scale.py", "sweep", "--alphas", "1,1.5", "--cap", "4", "--target",
           "1", *TOY, *where)
    script("tune_weight_scale.py", "lr", "--alphas", "1,1.5", "--lrs", "1e-4,1e-3", "--cap",
           "4", *TOY, *where)
    script("tune_weight_scale.py", "summary", *where)
    tuned = json.loads(summary.read_text())
    lr_runs = json.loads((parts / "lr_1_1.5_1e-4_1e-3.json").read_text())["runs"]
    assert len(lr_runs) == 4 and all(r["steps"] == 4 for r in lr_runs.values())  # no early stop
    best = max(lr_runs, key=lambda k: lr_runs[k]["psnr"][-1])
    recipe = tuned["chosen_recipe"]
    assert best == f"alpha={recipe['alpha']:g} lr={recipe['lr']:g}"
    assert tuned["chosen_alpha"] in (1.0, 1.5) and "parts" not in tuned["settings"]
    out = tmp_path / "ttq"
    stab = tmp_path / "stab.json"
    stab.write_text(json.dumps({"chosen": {"siren": "cosine", "strainer": "clip"}}))
    script("bench_time_to_quality.py", *TOY, "--steps", "3", "--pretrain-steps", "2",
           "--tuned", str(summary), "--stabilizer-json", str(stab), "--recipe-steps", "5",
           "--out", str(out))
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["settings"]["recipe"] == recipe
    runs = result["runs"]
    assert {"eager SIREN (paper-style)", "SIREN (fused exact)", "STRAINER-10"} <= set(runs)
    assert all(run["value_range"] == "signed" for run in runs.values())  # the default
    plain = f"SIREN alpha={recipe['alpha']:g} lr={recipe['lr']:g} (validation recipe)"
    strainer = f"STRAINER-10 lr={recipe['lr']:g}"
    for name, mode in ((plain, "off"), (plain + " + cosine", "cosine"), (strainer, "off"),
                       (strainer + " + clip", "clip")):
        r = runs[name]
        assert r["stabilize"] == mode and r["steps"] == 5 and not r["early_stop"]
        assert r["keep"] == "best" and r["returned_minus_best_db"] >= -1e-3
        assert r["drops_after"]["count"] == 0  # 5 steps: nothing after step 100
        assert result["pretrained_with"].get(name) == ("STRAINER-10" if "STRAINER" in name
                                                       else None)
    assert runs["eager SIREN (paper-style)"]["keep"] == "last"
    md = out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").exists() and "| method |" in md and "drops > 1 dB" in md
