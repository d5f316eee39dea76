"""One STRAINER-10 pretraining step (forward + backward + Adam) on the CPU, side by side.

Model: coordinates 2 -> 5 sine layers of width 256 (shared encoder) -> 10 linear decoders
256 -> 3; loss = sum over signals of per-signal MSE. Variants, timed in one process:
eager PyTorch (the reference ops), torch.compile of the same eager model (its warm-up is
reported separately), and the fused kernels in exact fp32 and in bf16 mode.

    python benchmarks/bench_cpu_step.py [--grids 64,178] [--repeats 15]

Writes JSON to benchmarks/results/cpu_step.json and prints a Markdown table of the median
step time and the speed-up over eager.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import strainer_fast
from machine import cpu_name, cpu_simd
from strainer_fast import ops

WIDTH, SHARED_LAYERS, SIGNALS, OUT, W0 = 256, 5, 10, 3, 30.0


def make_params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = []
    fan_in = 2
    for i in range(SHARED_LAYERS):
        bound = 1.0 / fan_in if i == 0 else (6.0 / fan_in) ** 0.5 / W0
        params.append((torch.rand(WIDTH, fan_in, generator=g) * 2 - 1) * bound)
        params.append((torch.rand(WIDTH, generator=g) * 2 - 1) / fan_in**0.5)
        fan_in = WIDTH
    bound = (6.0 / WIDTH) ** 0.5 / W0
    params.append((torch.rand(SIGNALS, OUT, WIDTH, generator=g) * 2 - 1) * bound)
    params.append((torch.rand(SIGNALS, OUT, generator=g) * 2 - 1) / WIDTH**0.5)
    return [p.requires_grad_() for p in params]


def forward(params, coords, backend: str, precision: str) -> torch.Tensor:
    enc_w, enc_b = params[0 : 2 * SHARED_LAYERS : 2], params[1 : 2 * SHARED_LAYERS : 2]
    feats = ops.sine_mlp(coords, enc_w, enc_b, [W0] * SHARED_LAYERS, False,
                         backend=backend, precision=precision)
    return ops.batched_sine_mlp(feats, [params[-2]], [params[-1]], [W0], True,
                                backend=backend, precision=precision)


def make_step(params, coords, target, backend: str, precision: str, compiled: bool):
    opt = torch.optim.Adam(params, lr=1e-4)

    def loss_fn():
        out = forward(params, coords, backend, precision)
        return ((out - target) ** 2).mean(dim=(1, 2)).sum()

    fn = torch.compile(loss_fn) if compiled else loss_fn

    def step():
        opt.zero_grad(set_to_none=True)
        loss = fn()
        loss.backward()
        opt.step()
        return loss

    return step


def time_variant(step, repeats: int) -> dict:
    t0 = time.perf_counter()
    step()  # first call: compile / JIT / allocator warm-up
    first = time.perf_counter() - t0
    step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"first_call_s": first, "median_s": statistics.median(times), "times_s": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", default="64,178")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--variants", default="eager,compile,fused-exact,fused-bf16")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cpu_step.json"))
    args = parser.parse_args()

    variants = {
        "eager": ("reference", "exact", False),
        "compile": ("reference", "exact", True),
        "fused-exact": ("cpu", "exact", False),
        "fused-bf16": ("cpu", "bf16", False),
    }
    chosen = args.variants.split(",")
    results = {
        "machine": {
            "cpu": cpu_name(),
            "simd": cpu_simd(),
            "date": time.strftime("%Y-%m-%d"),
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "strainer_fast": strainer_fast.__version__,
        },
        "grids": {},
    }
    for grid in [int(g) for g in args.grids.split(",")]:
        lin = torch.linspace(-1, 1, grid)
        coords = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).reshape(-1, 2)
        target = torch.rand(SIGNALS, grid * grid, OUT, generator=torch.Generator().manual_seed(1))
        row = {}
        for name in chosen:
            backend, precision, compiled = variants[name]
            torch._dynamo.reset()
            step = make_step(make_params(), coords, target, backend, precision, compiled)
            row[name] = time_variant(step, args.repeats)
            print(f"grid {grid}: {name:12s} median {row[name]['median_s'] * 1e3:8.1f} ms "
                  f"(first call {row[name]['first_call_s']:.2f} s)", flush=True)
        results["grids"][str(grid)] = row
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(markdown_table(results))


def markdown_table(results: dict) -> str:
    m = results["machine"]
    lines = [f"Machine: {m['cpu']} ({', '.join(m.get('simd', [])) or 'SIMD flags unknown'}), "
             f"{m['threads']} threads, torch {m['torch']}, {m.get('date', 'date not recorded')}",
             "",
             "| grid | variant | median step (ms) | speed-up vs eager | first call (s) |",
             "| --- | --- | ---: | ---: | ---: |"]
    for grid, row in results["grids"].items():
        eager = row.get("eager", {}).get("median_s")
        for name, r in row.items():
            ratio = f"{eager / r['median_s']:.2f}x" if eager else "-"
            lines.append(f"| {grid}x{grid} | {name} | {r['median_s'] * 1e3:.1f} | {ratio} | "
                         f"{r['first_call_s']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
