"""Fitting images with INRs from different initialisations (all weights trained).

``fit_many`` trains K independent networks on K images in one batched forward per step
(``Strainer`` with ``shared=0``: every layer is a ``batched_sine_mlp`` layer), loss = sum
of per-image MSE, so each network gets exactly its own gradient; Adam is elementwise, so
the result equals K separate ``fit`` runs. Inits:

- ``"siren"``: random SIREN init, network k seeded with ``seed + k``;
- ``"siren-ft"`` / ``"meta"``: the same given full-network weights for every image
  (see ``siren_ft_init`` and ``meta.meta_init``);
- ``"strainer"``: given (pretrained) encoder layers + a fresh decoder seeded ``seed + k``.
"""

from __future__ import annotations

import math

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .data import coord_grid, from_output, to_target
from .metrics import psnr, ssim
from .models import Layers, Strainer, init_layers, layer_sizes, resolve_device
from .resilience import TrainGuard
from .stability import make_stabilizer

__all__ = ["INITS", "FitResult", "fit", "fit_many", "siren_ft_init", "train_loop"]

INITS = ("siren", "siren-ft", "meta", "strainer")


@dataclass
class FitResult:
    """Training curves and the fitted networks.

    ``step``/``wall_s`` have one entry per log point (step 0 = the init); ``psnr`` (dB) and
    ``ssim`` are [log point][image]. ``wall_s`` is cumulative training time in seconds,
    metric evaluation excluded. ``recon``: final reconstructions [K, H, W, C] in [0, 1].
    """

    model: Strainer
    step: list[int] = field(default_factory=list)
    psnr: list[list[float]] = field(default_factory=list)
    ssim: list[list[float]] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    recon: torch.Tensor | None = None
    train_psnr: list[list[float]] = field(default_factory=list)


