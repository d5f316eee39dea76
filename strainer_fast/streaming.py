"""STRAINER pretraining on more signals than fit in memory: signals streamed in groups.

Semantics (``pretrain_streaming``): the S signals are cut into consecutive groups of
``group_size``. Training visits the groups round-robin (group 0, 1, ..., last, 0, 1, ...),
each visit running ``visit_steps`` Adam steps on that group alone (loss = sum over the
group's signals of per-signal MSE), until the encoder has taken ``steps`` steps in all (the
last visit may be shorter). Only one group's images, decoders and decoder Adam state are in
memory at a time; the encoder and its Adam state stay in memory and carry over between
visits. Every visit is one run of the training engine (``train.train``).

Every signal's decoder (weights, Adam moments, step count) lives in its own file
``store/{index:08d}.v{visit:06d}.pt``, written (atomically) after each visit of its group;
``visit`` numbers the generation, so a training-state checkpoint (``checkpoint_every``
steps, at the end of a visit) names the generations it belongs to and ``resume`` continues
from exactly that state, even when later visits had already rewritten some groups. Older
generations are deleted once no kept checkpoint names them.

Initial values equal ``Strainer(S, seed=seed)`` (one seeded draw, so with a single group
and ``visit_steps >= steps`` the result equals ``pretrain``). The final checkpoint holds the
encoder and all decoders, like ``pretrain``'s. ``points`` N: every step fits N random pixels
of the group's images (one generator seeded ``seed`` for the whole run, its state saved with
the training state), so a step's memory is bounded by the group size and N.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .checkpoint import atomic_save, save_checkpoint
from .data import load_images
from .memory import check_fits
from .models import Strainer, resolve_device
from .pretrain import initial_strainer
from .train import image_mse, train
from .train.callbacks import check_fingerprint, load_state_file, say, steps_on_disk
from .value_range import DEFAULT_VALUE_RANGE, ValueRange, range_fingerprint, resolve

__all__ = ["pretrain_streaming", "STREAM_FORMAT"]

MOMENTS = ("exp_avg", "exp_avg_sq")
STREAM_FORMAT = "strainer_fast/stream-state/1"


class _Store:
    """Per-signal decoder files, one generation per visit of the signal's group."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def file(self, index: int, gen: int) -> Path:
        return self.root / f"{index:08d}.v{gen:06d}.pt"

    def save(self, start: int, gen: int, params: Sequence[torch.Tensor],
             opt: torch.optim.Optimizer | None = None) -> None:
        """Each signal's decoder tensors (``params``: [G, ...], weights then biases) and
        their Adam moments in ``opt``, as generation ``gen``."""
        states = [opt.state.get(p, {}) if opt is not None else {} for p in params]
        for k in range(params[0].shape[0]):
            entry = {"params": [p.detach()[k].cpu().clone() for p in params],
                     "step": float(states[0]["step"]) if states[0] else 0.0}
            for m in MOMENTS:
                entry[m] = [s[m][k].cpu().clone() for s in states] if states[0] else []
            atomic_save(entry, self.file(start + k, gen))

    def load(self, start: int, stop: int, gen: int, model: Strainer,
             opt: torch.optim.Optimizer) -> None:
        """Signals [start, stop) of generation ``gen`` into ``model``'s decoders and ``opt``."""
        entries = [torch.load(self.file(i, gen), map_location="cpu", weights_only=True)
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

    def prune(self, keep: set[tuple[int, int]], starts: dict[int, int]) -> None:
        """Deletes every file whose (group start, generation) is not in ``keep``."""
        pat = re.compile(r"(\d{8})\.v(\d{6})\.pt$")
        for p in self.root.iterdir():
            m = pat.match(p.name)
            if m and (starts[int(m.group(1))], int(m.group(2))) not in keep:
                p.unlink(missing_ok=True)


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
    weight_scale: float = 1.0,
    points: int | None = None,
    progress: bool = True,
    out: str | Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    state_dir: str | Path | None = None,
    fingerprint: dict | None = None,
    value_range: str | ValueRange = DEFAULT_VALUE_RANGE,
) -> Strainer:
    """Pretrains on the images at ``paths`` (loaded a group at a time, see ``data``) with
    the decoders kept per signal in folder ``store``; returns the model of the last visited
    group (its encoder is the result). ``steps`` counts encoder steps over all visits.

    ``checkpoint_every`` K: after the first visit that reaches each multiple of K steps,
    the training state goes to ``state_dir`` (default ``store``/state); ``resume``
    continues from the newest one (``fingerprint``: settings that must match).
    ``weight_scale``: alpha of the initial draw (``models``); ``points``: pixels per step
    (module doc; None: the full grid); ``value_range``: the targets' range (as ``pretrain``;
    recorded in the model, the checkpoint and the resume fingerprint). A group that cannot
    fit in memory raises ``memory.WontFit`` before any file is written.
    """
    paths = [Path(p) for p in paths]
    if group_size < 1 or visit_steps < 1:
        raise ValueError("group size and visit steps must be >= 1")
    if checkpoint_every < 0:
        raise ValueError(f"--checkpoint-every must be >= 0, got {checkpoint_every}")
    if not paths:
        raise ValueError("no images given")
    dev, total, vr = resolve_device(device), len(paths), resolve(value_range)
    files = _Store(Path(store))
    state_dir = Path(state_dir) if state_dir is not None else Path(store) / "state"
    fingerprint = dict(fingerprint or {}, signals=[p.name for p in paths], group_size=group_size,
                       visit_steps=visit_steps, steps=steps, **range_fingerprint(vr))
    groups = [(a, min(a + group_size, total)) for a in range(0, total, group_size)]
    starts = {i: a for a, b in groups for i in range(a, b)}
    first, _ = load_images(paths[groups[0][0]:groups[0][1]], size, gray)
    channels = first.shape[-1]
    check_fits(dev, f"pretraining on groups of {len(first)} image(s) of {size}x{size} px",
               signals=len(first), grid=size * size, channels=channels, points=points,
               width=width, layers=layers)
    config = dict(in_features=2, out_features=channels, width=width, layers=layers,
                  shared=shared, w0=w0, backend=backend, precision=precision)
    init = initial_strainer(total, 0, total, seed=seed, weight_scale=weight_scale, **config)
    draws = torch.Generator().manual_seed(seed)  # point batches (with ``points``)
    enc = [nn.Parameter(t.to(dev)) for w, b in init.encoder_layers() for t in (w, b)]
    enc_state: dict[int, dict] = {}
    gen = {start: 0 for start, _ in groups}  # generation of each group's files
    done, visit, kept = 0, 0, []
    saved = _saved_states(state_dir)
    if resume and saved:
        state = _read_state(state_dir, saved[-1], fingerprint)
        with torch.no_grad():
            for p, t in zip(enc, state["encoder"]):
                p.copy_(t)
        enc_state = {int(i): {k: v.to(dev) for k, v in s.items()}
                     for i, s in state["enc_state"].items()}
        gen = {int(k): v for k, v in state["gen"].items()}
        if "draws" in state:  # states of versions without point batches lack it
            draws.set_state(state["draws"])
        done, visit, kept, first = state["done"], state["visit"], [gen], None
        for old in saved[:-1]:
            (state_dir / f"stream.step{old:09d}.pt").unlink(missing_ok=True)
        files.prune({(g, v) for g, v in gen.items()}, starts)
        say(f"resumed from step {done} ({state_dir})")
    else:
        if resume:
            say(f"no training state in {state_dir}; starting from step 0")
        elif checkpoint_every and saved:
            raise ValueError(f"{state_dir} holds the training state of an earlier run; "
                             "continue it with --resume or delete the folder")
        files.root.mkdir(parents=True, exist_ok=True)
        files.prune(set(), starts)
        for start, stop in groups:  # every signal's initial decoder, no Adam state yet
            files.save(start, 0, [p[start:stop] for p in [*init.dec_w, *init.dec_b]])
    del init
    model = None
    while done < steps:
        start, stop = groups[visit % len(groups)]
        images = first if first is not None else load_images(paths[start:stop], size, gray)[0]
        if images.shape[-1] != channels:
            raise ValueError(f"images have mixed channel counts ({channels} and "
                             f"{images.shape[-1]}); use gray=True / --gray")
        model = Strainer(stop - start, seed=seed, **config).to(dev)
        model.value_range = vr.name
        for i in range(len(model.enc_w)):  # the one shared encoder
            model.enc_w[i], model.enc_b[i] = enc[2 * i], enc[2 * i + 1]
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for i, p in enumerate(enc):
            if i in enc_state:
                opt.state[p] = enc_state[i]
        files.load(start, stop, gen[start], model, opt)
        n = min(visit_steps, steps - done)
        train(model, image_mse(model, images.to(dev, torch.float32), points=points,
                               generator=draws, value_range=vr), n, optimizer=opt,
              progress=progress, value_range=vr,
              desc=f"pretrain group {visit % len(groups) + 1}/{len(groups)}, "
                   f"steps {done + 1}-{done + n} of {steps}")
        enc_state = {i: opt.state[p] for i, p in enumerate(enc) if p in opt.state}
        old = gen[start]
        visit, first = visit + 1, None
        gen[start] = visit
        files.save(start, visit, [*model.dec_w, *model.dec_b], opt)
        crossed = checkpoint_every and (done + n) // checkpoint_every > done // checkpoint_every
        done += n
        if crossed and done < steps:
            atomic_save({"format": STREAM_FORMAT, "done": done, "visit": visit,
                         "encoder": [p.detach().cpu() for p in enc],
                         "enc_state": {str(i): {k: v.cpu() for k, v in s.items()}
                                       for i, s in enc_state.items()},
                         "gen": {str(k): v for k, v in gen.items()},
                         "draws": draws.get_state(), "fingerprint": fingerprint},
                        state_dir / f"stream.step{done:09d}.pt")
            kept = (kept + [dict(gen)])[-2:]
            for s in _saved_states(state_dir)[:-2]:
                (state_dir / f"stream.step{s:09d}.pt").unlink(missing_ok=True)
            files.prune({(g, v) for k in kept for g, v in k.items()}, starts)
        elif not any(k.get(start) == old for k in kept):
            for i in range(start, stop):
                files.file(i, old).unlink(missing_ok=True)
    if out is not None:
        dec = [[], []]
        for start, stop in groups:
            part = Strainer(stop - start, seed=seed, **config)
            files.load(start, stop, gen[start], part, torch.optim.Adam(part.parameters()))
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
                        visit_steps=visit_steps, weight_scale=weight_scale, points=points,
                        value_range=vr.name)
    for s in _saved_states(state_dir):  # finished: the training states are spent
        (state_dir / f"stream.step{s:09d}.pt").unlink(missing_ok=True)
    if state_dir.is_dir() and not any(state_dir.iterdir()):
        state_dir.rmdir()
    files.prune({(g, v) for g, v in gen.items()}, starts)
    return model


def _saved_states(state_dir: Path) -> list[int]:
    return steps_on_disk(state_dir, r"stream\.step(\d+)\.pt$")


def _read_state(state_dir: Path, step: int, fingerprint: dict) -> dict:
    path = state_dir / f"stream.step{step:09d}.pt"
    state = load_state_file(path, STREAM_FORMAT, "streaming training state")
    check_fingerprint(path, fingerprint, state)
    return state
