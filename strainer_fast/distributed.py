"""Data-parallel STRAINER pretraining on ``torch.distributed`` (one process per device).

Signals are split into contiguous blocks, one per rank (``shard``); each rank holds only its
block's images and decoders. The loss is the sum over signals of per-signal MSE, so the
shared encoder's gradient is the SUM over ranks of the ranks' encoder gradients: one
``all_reduce(SUM)`` of the flattened encoder gradients (plus the loss, so every rank takes
the same divergence decision) per step (``sum_encoder_grads``, the ``train.GradSync``
callback); decoder gradients stay local.
Adam is elementwise, so every rank keeps an identical encoder and the result equals a
single-process run up to the order of float additions.

Processes are started by ``torchrun`` (``launch`` runs it for ``--nproc``); backend NCCL
on GPUs, gloo on CPUs. This module holds the collectives only; ``data.load_image_shard``
loads a rank's images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as dist

from .models import Layers, Strainer

__all__ = ["rank_world", "is_launched", "init_from_env", "shard", "sum_encoder_grads", "all_ok",
           "all_gather", "first_error", "gather_decoders", "launch"]


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


def sum_encoder_grads(model: Strainer, loss: torch.Tensor) -> torch.Tensor:
    """Collective, after backward: sums the encoder gradients and the loss over ranks in
    one all_reduce; returns the global loss (a 0-d tensor)."""
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


def gather_decoders(model: Strainer) -> Layers:
    """Collective: all ranks' decoders concatenated in rank order ([S_total, out, in]), CPU."""
    mine = [(w.detach().cpu(), b.detach().cpu()) for w, b in zip(model.dec_w, model.dec_b)]
    parts = all_gather(mine)
    return [(torch.cat([p[i][0] for p in parts]), torch.cat([p[i][1] for p in parts]))
            for i in range(len(mine))]


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Runs ``python -m strainer_fast *argv`` in ``nproc`` local processes through
    ``torch.distributed.run`` (torchrun's elastic agent, standalone rendezvous: it picks
    and holds the port itself). Each process gets ``cores / nproc`` threads unless
    OMP_NUM_THREADS is set. Returns 0, or 2 when a process failed (its error line is on
    stderr)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}",
                                         "--module", "strainer_fast", *argv])
    try:
        run(args)
    except ChildFailedError:
        return 2
    return 0
