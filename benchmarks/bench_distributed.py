"""Data-parallel pretraining throughput: steps/s of STRAINER pretraining with 1 and 2 gloo
ranks on this machine's CPUs (signals split between the ranks, encoder gradients
all-reduced every step; see strainer_fast/distributed.py).

Each configuration runs in fresh processes (joined over 127.0.0.1 with gloo); the cores are
divided evenly between ranks (torch threads per rank = cores // ranks). Every rank runs
``--warmup`` steps, then ``--steps`` timed steps; the step rate is the slowest rank's.
Results: benchmarks/results/distributed_cpu.json and a markdown table on stdout.

    python benchmarks/bench_distributed.py [--size 64] [--width 128] [--signals 10] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from machine import cpu_name
from strainer_fast import distributed
from strainer_fast.data import default_split, load_images
from strainer_fast.pretrain import initial_strainer
from strainer_fast.train import GradSync, image_mse, train

RESULTS = Path(__file__).resolve().parent / "results" / "distributed_cpu.json"


def rank_main(rank: int, world: int, port: int, cfg: dict, queue) -> None:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world)
    train, _ = default_split()
    images, _ = load_images(train[:cfg["signals"]], cfg["size"])
    start, stop = distributed.shard(images.shape[0], rank, world)
    model = initial_strainer(images.shape[0], start, stop, out_features=1, width=cfg["width"],
                             layers=cfg["layers"], shared=cfg["shared"])
    sync = [GradSync()] if world > 1 else []
    objective = image_mse(model, images[start:stop])
    train(model, objective, cfg["warmup"], progress=False, callbacks=sync)
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    train(model, objective, cfg["steps"], progress=False, callbacks=sync)
    queue.put((rank, time.perf_counter() - t0))
    if world > 1:
        dist.destroy_process_group()


def measure(world: int, cfg: dict) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=rank_main, args=(r, world, port, cfg, queue)) for r in range(world)]
    for p in procs:
        p.start()
    times = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"a rank failed (exit {p.exitcode})")
    return cfg["steps"] / max(t for _, t in times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--shared", type=int, default=5)
    ap.add_argument("--signals", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--ranks", default="1,2")
    args = ap.parse_args()
    cfg = {k: getattr(args, k) for k in ("size", "width", "layers", "shared", "signals",
                                         "warmup", "steps")}
    rows = []
    for world in (int(r) for r in args.ranks.split(",")):
        rate = measure(world, cfg)
        rows.append({"ranks": world, "threads_per_rank": max(1, (os.cpu_count() or 1) // world),
                     "steps_per_s": rate})
    base = rows[0]["steps_per_s"]
    for r in rows:
        r["speedup_vs_1"] = r["steps_per_s"] / base
    machine = (f"{cpu_name()}, {os.cpu_count()} CPU threads, torch {torch.__version__}, "
               "shared with other jobs")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": machine, "config": cfg, "results": rows},
                                  indent=2) + "\n")
    print(f"Machine: {machine}\n")
    print(f"STRAINER-{cfg['signals']} pretraining, {cfg['size']}x{cfg['size']}, width "
          f"{cfg['width']}, {cfg['layers']} layers ({cfg['shared']} shared), {cfg['steps']} "
          "timed steps\n")
    print("| ranks | threads / rank | steps/s | vs 1 rank |\n| ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['ranks']} | {r['threads_per_rank']} | {r['steps_per_s']:.2f} | "
              f"{r['speedup_vs_1']:.2f}x |")


if __name__ == "__main__":
    main()
