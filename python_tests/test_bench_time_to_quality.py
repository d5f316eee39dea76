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
    eager = runs.pop("eager SIREN (paper-style)")
    assert eager["value_range"] == "unit"  # the authors' protocol
    assert all(run["value_range"] == "signed" for run in runs.values())  # the library default
    runs["eager SIREN (paper-style)"] = eager
    peers = result["peers"]
    suffix = f"SIREN alpha={recipe['alpha']:g} lr={recipe['lr']:g} + cosine"
    assert peers[:2] == [f"eager loop {suffix}", f"eager batched {suffix}"]
    if result["compile_error"] is None:
        assert peers[2:] == [f"torch.compile batched {suffix}"]
        assert runs[peers[2]]["compile_s"] >= 0
    for p in peers:
        assert runs[p]["steps"] == 5 and runs[p]["keep"] == "last"
        assert runs[p]["stabilize"] == "cosine"
    for t, p in result["strongest_peer"].items():
        hits = {q: result["table"][q][t] for q in peers if result["table"][q][t]}
        assert p == (min(hits, key=lambda q: hits[q]["wall_s"]) if hits else None)
        for name, row in result["table"].items():
            hit = row[t]
            if p is None or hit is None or name in peers or name == "eager SIREN (paper-style)":
                assert hit is None or "speedup_vs_peer" not in hit
            else:
                assert abs(hit["speedup_vs_peer"] - hits[p]["wall_s"] / hit["wall_s"]) < 1e-9
    assert set(result["machine"]["simd"]) <= {"avx2", "fma", "avx512f", "avx512_bf16",
                                              "amx_bf16"}
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


def test_batched_peer_is_the_same_function_and_gradients_as_the_paper_style_siren():
    sys.path.insert(0, str(BENCH))
    import torch
    from paper_style import BatchedSiren, EagerStrainer
    from strainer_fast.fit import initial_model

    nets = [initial_model("siren", 3, 2, width=16, layers=4, weight_scale=1.5).network_layers(i)
            for i in range(3)]
    x = torch.rand(40, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    loop, batched = EagerStrainer([], nets), BatchedSiren(nets)
    out_loop, out_batched = loop(x), batched(x)
    torch.testing.assert_close(out_batched, out_loop, rtol=1e-5, atol=1e-6)
    out_loop.square().sum().backward()
    out_batched.square().sum().backward()
    for i, dec in enumerate(loop.decoders):
        for j, layer in enumerate(dec):
            lin = getattr(layer, "linear", layer)
            torch.testing.assert_close(batched.weights[j].grad[i], lin.weight.grad,
                                       rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(batched.biases[j].grad[i, 0], lin.bias.grad,
                                       rtol=1e-4, atol=1e-5)


CUT_AFTER_TWO_ROWS = """
import sys
import bench_time_to_quality as b
calls = []
def cut(*args, **kwargs):
    if len(calls) == 2:
        raise KeyboardInterrupt
    calls.append(1)
    return fit(*args, **kwargs)
fit, b.fit_until = b.fit_until, cut
sys.argv = ["bench_time_to_quality.py", *sys.argv[1:]]
b.main()
"""


def test_recipe_rows_only_with_early_stop_continue_after_a_cut(tmp_path):
    """``--rows recipe --recipe-early-stop``: the baseline, the stabilised recipe rows and the
    peers, stopped at the top target; a run cut after two rows continues from its partial
    state (the pretrained encoder is not trained again) and says so."""
    summary, stab, out = tmp_path / "tuned.json", tmp_path / "stab.json", tmp_path / "ttq"
    summary.write_text(json.dumps({"chosen_alpha": 1.5,
                                   "chosen_recipe": {"alpha": 1.5, "lr": 1e-3}}))
    stab.write_text(json.dumps({"chosen": {"siren": "wsd", "strainer": "decay"}}))
    args = [*TOY, "--steps", "6", "--pretrain-steps", "2", "--tuned", str(summary),
            "--stabilizer-json", str(stab), "--recipe-steps", "40", "--rows", "recipe",
            "--recipe-early-stop", "--no-compile", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-c", CUT_AFTER_TWO_ROWS, *args], cwd=BENCH,
                          env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr
    partial = json.loads(out.with_suffix(".partial.json").read_text())
    first = list(partial["runs"])
    assert len(first) == 2 and "STRAINER-10" in partial["pretrain_s"]
    log = script("bench_time_to_quality.py", *args)
    assert "continuing from" in log and "STRAINER-10: pretraining" not in log
    assert not out.with_suffix(".partial.json").exists()
    assert not list(tmp_path.glob("ttq.partial.*.pt"))
    result = json.loads(out.with_suffix(".json").read_text())
    plain = "SIREN alpha=1.5 lr=0.001 (validation recipe)"
    peers = ["eager loop SIREN alpha=1.5 lr=0.001 + wsd",
             "eager batched SIREN alpha=1.5 lr=0.001 + wsd"]
    assert list(result["runs"]) == ["eager SIREN (paper-style)", f"{plain} + wsd",
                                    "STRAINER-10 lr=0.001 + decay", *peers]
    assert result["peers"] == peers and result["processes"] == 2
    assert [r["process"] for r in result["runs"].values()] == [1, 1, 2, 2, 2]
    top = max(result["targets"].values())
    for name in result["runs"]:
        r = result["runs"][name]
        if name != "eager SIREN (paper-style)":
            assert r["early_stop"] and (r["steps"] == 40 or r["psnr"][-1] >= top)
            assert r["steps"] == 40 or max(r["psnr"][:-1], default=-1) < top
    assert result["pretrained_with"] == {"STRAINER-10 lr=0.001 + decay": "STRAINER-10"}
    md = out.with_suffix(".md").read_text()
    assert "`--rows recipe`" in md and "Measured in 2 processes" in md
