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

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .data import coord_grid, from_output, to_target
from .metrics import psnr, ssim
from .models import Layers, Strainer, init_layers, layer_sizes, resolve_device

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
) -> None:
    """Adam on sum over signals of per-signal MSE, ``model`` on the images' device.

    images: [S, H, W, C] in [0, 1] with S = model.signals. ``on_log(step, wall_s, output)``
    is called at step 0 and every ``log_every`` steps (and at the last step) with the
    network output [S, H*W, C] in [-1, 1]. The bar shows the live training PSNR (mean, dB).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    s, h, w, _ = images.shape
    coords = coord_grid(h, w).to(images.device)
    target = to_target(images)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    wall = 0.0

    def log(step: int) -> None:
        if on_log is not None:
            with torch.no_grad():
                on_log(step, wall, model(coords))

    log(0)
    bar = tqdm(range(1, steps + 1), desc=desc, disable=not progress, leave=False,
               dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        mse = ((model(coords) - target) ** 2).mean(dim=(1, 2))
        mse.sum().backward()
        opt.step()
        if images.is_cuda:
            torch.cuda.synchronize()
        wall += time.perf_counter() - t0
        if progress and (step % 10 == 0 or step == steps):
            # MSE on [-1, 1] values is 4x the MSE on [0, 1] pixels.
            bar.set_postfix(psnr=f"{(10 * torch.log10(4 / mse.detach())).mean().item():.2f}")
        if log_every and (step % log_every == 0 or step == steps):
            log(step)
    bar.close()


def _stack(per_net: Sequence[Layers]) -> Layers:
    return [tuple(torch.stack([net[i][j] for net in per_net]) for j in (0, 1))
            for i in range(len(per_net[0]))]


def _initial_layers(init: str, k: int, channels: int, init_weights: Layers | None,
                    width: int, layers: int, w0: float, seed: int) -> Layers:
    """Stacked full-network layers [K, out, in] for K images."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "siren":
        sizes = layer_sizes(2, width, layers, channels)
        return _stack([init_layers(sizes, w0, torch.Generator().manual_seed(seed + i))
                       for i in range(k)])
    if init_weights is None:
        raise ValueError(f"init {init!r} needs init_weights (pretrained / meta-learned layers)")
    if init_weights[0][0].shape[-1] != 2:
        raise ValueError(f"init weights take {init_weights[0][0].shape[-1]} input features, not 2")
    if init in ("siren-ft", "meta"):
        if init_weights[-1][0].shape[0] != channels:
            raise ValueError(f"init weights output {init_weights[-1][0].shape[0]} channels "
                             f"but the images have {channels}")
        return _stack([init_weights] * k)
    shared = len(init_weights)
    if shared >= layers:
        raise ValueError(f"encoder has {shared} layers; layers must exceed that, got {layers}")
    enc_width = init_weights[-1][0].shape[0]
    sizes = layer_sizes(2, enc_width, layers, channels)[shared:]
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
) -> FitResult:
    """Fits K images [K, H, W, C] in [0, 1] with K independent networks at once.

    ``init_weights``: full-network (weight [out, in], bias [out]) pairs for "siren-ft" /
    "meta", the encoder pairs for "strainer" (``width`` then comes from them; ``layers``
    is the total depth). PSNR (dB) / SSIM / wall time are recorded every ``log_every``
    steps (0: only at the start and the end).
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
    h, w = images.shape[1:3]
    result = FitResult(model=model)

    def on_log(step: int, wall: float, out: torch.Tensor) -> None:
        recon = from_output(out, h, w)
        result.step.append(step)
        result.wall_s.append(wall)
        result.psnr.append(psnr(recon, images).tolist())
        result.ssim.append(ssim(recon, images).tolist())
        result.recon = recon.cpu()

    train_loop(model, images, steps, lr, log_every=log_every or steps, on_log=on_log,
               progress=progress, desc=desc or f"fit {init}")
    return result


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
