"""STRAINER pretraining on more signals than fit in memory: signals streamed in groups.

Semantics (``pretrain_streaming``): the S signals are cut into consecutive groups of
``group_size``. Training visits the groups round-robin (group 0, 1, ..., last, 0, 1, ...),
each visit running ``visit_steps`` Adam steps on that group alone (loss = sum over the
group's signals of per-signal MSE), until the encoder has taken ``steps`` steps in all (the
last visit may be shorter). Only one group's images, decoders and decoder Adam state are in
memory at a time; the encoder and its Adam state stay in memory and carry over between
visits. Every signal's decoder (weights and Adam moments, step count) lives in its own file
``store/{index:08d}.pt``, written after each visit of its group (atomically).

Initial values equal ``Strainer(S, seed=seed)`` (one seeded draw, so with a single group
and ``visit_steps >= steps`` the result equals ``pretrain``). The final checkpoint holds the
encoder and all decoders, like ``pretrain``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .checkpoint import atomic_save, save_checkpoint
from .data import load_images
from .fit import train_loop
from .models import Strainer, resolve_device
from .pretrain import initial_strainer

__all__ = ["pretrain_streaming"]

MOMENTS = ("exp_avg", "exp_avg_sq")


def _signal_file(store: Path, index: int) -> Path:
    return store / f"{index:08d}.pt"


def _save_group(store: Path, start: int, params: Sequence[torch.Tensor],
                opt: torch.optim.Optimizer | None = None) -> None:
    """Writes each signal's decoder tensors (``params``: [G, ...] each, the decoder weights
    then biases) and their Adam moments in ``opt`` to one file per signal."""
    states = [opt.state.get(p, {}) if opt is not None else {} for p in params]
    for k in range(params[0].shape[0]):
        entry = {"params": [p.detach()[k].cpu().clone() for p in params],
                 "step": float(states[0]["step"]) if states[0] else 0.0}
        for m in MOMENTS:
            entry[m] = [s[m][k].cpu().clone() for s in states] if states[0] else []
        atomic_save(entry, _signal_file(store, start + k))


def _load_group(store: Path, start: int, stop: int, model: Strainer,
                opt: torch.optim.Optimizer) -> None:
    """Loads signals [start, stop) from the store into ``model``'s decoders and ``opt``."""
    entries = [torch.load(_signal_file(store, i), map_location="cpu", weights_only=True)
               for i in range(start, stop)]
    params = [*model.dec_w, *model.dec_b]
    with torch.no_grad():
        for j, p in enumerate(params):
            p.copy_(torch.stack([e["params"][j] for e in entries]))
    if entries[0]["exp_avg"]:
        for j, p in enumerate(params):
            opt.state[p] = {"step": torch.tensor(entries[0]["step"]),
                            **{m: torch.stack([e[m][j] for e in entries]).to(p.device)
                               for m in MOMENTS}}


def pretrain_streaming(
    paths: Sequence[str | Path],
    store: str | Path,
    *,
    group_size: int,
    visit_steps: int = 100,
    size: int = 178,
    gray: bool = False,
    width: int = 256,
    layers: int = 6,
    shared: int = 5,
    w0: float = 30.0,
    steps: int = 5000,
    lr: float = 1e-4,
    seed: int = 0,
    device: str = "auto",
    backend: str = "auto",
    precision: str = "exact",
    progress: bool = True,
    out: str | Path | None = None,
) -> Strainer:
    """Pretrains on the images at ``paths`` (loaded a group at a time, see ``data``) with
    the decoders kept per signal in folder ``store``; returns the model of the last visited
    group (its encoder is the result). ``steps`` counts encoder steps over all visits."""
    paths = [Path(p) for p in paths]
    if group_size < 1 or visit_steps < 1:
        raise ValueError("group size and visit steps must be >= 1")
    if not paths:
        raise ValueError("no images given")
    dev, store, total = resolve_device(device), Path(store), len(paths)
    groups = [(a, min(a + group_size, total)) for a in range(0, total, group_size)]
    first, _ = load_images(paths[groups[0][0]:groups[0][1]], size, gray)
    channels = first.shape[-1]
    config = dict(in_features=2, out_features=channels, width=width, layers=layers,
                  shared=shared, w0=w0, backend=backend, precision=precision)
    torch.manual_seed(seed)
    init = initial_strainer(total, 0, total, seed=seed, **config)
    enc = [nn.Parameter(t.to(dev)) for w, b in init.encoder_layers() for t in (w, b)]
    for start, stop in groups:  # every signal's initial decoder, no Adam state yet
        _save_group(store, start, [p[start:stop] for p in [*init.dec_w, *init.dec_b]])
    del init
    enc_state: dict[int, dict] = {}
    done, visit, model = 0, 0, None
    while done < steps:
        start, stop = groups[visit % len(groups)]
        images = first if visit == 0 else load_images(paths[start:stop], size, gray)[0]
        if images.shape[-1] != channels:
            raise ValueError(f"images have mixed channel counts ({channels} and "
                             f"{images.shape[-1]}); use gray=True / --gray")
        model = Strainer(stop - start, seed=seed, **config).to(dev)
        for i in range(len(model.enc_w)):  # the one shared encoder
            model.enc_w[i], model.enc_b[i] = enc[2 * i], enc[2 * i + 1]
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for i, p in enumerate(enc):
            if i in enc_state:
                opt.state[p] = enc_state[i]
        _load_group(store, start, stop, model, opt)
        n = min(visit_steps, steps - done)
        train_loop(model, images.to(dev, torch.float32), n, lr, optimizer=opt,
                   progress=progress,
                   desc=f"pretrain group {visit % len(groups) + 1}/{len(groups)}, "
                        f"steps {done + 1}-{done + n} of {steps}")
        enc_state = {i: opt.state[p] for i, p in enumerate(enc) if p in opt.state}
        _save_group(store, start, [*model.dec_w, *model.dec_b], opt)
        done, visit, first = done + n, visit + 1, None
    if out is not None:
        dec = [[], []]
        for start, stop in groups:
            part = Strainer(stop - start, seed=seed, **config)
            _load_group(store, start, stop, part, torch.optim.Adam(part.parameters()))
            dec[0].append([w.detach() for w in part.dec_w])
            dec[1].append([b.detach() for b in part.dec_b])
        dec_layers = [(torch.cat([g[j] for g in dec[0]]), torch.cat([g[j] for g in dec[1]]))
                      for j in range(len(dec[0][0]))]
        enc_layers = [(enc[2 * i].detach().cpu(), enc[2 * i + 1].detach().cpu())
                      for i in range(len(enc) // 2)]
        full = Strainer.from_layers(enc_layers + dec_layers, w0=w0, shared=shared,
                                    backend=backend, precision=precision)
        save_checkpoint(full, out, signals=[p.name for p in paths], steps=steps, seed=seed,
                        lr=lr, size=[size, size], group_size=group_size,
                        visit_steps=visit_steps)
    return model
