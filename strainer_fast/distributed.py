"""Data-parallel STRAINER pretraining on ``torch.distributed`` (one process per device).

Signals are split into contiguous blocks, one per rank (``shard``); each rank holds only its
block's images and decoders. The loss is the sum over signals of per-signal MSE, so the
shared encoder's gradient is the SUM over ranks of the ranks' encoder gradients: one
``all_reduce(SUM)`` of the flattened encoder gradients (plus the loss, so every rank takes
the same divergence decision) per step (``EncoderGradSync``); decoder gradients stay local.
Adam is elementwise, so every rank keeps an identical encoder and the result equals a
single-process run up to the order of float additions.

Processes are started by ``torchrun`` or ``launch`` (the same environment protocol: RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); backend NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from .data import load_images, list_images
from .models import Layers, Strainer

__all__ = ["rank_world", "is_launched", "init_from_env", "shard", "EncoderGradSync", "all_ok",
           "all_gather", "first_error", "load_shard", "gather_decoders", "launch"]


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_launched() -> bool:
    """True in a process started by torchrun / ``launch`` (RANK and WORLD_SIZE set)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_from_env(device: torch.device) -> tuple[int, int]:
    """Joins the process group described by torchrun's environment variables (no-op for a
    single process or when already joined); returns (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank_world()


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, stop) of rank's contiguous block of ``n`` signals (sizes differ by <= 1)."""
    if n < world:
        raise ValueError(f"{n} signals cannot be split over {world} processes "
                         "(every process needs at least one)")
    return rank * n // world, (rank + 1) * n // world


class EncoderGradSync:
    """After backward: sums encoder gradients and the loss over ranks in one all_reduce;
    returns the global loss (a 0-d tensor)."""

    def __call__(self, model: Strainer, loss: torch.Tensor) -> torch.Tensor:
        params = [*model.enc_w, *model.enc_b]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [loss.reshape(1)])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p, g in zip(params, grads):
            p.grad = flat[offset:offset + g.numel()].view_as(g)
            offset += g.numel()
        return flat[-1]


def _flag_device() -> torch.device:
    return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")


def all_ok(flag: bool) -> bool:
    """True when ``flag`` is true on every rank."""
    if rank_world()[1] == 1:
        return bool(flag)
    t = torch.tensor([int(flag)], device=_flag_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def all_gather(obj: object) -> list:
    """Every rank's ``obj`` (picklable), in rank order."""
    if rank_world()[1] == 1:
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def first_error(message: str | None) -> None:
    """Collective: raises ValueError(first non-None message over ranks) on every rank, so all
    ranks stop together instead of some blocking in a collective."""
    errors = [m for m in all_gather(message) if m]
    if errors:
        raise ValueError(errors[0])


def load_shard(source: str | Path, size: int, gray: bool = False
               ) -> tuple[torch.Tensor, list[str], tuple[int, int, int]]:
    """Collective: this rank's block of the images of ``source`` (see ``data.load_images``)
    as (images [S_rank, size, size, C], names of all signals, (start, stop, total)). A bad
    file or mixed channel counts on any rank raise the same ValueError on every rank."""
    rank, world = rank_world()
    paths = list_images(source)
    start, stop = shard(len(paths), rank, world)
    images, error = None, None
    try:
        images, _ = load_images(paths[start:stop], size, gray)
    except ValueError as exc:
        error = str(exc)
    first_error(error)
    channels = set(all_gather(images.shape[-1]))
    if len(channels) > 1:
        raise ValueError(f"images have mixed channel counts ({sorted(channels)}); use --gray")
    return images, [p.name for p in paths], (start, stop, len(paths))


def gather_decoders(model: Strainer) -> Layers:
    """Collective: all ranks' decoders concatenated in rank order ([S_total, out, in]), CPU."""
    mine = [(w.detach().cpu(), b.detach().cpu()) for w, b in zip(model.dec_w, model.dec_b)]
    parts = all_gather(mine)
    return [(torch.cat([p[i][0] for p in parts]), torch.cat([p[i][1] for p in parts]))
            for i in range(len(mine))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Runs ``python -m strainer_fast *argv`` in ``nproc`` local processes with torchrun's
    environment; rank 0 keeps the terminal, the others' stderr is kept for their error
    line. When a rank fails the others are stopped. Returns 0, or 2 after printing the
    first failing rank's error line."""
    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    env = dict(os.environ, WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    with tempfile.TemporaryDirectory() as tmp:
        logs = [Path(tmp) / f"rank{r}.err" for r in range(nproc)]
        procs = []
        for rank in range(nproc):
            with open(logs[rank], "w") as err:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "strainer_fast", *argv],
                    env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)),
                    stderr=None if rank == 0 else err))
        failed = None
        try:
            while failed is None and any(p.poll() is None for p in procs):
                failed = next((r for r, p in enumerate(procs) if p.poll()), None)
                time.sleep(0.1)
            deadline = time.monotonic() + 3  # let the others stop by themselves first
            while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
                time.sleep(0.1)
            failed = next((r for r, p in enumerate(procs) if p.poll()), failed)
        finally:  # a dead rank leaves the others blocked in a collective
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        if failed is None:
            return 0
        if failed != 0:  # rank 0 printed its own error line to the terminal
            lines = [ln for ln in logs[failed].read_text(errors="replace").splitlines()
                     if "error:" in ln]
            print(lines[0] if lines else f"strainer-fast: error: process {failed} of {nproc} "
                  f"failed (exit {procs[failed].returncode})", file=sys.stderr)
        return 2
