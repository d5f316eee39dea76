"""The README's Python API block runs as written (small sizes, CPU) and does what it says;
its headline numbers are the committed results'."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import strainer_fast as sf

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    return README.read_text(encoding="utf-8").split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def api_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", _section("Python API"), flags=re.S)


def test_readme_python_api_runs(tmp_path, monkeypatch):
    blocks = api_blocks()
    assert blocks, "README lost its Python API block"
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), ns)  # noqa: S102 - our own README
    assert (tmp_path / "enc.pt").is_file()
    enc = ns["encoder"]
    assert isinstance(enc, sf.Encoder) and enc.architecture() == dict(width=64, layers=4,
                                                                       shared=3, w0=30.0)
    many, one = ns["many"], ns["one"]
    assert many.recon.shape == (6, 32, 32, 1) and many.step == [0, 10, 20]
    # fitting from the loaded encoder object starts from its layers
    start = sf.fit(ns["test"][0], enc, steps=0, progress=False).model.network_layers(0)
    for (w, b), (w2, b2) in zip(enc.layers, start):
        assert torch.equal(w, w2) and torch.equal(b, b2)
    assert one.psnr[-1][0] == pytest.approx(many.psnr[-1][0], abs=1e-3)  # same init, seed 0
    assert ns["sr"].recon.shape == (6, 32, 32, 1) and ns["sr"].step == [0, 10, 20]
    assert ns["dn"].psnr and ns["occ"].step == [0, 10, 20]
    with pytest.raises(ValueError, match="width=64 in checkpoint but 128 requested"):
        sf.fit(ns["test"][0], enc, width=128, steps=1, progress=False)


def test_readme_headline_numbers_come_from_the_committed_results():
    """Each figure of the "What is measured" table, recomputed from the JSON it links to."""
    root = README.parent
    table = _section("What is measured")

    fig2 = json.loads((root / "docs/repro/fig2_in_domain.json").read_text())

    def mean_psnr(method: str, step: int | None = None) -> float:
        runs = fig2["runs"][method].values()
        return float(np.mean([r["psnr"][-1 if step is None else r["step"].index(step)]
                              for r in runs]))
    s, r = mean_psnr("strainer-10"), mean_psnr("siren")
    s100, r100 = mean_psnr("strainer-10", 100), mean_psnr("siren", 100)
    assert f"{s:.2f} vs {r:.2f} dB" in table and f"{s100:.2f} vs {r100:.2f} dB" in table
    assert f"{fig2['config']['steps']} steps, {len(fig2['config']['seeds'])} seeds" in table
    assert f"| {fig2['machine']} |" in table

    ttq = json.loads((root / "benchmarks/results/time_to_quality.json").read_text())
    target = next(k for k in ttq["targets"] if k.startswith("SIREN@"))
    rows = ttq["table"]
    eager = rows["eager SIREN (paper-style)"][target]
    plain = "SIREN alpha=1.5 lr=0.001 (validation recipe)"
    recipe = rows[f"{plain} + wsd"][target]
    strainer = rows["STRAINER-10"][target]
    assert (f"{recipe['wall_s']:.1f} s vs {eager['wall_s']:.1f} s "
            f"({recipe['speedup_vs_eager']:.1f}x)") in table
    peer_name = ttq["strongest_peer"][target]
    peer = rows[peer_name][target]
    compiled = rows[next(n for n in ttq["peers"] if n.startswith("torch.compile"))][target]
    assert peer_name.startswith("eager loop")
    assert (f"**{recipe['speedup_vs_peer']:.1f}x** faster than the strongest plain-PyTorch peer "
            f"at the same recipe (eager loop, {peer['wall_s']:.1f} s; "
            f"torch.compile {compiled['wall_s']:.1f} s)") in table
    fast40 = {n: rows[n]["40 dB"]["wall_s"] for n in (f"{plain} + wsd", "STRAINER-10 lr=0.001 + decay")}
    assert (f"does **not** beat the fast SIREN ({fast40['STRAINER-10 lr=0.001 + decay']:.1f} s vs "
            f"{fast40[plain + ' + wsd']:.1f} s to 40 dB)") in table
    assert fast40["STRAINER-10 lr=0.001 + decay"] > fast40[plain + " + wsd"]
    wide = json.loads((root / "benchmarks/results/time_to_quality_w256.json").read_text())
    wide_target = next(k for k in wide["targets"] if k.startswith("SIREN@"))
    w_eager = wide["table"]["eager SIREN (paper-style)"][wide_target]
    w_fast = wide["table"][f"{plain} + wsd"][wide_target]
    w_peer = wide["table"][wide["strongest_peer"][wide_target]][wide_target]
    assert wide["settings"]["width"] == 256 and len(wide["settings"]["slices"]) == 2
    assert wide["strongest_peer"][wide_target].startswith("torch.compile")
    assert (f"Width 256, 2 slices (target {wide['targets'][wide_target]:.2f} dB): fast SIREN "
            f"**{w_fast['wall_s']:.1f} s vs {w_eager['wall_s']:.1f} s "
            f"({w_fast['speedup_vs_eager']:.1f}x)**, **{w_fast['speedup_vs_peer']:.1f}x** vs the "
            f"strongest peer (torch.compile, {w_peer['wall_s']:.1f} s)") in table
    assert ttq["runs"]["eager SIREN (paper-style)"]["value_range"] == "unit" and (
        f"({ttq['targets'][target]:.2f} dB; eager, Adam 1e-4, [0, 1] targets") in table
    drops = {n: ttq["runs"][n]["drops_after"]["count"] for n in (plain, f"{plain} + wsd")}
    assert (f"{drops[plain + ' + wsd']} drops > 1 dB after step 100 vs {drops[plain]} without "
            "wsd") in table
    assert (f"STRAINER-10 (paper lr) {strainer['wall_s']:.1f} s "
            f"({strainer['speedup_vs_eager']:.1f}x) + "
            f"{ttq['pretrain_wall_s']['STRAINER-10']:.1f} s pretraining") in table
    m = ttq["machine"]
    assert f"| {m['cpu']}, {m['threads']} threads, torch {m['torch']} |" in table

    def speedups(name: str) -> str:
        grids = json.loads((root / "benchmarks/results" / name).read_text())["grids"]
        return " / ".join(f"{g['eager']['median_s'] / g['fused-exact']['median_s']:.2f}x"
                          for g in (grids["64"], grids["178"]))
    step = json.loads((root / "benchmarks/results/cpu_step.json").read_text())["machine"]
    assert f"**{speedups('cpu_step.json')}** faster" in table
    assert f"| {step['cpu']}, {step['threads']} threads |" in table
    assert f"({speedups('cpu_step_avx2.json')} on an AVX2-only host)" in table
