"""Fuzz worker for test_fuzz_ops.py: random (often invalid) arguments to the fused ops.

Run as ``python fuzz_ops_worker.py FIRST COUNT``: cases FIRST .. FIRST+COUNT-1, each seeded
by its number. Before each call it prints ``case N: <description>`` (flushed), so when the
process dies (segfault / abort) the last line names the crashing case. A call may return or
raise an ordinary Python exception (caught); anything else kills the process.
"""

from __future__ import annotations

import random
import sys

import torch

import strainer_fast.ops as ops  # noqa: F401  (registers torch.ops.strainer_fast)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool]
DEVICES = ["cpu", "cpu", "cpu", "meta"]


def tensor(rng: random.Random, shape: list[int]) -> torch.Tensor:
    """A tensor of ``shape`` with a random dtype / device / layout (contiguous,
    transposed, strided slice, expanded, zero-stride)."""
    dtype = rng.choice(DTYPES) if rng.random() < 0.3 else torch.float32
    device = rng.choice(DEVICES)
    layout = rng.choice(["contig"] * 4 + ["transposed", "sliced", "expanded"])
    if layout == "transposed" and len(shape) >= 2:
        t = torch.zeros(*shape[:-2], shape[-1], shape[-2], dtype=dtype, device=device)
        t = t.transpose(-1, -2)
    elif layout == "sliced" and shape:
        t = torch.zeros(*shape[:-1], shape[-1] * 2, dtype=dtype, device=device)[..., ::2]
    elif layout == "expanded" and shape:
        t = torch.zeros(*shape[:-1], 1, dtype=dtype, device=device).expand(*shape)
    else:
        t = torch.zeros(*shape, dtype=dtype, device=device)
    if device == "cpu" and dtype.is_floating_point and t.numel():
        with torch.no_grad():
            t = t + torch.randn(t.shape, dtype=torch.float32).to(dtype) if layout == "contig" else t
    return t


def dim(rng: random.Random) -> int:
    return rng.choice([0, 1, 1, 2, 3, 5, 8, 17])


def args(rng: random.Random) -> tuple:
    """Random (x, weights, biases, omegas, last_linear) around a valid batched call."""
    s, n, layers = rng.choice([1, 2, 3]), dim(rng), rng.choice([0, 1, 2, 3])
    widths = [dim(rng) or 1 for _ in range(layers + 1)]
    x_shape = rng.choice([[n, widths[0]], [s, n, widths[0]], [widths[0]], [1, s, n, widths[0]]])
    ws = [[s, widths[i + 1], widths[i]] for i in range(layers)]
    bs = [[s, widths[i + 1]] for i in range(layers)]
    for shapes in (ws, bs):  # break a random shape now and then
        if shapes and rng.random() < 0.3:
            k = rng.randrange(len(shapes))
            shapes[k] = [max(0, d + rng.choice([-1, 1, 7])) for d in shapes[k]][: rng.choice(
                [1, 2, 3, 4])]
    weights = [tensor(rng, sh) for sh in ws]
    biases = [tensor(rng, sh) for sh in bs]
    if rng.random() < 0.15 and biases:
        biases.pop()
    omegas = [30.0] * layers
    if rng.random() < 0.2:
        omegas = omegas[: rng.randrange(layers + 1)] + rng.choice([[], [float("nan")], [1e30]])
    return tensor(rng, x_shape), weights, biases, omegas, rng.random() < 0.5


def case(i: int) -> str:
    rng = random.Random(i)
    x, weights, biases, omegas, last_linear = args(rng)
    kind = rng.choice(["public", "public", "raw_forward", "raw_backward"])
    desc = (f"{kind} x={tuple(x.shape)}/{x.dtype}/{x.device}/stride={x.stride()} "
            f"w={[(tuple(w.shape), str(w.dtype), str(w.device), w.stride()) for w in weights]} "
            f"b={[(tuple(b.shape), str(b.dtype), str(b.device)) for b in biases]} "
            f"omegas={omegas} last_linear={last_linear}")
    print(f"case {i}: {desc}", flush=True)
    precision = rng.choice([0, 0, 1, 2, 3, -1])
    if kind == "public":
        fn = rng.choice([ops.batched_sine_mlp, ops.sine_mlp])
        ws = [w[0] if w.dim() == 3 and fn is ops.sine_mlp else w for w in weights]
        bs = [b[0] if b.dim() == 2 and fn is ops.sine_mlp else b for b in biases]
        fn(x, ws, bs, omegas, last_linear, backend=rng.choice(["auto", "cpu"]),
           precision=rng.choice(["exact", "bf16"]))
    elif kind == "raw_forward":
        torch.ops.strainer_fast.fused_mlp_forward(x, weights, biases, omegas, last_linear,
                                                  rng.random() < 0.5, precision)
    else:
        hidden = [tensor(rng, [x.shape[0] if x.dim() else 1, dim(rng)])
                  for _ in range(rng.choice([0, len(weights), len(weights) + 1]))]
        cosines = [tensor(rng, list(h.shape)) for h in hidden[: rng.choice([0, len(hidden)])]]
        grad_out = tensor(rng, [rng.choice([1, 2, 3]), dim(rng), dim(rng) or 1])
        torch.ops.strainer_fast.fused_mlp_backward(grad_out, x, weights, biases,
                                                   hidden + cosines, omegas, last_linear,
                                                   rng.random() < 0.5, precision)
    return desc


def main() -> None:
    first, count = int(sys.argv[1]), int(sys.argv[2])
    outcomes = {"returned": 0, "raised": 0}
    for i in range(first, first + count):
        try:
            case(i)
            outcomes["returned"] += 1
        except Exception as exc:  # noqa: BLE001  a clean Python exception is a pass
            outcomes["raised"] += 1
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            print(f"  -> {type(exc).__name__}: {first}", flush=True)
    print(f"done {outcomes}", flush=True)


if __name__ == "__main__":
    main()
