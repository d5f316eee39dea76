"""Cost of the bf16 fast mode in fitting quality: SIREN fit of one MRI slice, exact vs bf16.

A SIREN (2 -> 5 sine layers of width 256 -> 1, w0 = 30) fits one grayscale MRI slice with Adam
(lr 1e-4) from the same initialisation in exact and in bf16 mode; the final PSNR (dB, [0, 1]
range) and the mean step time of each mode are written to benchmarks/results/bf16_psnr.json.

    python benchmarks/bench_bf16_psnr.py [--image PATH] [--size 64] [--steps 2000]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from strainer_fast import ops
from machine import cpu_name

DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / "strainer_fast" / "datasets" / "mri" / "mni_z069.png"


def load(path: Path, size: int) -> torch.Tensor:
    img = Image.open(path).convert("L").resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).reshape(-1, 1)


def siren(seed: int, width: int = 256, layers: int = 6, w0: float = 30.0):
    g = torch.Generator().manual_seed(seed)
    dims = [2] + [width] * (layers - 1) + [1]
    ws, bs = [], []
    for i, (fi, fo) in enumerate(zip(dims[:-1], dims[1:])):
        bound = 1.0 / fi if i == 0 else math.sqrt(6.0 / fi) / w0
        ws.append(((torch.rand(fo, fi, generator=g) * 2 - 1) * bound).requires_grad_())
        bs.append(((torch.rand(fo, generator=g) * 2 - 1) / math.sqrt(fi)).requires_grad_())
    return ws, bs


def fit(target: torch.Tensor, size: int, steps: int, precision: str, seed: int) -> dict:
    lin = torch.linspace(-1, 1, size)
    coords = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).reshape(-1, 2)
    ws, bs = siren(seed)
    opt = torch.optim.Adam(ws + bs, lr=1e-4)
    scaled = target * 2 - 1
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        out = ops.sine_mlp(coords, ws, bs, [30.0] * len(ws), True, precision=precision)
        loss = ((out - scaled) ** 2).mean()
        loss.backward()
        opt.step()
    wall = time.perf_counter() - t0
    with torch.no_grad():
        out = ops.sine_mlp(coords, ws, bs, [30.0] * len(ws), True)  # evaluate exactly
        mse = (((out.clamp(-1, 1) + 1) / 2 - target) ** 2).mean().item()
    return {"psnr_db": 10 * math.log10(1.0 / mse), "step_ms": wall / steps * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "bf16_psnr.json")
    args = parser.parse_args()
    target = load(args.image, args.size)
    res = {m: fit(target, args.size, args.steps, m, args.seed) for m in ("exact", "bf16")}
    report = {"machine": {"cpu": cpu_name(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__},
              "image": args.image.name, "size": args.size, "steps": args.steps, **res}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    e, b = res["exact"], res["bf16"]
    print(f"{args.image.name} {args.size}x{args.size}, {args.steps} steps on {report['machine']['cpu']}:")
    print(f"| mode | final PSNR (dB) | step (ms) |\n| --- | ---: | ---: |")
    print(f"| exact | {e['psnr_db']:.2f} | {e['step_ms']:.1f} |\n| bf16 | {b['psnr_db']:.2f} | {b['step_ms']:.1f} |")
    print(f"bf16 - exact: {b['psnr_db'] - e['psnr_db']:+.2f} dB, speed-up {e['step_ms'] / b['step_ms']:.2f}x")


if __name__ == "__main__":
    main()
