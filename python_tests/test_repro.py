"""Smoke test of the paper-reproduction driver (benchmarks/repro) at tiny sizes, and its
claim rules."""

import json
import subprocess
import sys
from pathlib import Path


REPRO = Path(__file__).resolve().parents[1] / "benchmarks" / "repro"
TINY = dict(size=8, width=8, steps=4, pretrain_steps=3, log_every=2, feature_steps=[0, 1, 2],
            grad_steps=4, stab_size=8, stab_width=8, stab_steps=6, stab_pretrain_steps=2,
            stab_images=2)


def run_driver(out: Path, *extra: str) -> subprocess.CompletedProcess:
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={json.dumps(v)}")]
    return subprocess.run([sys.executable, str(REPRO / "run_all.py"), "--out", str(out),
                           "--no-progress", *sets, *extra], capture_output=True, text=True,
                          timeout=600)


def test_driver_writes_report_from_measurements(tmp_path):
    proc = run_driver(tmp_path, "--only", "fig3,fig4,fig7,stability")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("fig3_features", "fig4_grad_hist", "fig7_ablation", "stability"):
        assert (tmp_path / f"{name}.json").exists() and (tmp_path / f"{name}.png").exists()
    report = (tmp_path / "REPRODUCTION.md").read_text()
    stab = json.loads((tmp_path / "stability.json").read_text())
    assert set(stab["modes"]) == {"off", "cosine", "clip", "revert"}
    assert f"**{stab['chosen']}**" in report
    fig7 = json.loads((tmp_path / "fig7_ablation.json").read_text())
    final5 = f"{fig7['shared']['5']['psnr'][-1]:.2f}"
    assert final5 in report  # numbers come from the JSON
    assert report.count("**Not measured**") == 4  # fig2, table2, table5, tasks not run
    assert "more shared encoder layers fit better" in report


def test_driver_rejects_unknown_item(tmp_path):
    proc = run_driver(tmp_path, "--only", "fig99")
    assert proc.returncode == 2 and "unknown items" in proc.stderr


def test_pairwise_rule():
    sys.path.insert(0, str(REPRO))
    try:
        import claims
    finally:
        sys.path.remove(str(REPRO))
    assert claims.beats("a", [30, 31, 32], "b", [29, 30, 31], "c").verdict == "supported"
    assert claims.beats("a", [30, 31, 32], "b", [29.9, 30.9, 31.9], "c").verdict == "partly"
    assert claims.beats("a", [40, 20, 20], "b", [30, 21, 21], "c").verdict == "partly"
    assert claims.beats("a", [30, 31], "b", [30, 31], "c").verdict == "not supported"