def train_loop(
    model: Strainer,
    images: torch.Tensor,
    steps: int,
    lr: float = 1e-4,
    *,
    log_every: int = 0,
    on_log: Callable[[int, float, torch.Tensor], None] | None = None,
    progress: bool = True,
    desc: str = "fit",
    operator: Callable[[torch.Tensor], torch.Tensor] | None = None,
    render_size: tuple[int, int] | None = None,
    batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None = None,
    guard: TrainGuard | None = None,
    sync: Callable[[Strainer, torch.Tensor], torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    stabilize: str = "off",
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> None:
    """Adam on sum over signals of per-signal MSE, ``model`` on the images' device.

    images: [S, H, W, C] in [0, 1] with S = model.signals. ``on_log(step, wall_s, output)``
    is called at step 0 and every ``log_every`` steps (and at the last step) with the
    network output [S, H*W, C] in [-1, 1]. The bar shows the live training PSNR (mean, dB).

    Inverse problems: the network is rendered on a ``render_size`` (H', W') grid (default:
    the images' size) and ``operator`` maps that output [S, H'*W', C] to the observation
    space of ``images`` [S, H*W, C] before the MSE (``on_log`` gets the render). Other
    signals (e.g. 3D): ``batches(step)`` gives each step's (coords [N, in], target
    [S, N, C] in [-1, 1]); ``images`` is then unused and ``on_log`` gets ``None``.

    ``guard`` (``resilience.TrainGuard``): checkpoints / resume / divergence roll-back
    (default: roll-back only). ``sync(model, loss)``, called after each backward, returns
    the loss summed over all ranks (and all-reduces gradients; see ``distributed``).
    ``optimizer``: an optimizer over ``model.parameters()`` to continue (its state is kept;
    default: a fresh Adam with ``lr``).

    ``stabilize``: one of ``stability.STABILIZE`` ("off" = the paper's plain Adam).
    ``on_step(step, mse)`` gets each step's per-signal training MSE [S] (on [-1, 1] values).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if batches is None:
        coords = coord_grid(*(render_size or images.shape[1:3])).to(images.device)
        target = to_target(images)
    forward = operator or (lambda out: out)
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    guard = guard or TrainGuard()
    stab = make_stabilizer(stabilize, model, opt, steps)
    step, wall = guard.begin(model, opt)

    def log(step: int) -> None:
        if on_log is not None:
            with torch.no_grad():
                on_log(step, wall, None if batches is not None else model(coords))

    def at_log_point(step: int) -> bool:  # resumed / rolled-back states exclude their log
        return step == 0 or bool(log_every and (step % log_every == 0 or step == steps))

    if at_log_point(step):
        log(step)
    bar = tqdm(total=steps, initial=step, desc=desc, disable=not progress, leave=False,
               dynamic_ncols=True)
    while step < steps:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if batches is not None:
            coords, target = batches(step)
        mse = ((forward(model(coords)) - target) ** 2).mean(dim=(1, 2))
        loss = mse.sum()
        loss.backward()
        total = loss.detach() if sync is None else sync(model, loss.detach())
        back = guard.check_loss(float(total), step, model, opt)
        if back is None:
            stab.before_step(step + 1, mse.detach())
            opt.step()
            stab.after_step(step + 1, mse.detach())
            if coords.is_cuda:
                torch.cuda.synchronize()
            step += 1
            wall += time.perf_counter() - t0
            back = guard.after_step(step, wall, model, opt)
            if on_step is not None:
                on_step(step, mse.detach())
        if back is not None:  # diverged: rolled back to the last good state
            step, wall = back
            bar.reset(total=steps)
            bar.update(step)
            if at_log_point(step):
                log(step)
            continue
        bar.update(1)
        if progress and (step % 10 == 0 or step == steps):
            # MSE on [-1, 1] values is 4x the MSE on [0, 1] pixels.
            bar.set_postfix(psnr=f"{(10 * torch.log10(4 / mse.detach())).mean().item():.2f}")
        if log_every and (step % log_every == 0 or step == steps):
            log(step)
    bar.close()
    guard.finish()


def _stack(per_net: Sequence[Layers]) -> Layers:
    return [tuple(torch.stack([net[i][j] for net in per_net]) for j in (0, 1))
            for i in range(len(per_net[0]))]


def _initial_layers(init: str, k: int, channels: int, init_weights: Layers | None,
                    width: int, layers: int, w0: float, seed: int,
                    in_features: int = 2) -> Layers:
    """Stacked full-network layers [K, out, in] for K signals of ``in_features``-D coords."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "siren":
        sizes = layer_sizes(in_features, width, layers, channels)
        return _stack([init_layers(sizes, w0, torch.Generator().manual_seed(seed + i))
                       for i in range(k)])
    if init_weights is None:
        raise ValueError(f"init {init!r} needs init_weights (pretrained / meta-learned layers)")
    if init_weights[0][0].shape[-1] != in_features:
        raise ValueError(f"init weights take {init_weights[0][0].shape[-1]} input features, "
                         f"not {in_features}")
    if init in ("siren-ft", "meta"):
        if init_weights[-1][0].shape[0] != channels:
            raise ValueError(f"init weights output {init_weights[-1][0].shape[0]} channels "
                             f"but the images have {channels}")
        return _stack([init_weights] * k)
    shared = len(init_weights)
    if shared >= layers:
        raise ValueError(f"encoder has {shared} layers; layers must exceed that, got {layers}")
    enc_width = init_weights[-1][0].shape[0]
    sizes = layer_sizes(in_features, enc_width, layers, channels)[shared:]
    nets = [init_weights + init_layers(sizes, w0, torch.Generator().manual_seed(seed + i),
                                       first_index=shared) for i in range(k)]
    return _stack(nets)


def fit_many(
    images: torch.Tensor,
    init: str = "siren",
    *,
    init_weights: Layers | None = None,
    width: int = 256,
    layers: int = 6,
    w0: float = 30.0,
    steps: int = 2000,
    lr: float = 1e-4,
    log_every: int = 100,
    seed: int = 0,
    device: str = "auto",
    backend: str = "auto",
    precision: str = "exact",
    progress: bool = True,
    desc: str | None = None,
    operator: Callable[[torch.Tensor], torch.Tensor] | None = None,
    render_size: tuple[int, int] | None = None,
    reference: torch.Tensor | None = None,
    guard: TrainGuard | None = None,
    stabilize: str = "off",
    transfer_lr: tuple[float, float] = (1.0, 1.0),
) -> FitResult:
    """Fits K images [K, H, W, C] in [0, 1] with K independent networks at once.

    ``init_weights``: full-network (weight [out, in], bias [out]) pairs for "siren-ft" /
    "meta", the encoder pairs for "strainer" (``width`` then comes from them; ``layers``
    is the total depth). PSNR (dB) / SSIM / wall time are recorded every ``log_every``
    steps (0: only at the start and the end).

    Inverse problems: ``images`` are observations, fitted through ``operator`` from a
    ``render_size`` render (see ``train_loop``); metrics then compare the render with
    ``reference`` [K, H', W', C] (default: ``images``; ``psnr``/``ssim`` stay empty when the
    render size differs and no reference is given). ``recon`` is the render.

    ``guard``: checkpoint / resume / divergence policy (``resilience.TrainGuard``); the
    logged curves are saved and restored with the training state.

    ``stabilize``: test-time stabilisation mode (``stability.STABILIZE``; default "off", the
    paper's plain Adam). ``train_psnr`` gets every step's training PSNR [step][image] (dB).

    ``transfer_lr = (encoder, decoder)``: for "strainer", Adam learning rates of the
    pretrained encoder layers and of the fresh decoder layers as multiples of ``lr``
    (default (1, 1): the paper's protocol, all weights at ``lr``).
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [K, H, W, C], got shape {tuple(images.shape)}")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    stacked = _initial_layers(init, images.shape[0], images.shape[-1], init_weights, width,
                              layers, w0, seed)
    model = Strainer.from_layers(stacked, w0=w0, shared=0, backend=backend,
                                 precision=precision).to(dev)
    images = images.to(dev, torch.float32)
    h, w = render_size or images.shape[1:3]
    if reference is None and (h, w) == images.shape[1:3]:
        reference = images
    reference = None if reference is None else reference.to(dev, torch.float32)
    result = FitResult(model=model)

    def on_log(step: int, wall: float, out: torch.Tensor) -> None:
        recon = from_output(out, h, w)
        result.step.append(step)
        result.wall_s.append(wall)
        if reference is not None:
            result.psnr.append(psnr(recon, reference).tolist())
            result.ssim.append(ssim(recon, reference).tolist())
        result.recon = recon.cpu()

    def on_step(step: int, mse: torch.Tensor) -> None:
        # MSE on [-1, 1] values is 4x the MSE on [0, 1] pixels; a roll-back rewrites the tail.
        result.train_psnr[step - 1:] = [(10 * torch.log10(4 / mse)).tolist()]

    guard = guard or TrainGuard()
    guard.history.update(step=result.step, wall_s=result.wall_s, psnr=result.psnr,
                         ssim=result.ssim, train_psnr=result.train_psnr)
    train_loop(model, images, steps, lr, log_every=log_every or steps, on_log=on_log,
               progress=progress, desc=desc or f"fit {init}", operator=operator,
               render_size=(h, w), guard=guard, stabilize=stabilize, on_step=on_step,
               optimizer=_transfer_adam(model, init, init_weights, lr, transfer_lr))
    return result


def _transfer_adam(model: Strainer, init: str, init_weights: Layers | None, lr: float,
                   transfer_lr: tuple[float, float]) -> torch.optim.Adam | None:
    """Adam with the encoder / decoder learning-rate multipliers (None: plain Adam)."""
    if len(transfer_lr) != 2 or not all(math.isfinite(m) and m >= 0 for m in transfer_lr):
        raise ValueError(f"transfer_lr must be two finite multipliers >= 0, got {transfer_lr}")
    if tuple(transfer_lr) == (1.0, 1.0):
        return None
    if init != "strainer":
        raise ValueError(f"transfer_lr applies to init 'strainer' only, got init {init!r}")
    k = len(init_weights)  # the pretrained layers come first
    enc = [*model.dec_w[:k], *model.dec_b[:k]]
    dec = [*model.dec_w[k:], *model.dec_b[k:]]
    return torch.optim.Adam([{"params": enc, "lr": lr * transfer_lr[0]},
                             {"params": dec, "lr": lr * transfer_lr[1]}], lr=lr)


def fit(image: torch.Tensor, init: str = "siren", **kwargs) -> FitResult:
    """Fits one image [H, W, C] in [0, 1]; same arguments as ``fit_many``."""
    if image.dim() != 3:
        raise ValueError(f"image must be [H, W, C], got shape {tuple(image.shape)}")
    return fit_many(image[None], init, **kwargs)


def siren_ft_init(train_image: torch.Tensor, **kwargs) -> Layers:
    """"siren-ft" init: a random SIREN fitted to one other image [H, W, C]; returns all its
    layers. ``kwargs`` as for ``fit`` (e.g. steps, width, layers, seed)."""
    kwargs.setdefault("log_every", 0)
    result = fit(train_image, "siren", **kwargs)
    return result.model.network_layers(0)
