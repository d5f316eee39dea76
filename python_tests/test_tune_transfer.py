"""The STRAINER lever grid (benchmarks/tune_transfer.py): its pre-registered entry rule on
fake curves, and a toy run end to end with resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import cli_env

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import tune_transfer as tt  # noqa: E402


def rec(walls: dict, drops: int = 0) -> dict:
    return dict(to={t: None if w is None else dict(step=1, wall_s=w) for t, w in walls.items()},
                drops_after_100=dict(count=drops, depths_db=[]))


def test_entry_rule():
    cur = rec({"40 dB": 10.0, "S": 20.0})
    assert tt.better(rec({"40 dB": 8.9, "S": 17.9}), cur)
    assert not tt.better(rec({"40 dB": 9.5, "S": 10.0}), cur)  # < 10% less to one target
    assert not tt.better(rec({"40 dB": 5.0, "S": None}), cur)  # a target missed
    assert not tt.better(rec({"40 dB": 5.0, "S": 5.0}, drops=1), cur)  # more drops
    runs = {"0": dict(rec({"40 dB": 10.0, "S": 20.0}), value=0),
            "'auto'": dict(rec({"40 dB": 8.0, "S": 15.0}), value="auto"),
            "1": dict(rec({"40 dB": 7.0, "S": 16.0}), value=1)}
    assert tt.choose(0, runs)[0] == "auto"  # the least wall time to the last target
    runs["'auto'"]["drops_after_100"]["count"] = 2
    assert tt.choose(0, runs)[0] == 1
    runs["1"]["to"]["S"] = None
    assert tt.choose(0, runs) == (0, "no candidate passes the entry rule: the current value "
                                     "stays")


def test_curve_record_targets_and_drops():
    r = tt.curve_record([0, 50, 100, 150, 200], [[10, 12], [30, 32], [41, 41], [38, 38],
                                                 [42, 44]], [0, 1.0, 2.0, 3.0, 4.0],
                        {"40 dB": 40.0, "43": 43.0})
    assert r["to"]["40 dB"] == dict(step=100, wall_s=2.0) and r["to"]["43"] == dict(
        step=200, wall_s=4.0)
    assert r["drops_after_100"]["count"] == 2  # 41 -> 38 on both slices


def test_toy_grid_runs_and_resumes(tmp_path):
    args = [sys.executable, str(BENCH / "tune_transfer.py"), "--size", "12", "--width", "8",
            "--layers", "3", "--shared", "2", "--steps", "10", "--pretrain-steps", "3",
            "--parts", str(tmp_path / "parts"), "--out", str(tmp_path / "sum")]
    env = dict(cli_env(), STRAINER_FAST_TUNE_TRANSFER_BUILD=str(tmp_path / "build"))
    first = subprocess.run(args, cwd=BENCH, env=env, capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    out = json.loads((tmp_path / "sum.json").read_text())
    assert [s["lever"] for s in out["stages"]] == [s for s, _ in tt.STAGES]
    assert set(out["chosen"]) == set(tt.START)
    fits = sorted(p.name for p in (tmp_path / "parts").iterdir())
    again = subprocess.run(args, cwd=BENCH, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and ": final" not in again.stdout  # every fit reused
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == fits
    assert "| stage | value |" in (tmp_path / "sum.md").read_text()
