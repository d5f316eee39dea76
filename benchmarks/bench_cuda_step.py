"""One STRAINER-10 pretraining step (forward + backward + Adam) on a CUDA GPU, side by side.

Same model and loss as bench_cpu_step.py (2 -> 5 sine layers of width 256 -> 10 linear
decoders 256 -> 3, sum of per-signal MSE). Variants, timed in one process: fused exact fp32,
fused bf16, eager fp32, eager with TF32 matmuls, torch.compile (fp32), plus single-op
forward and forward+backward timings of the shared encoder, and the FLOP-bound floor of each
variant (GEMM FLOPs counted analytically, divided by the peak rate of its arithmetic).

    python benchmarks/bench_cuda_step.py [--grids 178,512] [--repeats 20]
        [--peak-tflops fp32=67,tf32=495,bf16=989]   # H100 SXM dense defaults

Writes JSON to benchmarks/results/cuda_step.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_cpu_step import OUT, SHARED_LAYERS, SIGNALS, W0, WIDTH, make_params, make_step  # noqa: E402

import strainer_fast  # noqa: E402
from strainer_fast import ops  # noqa: E402

# name: (backend, precision, torch.compile, float32 matmul precision, peak key)
VARIANTS = {
    "fused-exact": ("cuda", "exact", False, "highest", "fp32"),
    "fused-bf16": ("cuda", "bf16", False, "highest", "bf16"),
    "eager": ("reference", "exact", False, "highest", "fp32"),
    "eager-tf32": ("reference", "exact", False, "high", "tf32"),
    "compile": ("reference", "exact", True, "highest", "fp32"),
}


def step_flops(points: int) -> dict[str, float]:
    """GEMM FLOPs of one step (2 per multiply-add); sin/cos and Adam are not counted."""
    enc = [(2, WIDTH)] + [(WIDTH, WIDTH)] * (SHARED_LAYERS - 1)
    fwd = sum(2 * points * i * o for i, o in enc) + 2 * points * WIDTH * OUT * SIGNALS
    d_w = fwd  # dW of every layer
    d_x = fwd - 2 * points * 2 * WIDTH  # dX of every layer but the first (coords need no grad)
    enc_fwd = sum(2 * points * i * o for i, o in enc)
    return {"step": fwd + d_w + d_x, "enc_fwd": enc_fwd,
            "enc_fwd_bwd": 3 * enc_fwd - 2 * points * 2 * WIDTH}


def cuda_time(fn, repeats: int) -> dict:
    """First-call wall time and the median of `repeats` CUDA-event-timed calls."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return {"first_call_s": first, "median_s": statistics.median(times), "times_s": times}


def encoder_ops(params, coords, backend, precision):
    """Single-op closures: encoder forward (no grad) and forward + backward."""
    w, b = params[0 : 2 * SHARED_LAYERS : 2], params[1 : 2 * SHARED_LAYERS : 2]
    call = lambda: ops.sine_mlp(coords, w, b, [W0] * SHARED_LAYERS, False,  # noqa: E731
                                backend=backend, precision=precision)

    def fwd():
        with torch.no_grad():
            call()

    def fwd_bwd():
        torch.autograd.grad(call().sum(), w + b)

    return fwd, fwd_bwd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", default="178,512")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--peak-tflops", default="fp32=67,tf32=495,bf16=989",
                        help="peak dense TFLOP/s per arithmetic (default: H100 SXM)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cuda_step.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_cuda_step.py needs a CUDA GPU (torch.cuda.is_available() is False)")
    peaks = {k: float(v) for k, v in (kv.split("=") for kv in args.peak_tflops.split(","))}

    results = {
        "machine": {
            "gpu": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "strainer_fast": strainer_fast.__version__,
            "peak_tflops": peaks,
        },
        "grids": {},
    }
    for grid in [int(g) for g in args.grids.split(",")]:
        lin = torch.linspace(-1, 1, grid, device="cuda")
        coords = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).reshape(-1, 2)
        target = torch.rand(SIGNALS, grid * grid, OUT, generator=torch.Generator().manual_seed(1))
        target = target.cuda()
        flops = step_flops(grid * grid)
        row = {}
        for name in args.variants.split(","):
            backend, precision, compiled, matmul_precision, peak = VARIANTS[name]
            torch._dynamo.reset()
            torch.set_float32_matmul_precision(matmul_precision)
            try:
                params = [p.detach().cuda().requires_grad_() for p in make_params()]
                r = cuda_time(make_step(params, coords, target, backend, precision, compiled),
                              args.repeats)
                if not compiled:
                    fwd, fwd_bwd = encoder_ops(params, coords, backend, precision)
                    r["enc_fwd_median_s"] = cuda_time(fwd, args.repeats)["median_s"]
                    r["enc_fwd_bwd_median_s"] = cuda_time(fwd_bwd, args.repeats)["median_s"]
            finally:
                torch.set_float32_matmul_precision("highest")
            r["flop_floor_s"] = flops["step"] / (peaks[peak] * 1e12)
            r["tflops"] = flops["step"] / r["median_s"] / 1e12
            row[name] = r
            print(f"grid {grid}: {name:12s} step {r['median_s'] * 1e3:8.2f} ms "
                  f"({r['tflops']:.1f} TFLOP/s, floor {r['flop_floor_s'] * 1e3:.2f} ms)",
                  flush=True)
        results["grids"][str(grid)] = {"flops": flops, "variants": row}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(markdown_table(results))


def markdown_table(results: dict) -> str:
    m = results["machine"]
    ms = lambda r, k: f"{r[k] * 1e3:.2f}" if k in r else "-"  # noqa: E731
    lines = [f"GPU: {m['gpu']}, torch {m['torch']} (CUDA {m['cuda']}), peak TFLOP/s "
             f"{m['peak_tflops']}", "",
             "| grid | variant | step (ms) | vs eager | TFLOP/s | FLOP floor (ms) "
             "| enc fwd (ms) | enc fwd+bwd (ms) | first call (s) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for grid, entry in results["grids"].items():
        row = entry["variants"]
        eager = row.get("eager", {}).get("median_s")
        for name, r in row.items():
            ratio = f"{eager / r['median_s']:.2f}x" if eager else "-"
            lines.append(f"| {grid}x{grid} | {name} | {ms(r, 'median_s')} | {ratio} | "
                         f"{r['tflops']:.1f} | {ms(r, 'flop_floor_s')} | "
                         f"{ms(r, 'enc_fwd_median_s')} | {ms(r, 'enc_fwd_bwd_median_s')} | "
                         f"{r['first_call_s']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
