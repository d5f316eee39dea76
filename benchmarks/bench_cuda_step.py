"""One STRAINER-10 pretraining step (forward + backward + Adam) on a CUDA GPU, side by side.

Same model and loss as bench_cpu_step.py (2 -> 5 sine layers of width 256 -> 10 linear
decoders 256 -> 3, sum of per-signal MSE). Variants, timed in one process: eager fp32, eager
with TF32 matmuls, torch.compile in fp32 and in TF32, fused exact / tf32 / bf16. Per grid it
also reports the device's floors for the step (GEMM FLOPs counted analytically over the
matmul rate of that arithmetic, and the fewest HBM bytes over the copy bandwidth, both rates
measured in this run), the peak memory of each variant, and per-layer TFLOP/s of the fused op
alone (forward, and forward + backward) at each layer shape.

    python benchmarks/bench_cuda_step.py [--grids 178,512] [--repeats 30] [--variants ...]

CUDA events, warm-up, median of --repeats. Writes JSON (device, driver, torch / CUDA versions,
git commit; no host name) to benchmarks/results/cuda_step.json after every variant (``complete``
turns true at the end) and a Markdown table next to it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_cpu_step import OUT, SHARED_LAYERS, SIGNALS, W0, WIDTH, make_params, make_step  # noqa: E402
from gpu_check import machine_info  # noqa: E402

import strainer_fast  # noqa: E402
from strainer_fast import ops  # noqa: E402

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Variant:
    backend: str  # "reference" (eager PyTorch) or "cuda" (fused)
    precision: str  # the fused ops' precision
    compiled: bool  # torch.compile of the loss
    tf32_matmul: bool  # torch.backends.cuda.matmul.allow_tf32 for the eager / compiled GEMMs
    arithmetic: str  # which measured matmul rate bounds it: fp32, tf32 or bf16


VARIANTS = {  # compiled last: their compilation is the slowest part of a run
    "eager": Variant("reference", "exact", False, False, "fp32"),
    "eager-tf32": Variant("reference", "exact", False, True, "tf32"),
    "fused-exact": Variant("cuda", "exact", False, False, "fp32"),
    "fused-tf32": Variant("cuda", "tf32", False, False, "tf32"),
    "fused-bf16": Variant("cuda", "bf16", False, False, "bf16"),
    "compile": Variant("reference", "exact", True, False, "fp32"),
    "compile-tf32": Variant("reference", "exact", True, True, "tf32"),
}

# (name, in, out, signals): the layer shapes of one step; "decoders" is the S = 10 heads on the
# shared features (one op call), "first" takes the 2-D coordinates.
LAYER_SHAPES = [("first", 2, WIDTH, 1), ("hidden", WIDTH, WIDTH, 1), ("decoders", WIDTH, OUT, SIGNALS)]


def param_count() -> int:
    enc = 2 * WIDTH + WIDTH + (SHARED_LAYERS - 1) * (WIDTH * WIDTH + WIDTH)
    return enc + SIGNALS * (WIDTH * OUT + OUT)


def layer_flops(points: int, fan_in: int, fan_out: int, signals: int, need_x: bool) -> dict:
    """GEMM FLOPs (2 per multiply-add) of one layer: forward, and forward + backward."""
    fwd = 2 * points * fan_in * fan_out * signals
    return {"forward": fwd, "forward_backward": fwd * (3 if need_x else 2)}


def step_flops(points: int) -> dict[str, float]:
    """GEMM FLOPs of one step; sin/cos, the loss and Adam are not counted. Backward: dW for every
    layer, dX for every layer but the first (coordinates need no gradient)."""
    layers = [(2, WIDTH, 1, False)] + [(WIDTH, WIDTH, 1, True)] * (SHARED_LAYERS - 1) \
        + [(WIDTH, OUT, SIGNALS, True)]
    fwd = sum(layer_flops(points, *shape)["forward"] for shape in layers)
    total = sum(layer_flops(points, *shape)["forward_backward"] for shape in layers)
    return {"forward": fwd, "backward": total - fwd, "step": total}


def step_bytes(points: int) -> dict[str, float]:
    """HBM bytes of one step. ``min``: each input read once and each output written once
    (coordinates, targets, parameters, gradients, Adam's two moments). ``saved_z_<dtype>``:
    ``min`` plus one pre-activation per encoder layer written in forward and read in backward,
    the fused design's saved state (fp32 in exact/tf32 mode, bf16 in bf16 mode)."""
    p = param_count()
    inputs = 4 * (points * 2 + SIGNALS * points * OUT)
    params = 4 * p * 8  # read param; write + read grad; read + write m, v; write param
    saved = 2 * SHARED_LAYERS * points * WIDTH
    return {"min": inputs + params, "saved_z_fp32": inputs + params + 4 * saved,
            "saved_z_bf16": inputs + params + 2 * saved}


def cuda_time(fn, repeats: int, warmup: int = 3) -> dict:
    """First-call wall time (includes compilation / self-check), then the median of `repeats`
    CUDA-event-timed calls after `warmup` more."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        fn()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(repeats)]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    times = [start.elapsed_time(end) / 1e3 for start, end in events]
    return {"first_call_s": first, "median_s": statistics.median(times),
            "min_s": min(times), "max_s": max(times)}


def _matmul_seconds(n: int, dtype: torch.dtype, tf32: bool, repeats: int) -> float:
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(n, n, device="cuda", generator=g).to(dtype)
    b = torch.randn(n, n, device="cuda", generator=g).to(dtype)
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        return cuda_time(lambda: torch.mm(a, b), repeats, warmup=2)["median_s"]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev


def _copy_seconds(numel: int, repeats: int) -> float:
    src = torch.randn(numel, device="cuda", generator=torch.Generator(device="cuda").manual_seed(0))
    dst = torch.empty_like(src)
    return cuda_time(lambda: dst.copy_(src), repeats, warmup=2)["median_s"]


def measure_ceilings(repeats: int = 10) -> dict[str, float]:
    """Measured matmul rates (TFLOP/s; fp32 SIMT, tf32 and bf16 tensor cores; 8192^3 on random
    data) and device-to-device copy bandwidth (bytes read + written per second, 2 GiB)."""
    n, numel = 8192, 2**29
    out = {f"{name}_tflops": 2 * n**3 / _matmul_seconds(n, dtype, tf32, repeats) / 1e12
           for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                                     ("bf16", torch.bfloat16, False))}
    out["copy_bytes_per_s"] = 2 * numel * 4 / _copy_seconds(numel, repeats)
    torch.cuda.empty_cache()
    return out


def layer_timings(points: int, precisions: list[str], repeats: int) -> dict:
    """The fused op alone per layer shape: forward (no grad) and forward + backward."""
    g = torch.Generator().manual_seed(2)
    rows = {}
    for name, fan_in, fan_out, signals in LAYER_SHAPES:
        need_x = name != "first"
        x = (torch.rand(points, fan_in, generator=g) * 2 - 1).cuda().requires_grad_(need_x)
        w = ((torch.rand(signals, fan_out, fan_in, generator=g) * 2 - 1) / fan_in).cuda()
        b = (torch.rand(signals, fan_out, generator=g) * 0.1).cuda()
        w.requires_grad_(), b.requires_grad_()
        wanted = [x, w, b] if need_x else [w, b]
        flops = layer_flops(points, fan_in, fan_out, signals, need_x)
        last_linear = name == "decoders"
        for precision in precisions:
            call = lambda: ops.batched_sine_mlp(x, [w], [b], [W0], last_linear,  # noqa: E731
                                                backend="cuda", precision=precision)

            def fwd():
                with torch.no_grad():
                    call()

            def fwd_bwd():
                out = call()
                torch.autograd.grad(out, wanted, torch.ones_like(out))

            r = {}
            for label, fn in (("forward", fwd), ("forward_backward", fwd_bwd)):
                t = cuda_time(fn, repeats)["median_s"]
                r[f"{label}_s"] = t
                r[f"{label}_tflops"] = flops[label] / t / 1e12
            rows[f"{name} {fan_in}->{fan_out} x{signals} {precision}"] = r
    return rows


def sm90_launches() -> dict[str, int]:
    """GEMMs the sm_90a (wgmma + TMA) kernels have run so far in this process, forward and
    backward (-1 each when the build lacks them)."""
    from strainer_fast import _C

    return {"forward": _C.cuda_sm90_forward_launches(),
            "backward": _C.cuda_sm90_backward_launches()}


def run_variant(variant: Variant, points_side: int, repeats: int) -> dict:
    lin = torch.linspace(-1, 1, points_side, device="cuda")
    coords = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).reshape(-1, 2)
    target = torch.rand(SIGNALS, points_side**2, OUT,
                        generator=torch.Generator().manual_seed(1)).cuda()
    torch._dynamo.reset()
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = variant.tf32_matmul
    try:
        params = [p.detach().cuda().requires_grad_() for p in make_params()]
        step = make_step(params, coords, target, variant.backend, variant.precision,
                         variant.compiled)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()  # compile / self-check / optimizer state, before the memory baseline
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        before = sm90_launches()
        r = cuda_time(step, repeats)
        after = sm90_launches()
        calls = repeats + 4  # cuda_time: one first call, 3 warm-up calls, the timed ones
        # which kernels the timing measured: sm_90a GEMMs per step (0 off Hopper, -1 unbuilt)
        r["sm90_gemms_per_step"] = {k: (after[k] - before[k]) / calls if before[k] >= 0 else -1
                                    for k in before}
        r["first_call_s"] = first
        r["peak_bytes_above_state"] = torch.cuda.max_memory_allocated() - base
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
        torch._dynamo.reset()
    return r


def gpu_info() -> dict:
    """Device, driver, versions and git commit (no host name), plus this build's state."""
    return {**machine_info(), "strainer_fast": strainer_fast.__version__,
            "cuda_kernels_built": ops.compiled_kernel_available("cuda")}


def floors(points: int, ceilings: dict) -> dict:
    flops, nbytes = step_flops(points), step_bytes(points)
    out = {f"flop_{k}_s": flops["step"] / (ceilings[f"{k}_tflops"] * 1e12)
           for k in ("fp32", "tf32", "bf16")}
    out.update({f"bytes_{k}_s": v / ceilings["copy_bytes_per_s"] for k, v in nbytes.items()})
    return out


def targets(row: dict, grid_floors: dict) -> dict:
    """Issue 11's targets as measured ratios (None where a variant is missing)."""
    t = lambda name: row.get(name, {}).get("median_s")  # noqa: E731
    ratio = lambda a, b: (t(b) / t(a)) if t(a) and t(b) else None  # noqa: E731
    bf16_floor = max(grid_floors["flop_bf16_s"], grid_floors["bytes_min_s"])
    peak = lambda name: row.get(name, {}).get("peak_bytes_above_state")  # noqa: E731
    checks = {
        "fused-tf32 >= 3x eager": (ratio("fused-tf32", "eager"), 3.0),
        "fused-tf32 >= 1.5x compile-tf32": (ratio("fused-tf32", "compile-tf32"), 1.5),
        "fused-bf16 within 2.5x of its floor": (
            bf16_floor / t("fused-bf16") if t("fused-bf16") else None, 1 / 2.5),
        "fused-exact >= 1x eager": (ratio("fused-exact", "eager"), 1.0),
    }
    out = {k: {"ratio": r, "needed": need, "at_most": False,
               "met": None if r is None else r >= need} for k, (r, need) in checks.items()}
    for name in ("fused-exact", "fused-tf32", "fused-bf16"):
        if peak(name) is not None and peak("eager") is not None:
            out[f"{name} peak memory <= eager"] = {"ratio": peak(name) / peak("eager"),
                                                   "needed": 1.0, "at_most": True,
                                                   "met": peak(name) <= peak("eager")}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", default="178,512")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--no-layers", action="store_true", help="skip per-layer timings")
    parser.add_argument("--out", default=str(RESULTS / "cuda_step.json"))
    args = parser.parse_args(argv)
    chosen = args.variants.split(",")
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    if not torch.cuda.is_available():
        sys.exit("bench_cuda_step.py needs a CUDA GPU (torch.cuda.is_available() is False); "
                 "nothing was measured")
    if any(VARIANTS[v].backend == "cuda" for v in chosen) and not ops.compiled_kernel_available("cuda"):
        sys.exit("bench_cuda_step.py: strainer_fast was built without CUDA kernels; rebuild "
                 "with nvcc on the PATH (see README, GPU usage)")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save = lambda: out.write_text(json.dumps(results, indent=1))  # noqa: E731
    results = {"machine": gpu_info(), "complete": False, "ceilings": measure_ceilings(),
               "grids": {}}
    print(f"ceilings: {results['ceilings']}", flush=True)
    fused_precisions = [VARIANTS[v].precision for v in chosen if VARIANTS[v].backend == "cuda"]
    for grid in [int(g) for g in args.grids.split(",")]:
        points = grid * grid
        row = {}
        results["grids"][str(grid)] = {"points": points, "variants": row}
        for name in chosen:
            try:
                row[name] = run_variant(VARIANTS[name], grid, args.repeats)
            except Exception as exc:  # noqa: BLE001  one failing variant must not end the run
                row[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                torch.cuda.empty_cache()
            r = row[name]
            if "median_s" in r:
                r["tflops"] = step_flops(points)["step"] / r["median_s"] / 1e12
                print(f"grid {grid}: {name:13s} {r['median_s'] * 1e3:8.3f} ms "
                      f"({r['tflops']:.1f} TFLOP/s, peak +{r['peak_bytes_above_state'] / 2**20:.0f}"
                      f" MiB, first call {r['first_call_s']:.1f} s)", flush=True)
            else:
                print(f"grid {grid}: {name:13s} FAILED {r['error']}", flush=True)
            save()  # partial results survive a time limit
        entry = {"points": points, "flops": step_flops(points), "bytes": step_bytes(points),
                 "floors": floors(points, results["ceilings"]), "variants": row}
        entry["targets"] = targets(row, entry["floors"])
        if fused_precisions and not args.no_layers:
            try:
                entry["layers"] = layer_timings(points, fused_precisions, args.repeats)
            except Exception as exc:  # noqa: BLE001
                entry["layers"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        results["grids"][str(grid)] = entry
        save()
    results["complete"] = True
    save()
    table = markdown_table(results)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)


def markdown_table(results: dict) -> str:
    m, c = results["machine"], results["ceilings"]
    lines = [f"GPU: {m.get('gpu', '?')} (driver {m.get('driver', '?')}), torch {m['torch']} "
             f"(CUDA {m['cuda']}), commit {str(m.get('commit', '?'))[:12]}. Measured: fp32 "
             f"{c['fp32_tflops']:.0f}, tf32 {c['tf32_tflops']:.0f}, bf16 {c['bf16_tflops']:.0f} "
             f"TFLOP/s; copy {c['copy_bytes_per_s'] / 1e12:.2f} TB/s.", "",
             "| grid | variant | step (ms) | vs eager | vs compile | vs compile-tf32 | TFLOP/s "
             "| floor (ms) | peak (MiB) | first call (s) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for grid, entry in results["grids"].items():
        row, fl = entry["variants"], entry["floors"]
        base = {k: row.get(k, {}).get("median_s") for k in ("eager", "compile", "compile-tf32")}
        for name, r in row.items():
            if "median_s" not in r:
                lines.append(f"| {grid}x{grid} | {name} | failed: {r['error'][:60]} |"
                             + " |" * 7)
                continue
            ratio = lambda b: f"{b / r['median_s']:.2f}x" if b else "-"  # noqa: E731
            arith = VARIANTS[name].arithmetic
            floor = max(fl[f"flop_{arith}_s"], fl["bytes_min_s"])
            lines.append(
                f"| {grid}x{grid} | {name} | {r['median_s'] * 1e3:.3f} | {ratio(base['eager'])} "
                f"| {ratio(base['compile'])} | {ratio(base['compile-tf32'])} | {r['tflops']:.1f} "
                f"| {floor * 1e3:.3f} | {r['peak_bytes_above_state'] / 2**20:.0f} "
                f"| {r['first_call_s']:.2f} |")
    for grid, entry in results["grids"].items():
        lines += ["", f"Targets at {grid}x{grid}:"]
        for k, v in entry.get("targets", {}).items():
            got = "-" if v["ratio"] is None else f"{v['ratio']:.2f}"
            lines.append(f"- {k}: {got} (needs {'<=' if v['at_most'] else '>='} "
                         f"{v['needed']:.2f}) -> "
                         f"{'met' if v['met'] else 'MISSED' if v['met'] is False else 'n/a'}")
    largest = max(results["grids"].items(), key=lambda kv: kv[1]["points"], default=None)
    if largest:
        layers = largest[1].get("layers", {})
        if layers and "error" not in layers:
            lines += ["", f"Fused op alone per layer at {largest[0]}x{largest[0]}:", "",
                      "| layer | fwd (ms) | fwd TFLOP/s | fwd+bwd (ms) | fwd+bwd TFLOP/s |",
                      "| --- | ---: | ---: | ---: | ---: |"]
            for k, v in layers.items():
                lines.append(f"| {k} | {v['forward_s'] * 1e3:.3f} | {v['forward_tflops']:.1f} | "
                             f"{v['forward_backward_s'] * 1e3:.3f} | "
                             f"{v['forward_backward_tflops']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
