"""The occupancy recipe tuning and benchmark at toy sizes: the rule, the parts they resume
from, the JSON the fast recipe reads, the benchmark's runs and its refusal without it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from strainer_fast.recipes import OccupancyRecipe, occupancy_fast

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import bench_occupancy  # noqa: E402
import tune_occupancy  # noqa: E402

TOY = ["--res", "12", "--width", "8", "--layers", "3", "--shared", "2", "--points", "256",
       "--steps", "4", "--eval-every", "2", "--pretrain-steps", "2", "--at", "2,4"]


def _run(name: str, lr: float, stabilize: str, sampling: str, at2: float, at4: float) -> dict:
    return dict(name=name, lr=lr, stabilize=stabilize, sampling=sampling,
                iou_at={"2": at2, "4": at4})


def test_rule_ties_then_fewest_changes_then_final_iou_then_grid_order():
    a = _run("a", 1e-4, "off", "surface", 0.700, 0.80)  # the paper recipe
    b = _run("b", 1e-3, "off", "surface", 0.701, 0.90)  # tied with a, one change
    c = _run("c", 1e-3, "wsd", "uniform", 0.800, 0.70)  # clear best score
    assert tune_occupancy.choose([a, b, c], 2, 4) is c
    assert tune_occupancy.choose([a, b], 2, 4) is a  # tied: fewer changes wins
    d = _run("d", 3e-4, "off", "surface", 0.7015, 0.95)
    assert tune_occupancy.choose([b, d], 2, 4) is d  # tied, one change each: IoU at 4
    e = dict(d, name="e")
    assert tune_occupancy.choose([d, e], 2, 4) is d  # all equal: the grid order
    assert [r.stabilize for r in tune_occupancy.grid("siren", [1e-3], ["uniform"],
                                                     ["off", "image"])] == ["off", "wsd"]


def test_tuning_and_benchmark_bookkeeping(tmp_path, capsys):
    parts, out = tmp_path / "parts", tmp_path / "tuned.json"
    grid = ["--lrs", "1e-3", "--stabilizers", "off", "--score-step", "2"]
    tune_occupancy.main([*TOY, *grid, "--parts", str(parts), "--out", str(out)])
    tuned = json.loads(out.read_text())
    runs = {p.stem: json.loads(p.read_text()) for p in parts.glob("*.json")}
    assert sorted(runs) == sorted(f"{i}_lr0.001_{s}_off" for i in ("siren", "strainer")
                                  for s in ("uniform", "surface"))
    assert tuned["settings"]["at"] == [2, 4] and tuned["score_step"] == 2
    assert tuned["pretraining_chairs"] and not {tune_occupancy.VALIDATION,
                                                *tune_occupancy.HELD_OUT} & set(
        tuned["pretraining_chairs"])
    for init in ("siren", "strainer"):
        mine = [runs[f"{init}_lr0.001_{s}_off"] for s in ("uniform", "surface")]
        best = tune_occupancy.choose(mine, 2, 4)
        assert tuned["chosen"][init]["run"] == best["name"]
        assert all(r["step"] == [0, 2, 4] and set(r["iou_at"]) == {"2", "4"} for r in mine)
    assert occupancy_fast(out) == {i: OccupancyRecipe(**{k: c[k] for k in ("lr", "stabilize",
                                                                           "sampling")})
                                   for i, c in tuned["chosen"].items()}
    assert "Chosen:" in out.with_suffix(".md").read_text()
    # resumed: nothing refitted; other sizes refuse the parts
    stamps = {p: p.stat().st_mtime_ns for p in parts.glob("*.json")}
    tune_occupancy.main([*TOY, *grid, "--parts", str(parts), "--out", str(out)])
    assert {p: p.stat().st_mtime_ns for p in parts.glob("*.json")} == stamps
    with pytest.raises(SystemExit, match="other settings"):
        tune_occupancy.main([*TOY, "--points", "128", *grid, "--parts", str(parts),
                             "--out", str(out)])
    # the benchmark: every target x init x recipe, the fast runs with the chosen settings
    bparts, bout = tmp_path / "bparts", tmp_path / "bench.json"
    bench_occupancy.main([*TOY, "--tuned", str(out), "--parts", str(bparts), "--out",
                          str(bout)])
    bench = json.loads(bout.read_text())
    names = {f"{t}_{i}_{r}" for t in ("statue", *(Path(c).stem for c in
                                                   tune_occupancy.HELD_OUT))
             for i in ("siren", "strainer") for r in ("paper", "fast")}
    assert set(bench["runs"]) == names and bench["machine"]["threads"] >= 1
    for run in bench["runs"].values():
        want = tuned["chosen"][run["init"]] if run["recipe"] == "fast" else dict(
            lr=1e-4, stabilize="off", sampling="surface")
        assert {k: run[k] for k in ("lr", "stabilize", "sampling")} == {
            k: want[k] for k in ("lr", "stabilize", "sampling")}
        assert set(run["iou_at"]) == set(run["wall_at"]) == {"2", "4"}
    fast, paper = bench["runs"]["statue_siren_fast"], bench["runs"]["statue_siren_paper"]
    assert bench["fast_minus_paper"]["statue"]["siren"]["4"] == pytest.approx(
        fast["iou_at"]["4"] - paper["iou_at"]["4"])
    assert "statue" in bout.with_suffix(".md").read_text()
    # partial results: a missing part is the only fit redone
    (bparts / "statue_strainer_fast.json").unlink()
    stamps = {p: p.stat().st_mtime_ns for p in bparts.glob("*.json")}
    bench_occupancy.main([*TOY, "--tuned", str(out), "--parts", str(bparts), "--out",
                          str(bout)])
    assert {p: p.stat().st_mtime_ns for p in bparts.glob("*.json") if p in stamps} == stamps
    assert (bparts / "statue_strainer_fast.json").is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        bench_occupancy.main([*TOY, "--tuned", str(tmp_path / "none.json"), "--parts",
                              str(bparts), "--out", str(bout)])
    assert "tune_occupancy.py" in capsys.readouterr().err
