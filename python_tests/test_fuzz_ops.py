"""Fuzz the fused ops (public ``sine_mlp`` / ``batched_sine_mlp`` and the raw
``torch.ops.strainer_fast.fused_mlp_forward/backward``) with random shapes, dtypes, strides,
devices ('meta' included) and mismatched lists: every call must return or raise a Python
exception, never crash. The cases run in a subprocess (``fuzz_ops_worker.py``), so a segfault
fails this test with the crashing case's description instead of killing pytest.
``STRAINER_FUZZ_CASES=N`` runs N cases (default 1500, a few seconds)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import requires_cpu_kernel

WORKER = Path(__file__).with_name("fuzz_ops_worker.py")
CASES = int(os.environ.get("STRAINER_FUZZ_CASES", "1500"))


@requires_cpu_kernel
def test_fuzz_ops_never_crash():
    proc = subprocess.run([sys.executable, str(WORKER), "0", str(CASES)], capture_output=True,
                          text=True, timeout=600)
    lines = proc.stdout.splitlines()
    last_case = next((ln for ln in reversed(lines) if ln.startswith("case ")), "no case ran")
    assert proc.returncode == 0, (f"fuzz worker died (exit {proc.returncode}) at {last_case}\n"
                                  f"{proc.stderr[-2000:]}")
    done = re.search(r"done \{'returned': (\d+), 'raised': (\d+)\}", proc.stdout)
    assert done, proc.stdout[-2000:]
    returned, raised = map(int, done.groups())
    assert returned + raised == CASES
    # Both outcomes occur, so the fuzzer reaches the kernels and the validation alike.
    assert returned > CASES // 10 and raised > CASES // 10
