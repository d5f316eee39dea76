"""CPU smoke test of the GPU benchmark and the gpu-check script: they import, count FLOPs and
bytes as the issue states, format their tables, and stop with a clear message without CUDA."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str):
    sys.path.insert(0, str(BENCH_DIR))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH_DIR))


@pytest.fixture(scope="module")
def bench():
    return load("bench_cuda_step")


def test_step_flops_match_the_issue(bench):
    # issue 11: "the whole step is about 425 GFLOP" at 512x512
    flops = bench.step_flops(512 * 512)
    assert abs(flops["step"] / 425e9 - 1) < 0.01
    assert flops["forward"] + flops["backward"] == flops["step"]
    assert bench.layer_flops(100, 256, 256, 1, True) == {"forward": 2 * 100 * 256 * 256,
                                                         "forward_backward": 6 * 100 * 256 * 256}


def test_param_count_and_bytes(bench):
    assert bench.param_count() == sum(p.numel() for p in bench.make_params())
    b = bench.step_bytes(512 * 512)
    assert b["min"] < b["saved_z_bf16"] < b["saved_z_fp32"]
    # 5 encoder pre-activations of 512x512x256 fp32, written once and read once: 2.7 GB
    assert abs((b["saved_z_fp32"] - b["min"]) / 2.68e9 - 1) < 0.01


def test_table_and_targets(bench):
    ceilings = {"fp32_tflops": 50.0, "tf32_tflops": 400.0, "bf16_tflops": 800.0,
                "copy_bytes_per_s": 4e12}
    fl = bench.floors(178 * 178, ceilings)
    row = {name: {"median_s": t, "first_call_s": 1.0, "peak_bytes_above_state": 2**20 * m,
                  "tflops": 1.0}
           for name, t, m in (("eager", 4e-3, 100), ("compile-tf32", 2e-3, 90),
                              ("fused-tf32", 1e-3, 50), ("fused-bf16", 1e-3, 120))}
    row["compile"] = {"error": "RuntimeError: boom"}
    t = bench.targets(row, fl)
    assert t["fused-tf32 >= 3x eager"] == {"ratio": 4.0, "needed": 3.0, "at_most": False,
                                           "met": True}
    assert t["fused-tf32 >= 1.5x compile-tf32"]["met"] is True
    assert t["fused-exact >= 1x eager"]["met"] is None
    assert t["fused-bf16 peak memory <= eager"]["met"] is False
    results = {"machine": {"gpu": "test", "driver": "0", "torch": "x", "cuda": "y", "commit": "z"},
               "ceilings": ceilings,
               "grids": {"178": {"points": 178 * 178, "floors": fl, "variants": row, "targets": t}}}
    table = bench.markdown_table(results)
    assert "| 178x178 | fused-tf32 | 1.000 | 4.00x | - | 2.00x |" in table
    assert "failed: RuntimeError: boom" in table and "MISSED" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_benchmark_without_cuda_exits_with_a_message(bench):
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        bench.main(["--grids", "8"])
    with pytest.raises(SystemExit):
        bench.main(["--variants", "nope"])


@pytest.fixture(scope="module")
def gpu_check():
    return load("gpu_check")


def test_gpu_check_dry_run_and_bad_stage(gpu_check, capsys):
    assert gpu_check.main(["--dry-run", "--skip", "racecheck"]) == 0
    plan = capsys.readouterr().out
    assert "build: at most" in plan and "racecheck: at most 70 s (skipped)" in plan
    with pytest.raises(SystemExit):
        gpu_check.main(["--skip", "lint"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_gpu_check_without_cuda_says_so(gpu_check, capsys, tmp_path):
    assert gpu_check.main(["--out", str(tmp_path / "r.json")]) == 2
    assert "no CUDA device visible" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_gpu_check_finds_cutlass_from_a_folder(gpu_check, tmp_path, monkeypatch):
    check = gpu_check.Check(budget=10, work=tmp_path)
    monkeypatch.setenv("STRAINER_FAST_CUTLASS_DIR", str(tmp_path / "include"))
    stage = gpu_check.Stage("cutlass")
    assert gpu_check.find_cutlass(check, stage) is None and stage.status == "failed"
    (tmp_path / "include" / "cutlass").mkdir(parents=True)
    (tmp_path / "include" / "cutlass" / "cutlass.h").write_text("")
    stage = gpu_check.Stage("cutlass")
    assert gpu_check.find_cutlass(check, stage) == str(tmp_path / "include")
    assert stage.status == "ok"


def test_gpu_check_stage_time_limit_and_summary(gpu_check, tmp_path):
    check = gpu_check.Check(budget=100, work=tmp_path)
    slow = gpu_check.Stage("tests")
    assert check.run(slow, [sys.executable, "-c", "import time; time.sleep(30)"], 1) is None
    assert slow.status == "timeout" and slow.seconds < 10
    fast = gpu_check.Stage("bench")
    proc = check.run(fast, [sys.executable, "-c", "print('hello')"], 30)
    assert proc.returncode == 0 and "hello" in Path(fast.log).read_text()
    xml = tmp_path / "t.xml"
    xml.write_text('<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1" '
                   'time="2.5"><testcase classname="m" name="a"><failure/></testcase>'
                   '<testcase classname="m" name="b"/></testsuite></testsuites>')
    assert gpu_check.junit_summary(xml) == {"tests": 3, "failures": 1, "errors": 0,
                                            "skipped": 1, "seconds": 2.5, "failed": ["m::a"]}
    table = gpu_check.summary_table([slow, fast], 3.0)
    assert "| tests | timeout |" in table


def test_gpu_check_machine_info_needs_no_built_package():
    """gpu_check records the machine before it builds: strainer_fast must not be imported."""
    code = ("import sys, json; sys.modules['strainer_fast'] = None; sys.path.insert(0, sys.argv[1]);"
            "import gpu_check; print(json.dumps(gpu_check.machine_info()))")
    proc = subprocess.run([sys.executable, "-c", code, str(BENCH_DIR)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["torch"] == torch.__version__ and "commit" in info and "driver" in info
    assert not any("host" in k for k in info)
