"""Fitting signals with INRs from different initialisations (all weights trained).

``fit_many`` trains K independent networks on K images in one batched forward per step
(``Strainer`` with ``shared=0``: every layer is a ``batched_sine_mlp`` layer), loss = sum
of per-image MSE, so each network gets exactly its own gradient; Adam is elementwise, so
the result equals K separate ``fit`` runs. Inits:

- ``"siren"``: random SIREN init, network k seeded with ``seed + k`` (``weight_scale``:
  alpha of weight scaling, see ``models``);
- ``"siren-ft"`` / ``"meta"``: the same given full-network weights for every image
  (see ``siren_ft_init`` and ``meta.meta_init``);
- an ``Encoder`` (or ``"strainer"`` with its layers): the pretrained encoder layers + a
  fresh decoder seeded ``seed + k`` (``weight_scale`` scales the fresh decoder's layers
  but its last: none when the decoder is one layer, as with ``shared = layers - 1``).

A fit returns, per network, the iterate with the lowest training loss (``keep="best"``,
the default; ``train.KeepBest``): the loss of the objective it trains on (an inverse
problem's data term, never the ``reference``), every step on the full grid, at the log
points on the full grid with point batches. ``keep="last"``: the last iterate.

``value_range`` (``value_range``): the range the pixels are mapped to for training; an
``Encoder`` pretrained under another range is refused, unset (None) takes the encoder's.
PSNR is on [0, 1] pixels either way.

Levers, off by default (``benchmarks/tune_transfer.py`` tried each on the validation split
on top of the STRAINER fast recipe; none gained enough to enter it): ``transfer_lr``
(per-part learning rates of a STRAINER init), ``freeze`` (fixed leading encoder layers,
``levers``), ``sampling="error"`` (error-guided point batches,
``train.objectives.image_error_points``) and ``precision_schedule`` (bf16, then exact:
``train.PrecisionSchedule``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, field
from typing import Any

import torch

from .data import coord_grid
from .levers import freeze_depth
from .memory import check_fits
from .metrics import psnr, ssim
from .models import Encoder, Layers, Strainer, init_layers, layer_sizes, resolve_device
from .recipes import apply_recipe
from .train import (Callback, Checkpointer, KeepBest, PrecisionSchedule, Stabilize, Trainer,
                    image_mse, train)
from .train.objectives import render
from .value_range import ValueRange, for_encoder

__all__ = ["INITS", "KEEP", "FitResult", "fit", "fit_many", "siren_ft_init", "initial_model",
           "resolve_net", "fit_callbacks", "make_keeper"]

INITS = ("siren", "siren-ft", "meta", "strainer")
KEEP = ("best", "last")  # which iterate a fit returns
DEFAULT_NET = dict(width=256, layers=6, w0=30.0)


@dataclass
class FitResult:
    """Training curves and the fitted networks.

    ``step``/``wall_s`` have one entry per log point (step 0 = the init); ``psnr`` (dB) and
    ``ssim`` are ``[log point][image]``: of the iterate at that step, except the last entry,
    which is of the returned ``model`` (with ``keep="best"``, per image the best iterate).
    ``wall_s`` is cumulative training time in seconds, metric evaluation excluded.
    ``recon``: the returned model's reconstructions [K, H, W, C] in [0, 1].
    ``train_psnr``: every step's training PSNR ``[step][image]`` (dB; the loss of the weights
    before that step's update). ``last_psnr``: PSNR (dB) of the last iterate per image
    (= ``psnr[-1]`` with ``keep="last"``; empty without metrics). ``best_step``: per image,
    the step (updates applied) of the returned weights (the last step with ``keep="last"``).
    """

    model: Strainer
    step: list[int] = field(default_factory=list)
    psnr: list[list[float]] = field(default_factory=list)
    ssim: list[list[float]] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    recon: torch.Tensor | None = None
    train_psnr: list[list[float]] = field(default_factory=list)
    last_psnr: list[float] = field(default_factory=list)
    best_step: list[int] = field(default_factory=list)

    def final_psnr(self) -> float:
        """Mean PSNR (dB) over the signals of the returned model (the last log point)."""
        return float(sum(self.psnr[-1]) / len(self.psnr[-1]))


def _stack(per_net: Sequence[Layers]) -> Layers:
    return [tuple(torch.stack([net[i][j] for net in per_net]) for j in (0, 1))
            for i in range(len(per_net[0]))]


def resolve_net(init: str | Encoder, init_weights: Layers | Encoder | None, width: int | None,
                layers: int | None, w0: float | None) -> tuple[str, Layers | None, dict]:
    """(init name, init layers, {width, layers, w0}). An ``Encoder`` (as ``init`` or
    ``init_weights``) gives the architecture; a value set here must agree with it."""
    if isinstance(init, Encoder):
        init, init_weights = "strainer", init
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS} or an Encoder, got {init!r}")
    if isinstance(init_weights, Encoder):
        if init != "strainer":
            raise ValueError(f"an Encoder initialises 'strainer' fits, not {init!r}")
        arch = init_weights.resolve(width=width, layers=layers, w0=w0)
        return init, init_weights.layers, dict(width=arch["width"], layers=arch["layers"],
                                               w0=arch["w0"])
    net = dict(width=width, layers=layers, w0=w0)
    return init, init_weights, {k: DEFAULT_NET[k] if v is None else v for k, v in net.items()}


def initial_model(init: str | Encoder, k: int, channels: int, *,
                  init_weights: Layers | Encoder | None = None, width: int | None = None,
                  layers: int | None = None, w0: float | None = None, seed: int = 0,
                  in_features: int = 2, backend: str = "auto", precision: str = "exact",
                  weight_scale: float = 1.0) -> Strainer:
    """K independent networks (``Strainer`` with ``shared=0``) of ``in_features``-D
    coordinates -> ``channels`` values, initialised by ``init`` (see the module doc)."""
    init, weights, net = resolve_net(init, init_weights, width, layers, w0)
    if init == "siren":
        sizes = layer_sizes(in_features, net["width"], net["layers"], channels)
        stacked = _stack([init_layers(sizes, net["w0"], torch.Generator().manual_seed(seed + i),
                                      weight_scale=weight_scale) for i in range(k)])
    else:
        if weights is None:
            raise ValueError(f"init {init!r} needs init_weights (pretrained / meta-learned "
                             "layers)")
        if weights[0][0].shape[-1] != in_features:
            raise ValueError(f"init weights take {weights[0][0].shape[-1]} input features, "
                             f"not {in_features}")
        if init in ("siren-ft", "meta"):
            if weight_scale != 1.0:
                raise ValueError(f"weight_scale applies to random inits (siren, a STRAINER "
                                 f"decoder), not to init {init!r}")
            if weights[-1][0].shape[0] != channels:
                raise ValueError(f"init weights output {weights[-1][0].shape[0]} channels "
                                 f"but the images have {channels}")
            stacked = _stack([weights] * k)
        else:
            shared = len(weights)
            if shared >= net["layers"]:
                raise ValueError(f"encoder has {shared} layers; layers must exceed that, got "
                                 f"{net['layers']}")
            sizes = layer_sizes(in_features, weights[-1][0].shape[0], net["layers"],
                                channels)[shared:]
            stacked = _stack([list(weights) + init_layers(
                sizes, net["w0"], torch.Generator().manual_seed(seed + i), first_index=shared,
                weight_scale=weight_scale) for i in range(k)])
    return Strainer.from_layers(stacked, w0=net["w0"], shared=0, backend=backend,
                                precision=precision)


class _Curves(Callback):
    """Records a ``FitResult``: metrics at the log points, training PSNR every step (kept
    on the device until the end: no host sync per step). With a ``keeper``, the last log
    point and ``recon`` are re-measured on the weights it returns; a keeper that does not
    score every step gets the full-grid training loss against ``images`` [K, H, W, C] at
    each log point."""

    order = 30
    key = "curves"

    def __init__(self, result: FitResult, render: torch.Tensor, size: tuple[int, int],
                 reference: torch.Tensor | None, value_range: ValueRange,
                 keeper: KeepBest | None = None, images: torch.Tensor | None = None) -> None:
        self.result, self.render, self.size, self.reference = result, render, size, reference
        self.value_range, self.keeper, self.images = value_range, keeper, images
        self.mse: torch.Tensor | None = None

    def begin(self, t: Trainer) -> None:
        if self.mse is None:
            self.mse = torch.zeros(t.steps, t.model.signals, device=self.render.device)

    def after_step(self, t: Trainer, mse: torch.Tensor) -> bool:
        self.mse[t.step - 1] = mse
        return False

    def _measure(self, t: Trainer) -> tuple[list[float], list[float]]:
        """(PSNR, SSIM) per signal of the current weights (empty without a reference);
        sets ``recon``; offers the full-grid loss to a keeper that wants it."""
        out = render(t.model, self.render)
        if self.keeper is not None and not self.keeper.per_step:
            target = self.value_range.to_target(self.images)
            self.keeper.offer(t.step, ((out - target) ** 2).mean(dim=(1, 2)))
        recon = self.value_range.to_pixels(out, *self.size)
        self.result.recon = recon.cpu()
        if self.reference is None:
            return [], []
        return psnr(recon, self.reference).tolist(), ssim(recon, self.reference).tolist()

    def log(self, t: Trainer) -> None:
        r = self.result
        r.step.append(t.step)
        r.wall_s.append(t.wall)
        p, s = self._measure(t)
        if self.reference is not None:
            r.psnr.append(p)
            r.ssim.append(s)

    def end(self, t: Trainer) -> None:
        r = self.result
        r.train_psnr = self.value_range.psnr(self.mse).tolist()
        r.last_psnr = list(r.psnr[-1]) if r.psnr else []
        r.best_step = ([t.step] * t.model.signals if self.keeper is None
                       else self.keeper.kept_step.tolist())
        if any(s != t.step for s in r.best_step):  # the keeper loaded earlier weights
            p, s = self._measure(t)
            if self.reference is not None:
                r.psnr[-1], r.ssim[-1] = p, s

    def state_dict(self) -> dict:
        r = self.result
        return {"step": r.step, "wall_s": r.wall_s, "psnr": r.psnr, "ssim": r.ssim,
                "train_mse": self.mse}

    def load_state_dict(self, state: dict) -> None:
        r = self.result
        r.step, r.wall_s, r.psnr, r.ssim = (state[k] for k in ("step", "wall_s", "psnr",
                                                                 "ssim"))
        self.mse = state["train_mse"].to(self.render.device)


def make_keeper(keep: str, per_step: bool = True) -> KeepBest | None:
    """The ``train.KeepBest`` of ``keep`` (one of ``KEEP``; None for "last")."""
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {KEEP}, got {keep!r}")
    return KeepBest(per_step=per_step) if keep == "best" else None


def fit_callbacks(result: FitResult, images: torch.Tensor, size: tuple[int, int],
                  reference: torch.Tensor | None, value_range: ValueRange, *,
                  stabilize: str = "off", keep: str = "best",
                  points: int | None = None) -> list[Callback]:
    """The callbacks of a fit of K networks to images [K, H, W, C] (on the device) whose
    render is ``size`` and targets are in ``value_range``: curves into ``result`` (metrics
    against ``reference``), the stabiliser, and with ``keep="best"`` a ``train.KeepBest``
    scoring every step's training loss (full grid) or, with ``points``, the full-grid loss
    at the log points (a random batch's loss is a noisy score; the log points' render is
    made anyway)."""
    keeper = make_keeper(keep, per_step=points is None)
    curves = _Curves(result, coord_grid(*size).to(images.device), size, reference, value_range,
                     keeper, images)
    return [curves, Stabilize(stabilize), *([keeper] if keeper else [])]


def fit_many(
    images: torch.Tensor,
    init: str | Encoder = "siren",
    *,
    init_weights: Layers | Encoder | None = None,
    width: int | None = None,
    layers: int | None = None,
    w0: float | None = None,
    steps: int = 2000,
    lr: float = 1e-4,
    log_every: int = 100,
    seed: int = 0,
    device: str = "auto",
    backend: str = "auto",
    precision: str = "exact",
    weight_scale: float = 1.0,
    progress: bool = True,
    desc: str | None = None,
    operator: Callable[[torch.Tensor], torch.Tensor] | None = None,
    render_size: tuple[int, int] | None = None,
    reference: torch.Tensor | None = None,
    checkpoint: Checkpointer | None = None,
    stabilize: str = "off",
    transfer_lr: tuple[float, float] = (1.0, 1.0),
    callbacks: Sequence[Callback] = (),
    points: int | None = None,
    keep: str = "best",
    value_range: str | ValueRange | None = None,
    recipe: str = "paper",
    freeze: int | str = 0,
    sampling: str = "uniform",
    precision_schedule: str | None = None,
) -> FitResult:
    """Fits K images [K, H, W, C] in [0, 1] with K independent networks at once.

    ``init``: "siren", "siren-ft" / "meta" (``init_weights``: full-network (weight
    [out, in], bias [out]) pairs), or a pretrained ``Encoder`` (STRAINER; also "strainer"
    with the encoder pairs as ``init_weights``). Architecture: an ``Encoder`` gives width,
    depth and w0 (a conflicting value given here is an error); otherwise width 256, 6
    layers, w0 30 unless given. ``weight_scale``: alpha of weight scaling for the random
    layers (module doc; 1 = the plain SIREN init). PSNR (dB) / SSIM / wall time are recorded every
    ``log_every`` steps (0: only at the start and the end).

    Inverse problems: ``images`` are observations, fitted through ``operator`` from a
    ``render_size`` render (see ``train.image_mse``); metrics then compare the render with
    ``reference`` [K, H', W', C] (default: ``images``; ``psnr``/``ssim`` stay empty when the
    render size differs and no reference is given). ``recon`` is the render.

    ``checkpoint``: training-state files / resume (``train.Checkpointer``); the curves are
    saved and restored with the state. ``stabilize``: test-time stabilisation mode
    (``stability.STABILIZE``; "off" is the paper's plain Adam). ``transfer_lr = (encoder,
    decoder)``: for a STRAINER init, Adam learning rates of the pretrained encoder layers
    and of the fresh decoder layers as multiples of ``lr`` (default (1, 1): the paper's
    protocol). ``callbacks``: more ``train.Callback`` s for the loop.

    ``points``: pixels per step, drawn at random from a generator seeded ``seed`` (memory
    bounded by ``points``, not by H x W; not with an ``operator``); None: the full grid. A
    configuration that cannot fit in memory raises ``memory.WontFit`` before anything is
    allocated; metrics and ``recon`` are rendered in chunks either way.

    ``keep``: "best" (default) returns per image the weights of the lowest training loss
    seen (every step's, or with ``points`` the full-grid loss at the log points, so
    ``log_every`` sets the candidates), the final weights included; "last" the last
    iterate. ``FitResult`` records both iterates' PSNR and the step of the returned one.

    ``value_range``: "signed" ([-1, 1]) or "unit" ([0, 1]) targets (``value_range``);
    None: the ``Encoder``'s, else the default; one that differs from the ``Encoder``'s is a
    ValueError. PSNR / SSIM / ``train_psnr`` are on [0, 1] pixels either way.

    ``recipe``: "paper" (default) runs with ``lr``, ``weight_scale`` and ``stabilize`` as
    given; "fast" sets all three to the values chosen on the validation split for a
    "siren" or STRAINER init (``recipes``; leave them at their defaults), e.g.
    ``fit_many(images, "siren", recipe="fast", steps=300)``. A schedule it picks spans
    ``steps``.

    Levers (off by default; none passed the validation grid of
    ``benchmarks/tune_transfer.py``): ``freeze``: for a STRAINER init, the number
    of leading pretrained encoder layers kept fixed (``requires_grad`` False, left out of
    Adam; the fused kernels still compute their weight gradients, the reference backend
    does not), or "auto": up to and including the encoder layer of highest weight stable
    rank (``levers``); 0 trains every layer. ``sampling`` (with ``points``): "uniform"
    (default) or "error": each image draws its pixels with probability proportional to its
    current per-pixel squared error plus a uniform floor, the error map refreshed from a
    full-grid render every ``train.objectives.ERROR_REFRESH_EVERY`` steps inside the
    measured training time (``train.objectives.image_error_points``); metrics stay on the
    full grid. ``precision_schedule``: "bf16-then-exact" trains in bf16 until the training
    PSNR gains less than 0.05 dB per step over 20 steps (checked every 10), then exact
    (``train.PrecisionSchedule``; exact only, with a warning, on a CPU without bf16); it
    needs ``precision="exact"`` and a compiled backend.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [K, H, W, C], got shape {tuple(images.shape)}")
    if log_every < 0:
        raise ValueError(f"log_every must be >= 0, got {log_every}")
    dev = resolve_device(device)
    encoder = next((e for e in (init, init_weights) if isinstance(e, Encoder)), None)
    vr = for_encoder(value_range) if encoder is None else for_encoder(
        value_range, encoder.value_range, f"encoder {encoder.meta.get('path', '(in memory)')}")
    name, weights, net = resolve_net(init, init_weights, width, layers, w0)
    frozen = freeze_depth(freeze, name, weights)
    schedule = None if precision_schedule is None else PrecisionSchedule(precision_schedule)
    if schedule is not None and (precision != "exact" or backend == "reference"):
        raise ValueError(f"precision_schedule sets the precision itself and needs a compiled "
                         f"backend (bf16): use precision='exact' and a backend other than "
                         f"'reference', got precision={precision!r}, backend={backend!r}")
    lr, weight_scale, stabilize = astuple(apply_recipe(
        recipe, name, lr=lr, weight_scale=weight_scale, stabilize=stabilize))
    h, w = render_size or images.shape[1:3]
    k = images.shape[0]
    check_fits(dev, f"fitting {k} image(s) of {h}x{w} px", signals=k, grid=h * w,
               channels=images.shape[-1], points=points, width=net["width"],
               layers=net["layers"])
    model = initial_model(name, k, images.shape[-1], init_weights=weights, seed=seed,
                          backend=backend, precision=precision, weight_scale=weight_scale,
                          **net).to(dev)
    opt = _transfer_adam(model, name, weights, lr, transfer_lr, frozen)
    images = images.to(dev, torch.float32)
    if reference is None and (h, w) == images.shape[1:3]:
        reference = images
    reference = None if reference is None else reference.to(dev, torch.float32)
    result = FitResult(model=model)
    cbs = [*fit_callbacks(result, images, (h, w), reference, vr, stabilize=stabilize,
                          keep=keep, points=points), *callbacks,
           *([schedule] if schedule is not None else [])]
    if checkpoint is not None:
        cbs.append(checkpoint)
    gen = None if points is None else torch.Generator().manual_seed(seed)
    train(model, image_mse(model, images, operator=operator, render_size=(h, w), points=points,
                           generator=gen, value_range=vr, sampling=sampling), steps,
          optimizer=opt, callbacks=cbs, log_every=log_every or steps, progress=progress,
          desc=desc or f"fit {name}", generator=gen, value_range=vr)
    return result


def _transfer_adam(model: Strainer, init: str, init_weights: Layers | None, lr: float,
                   transfer_lr: tuple[float, float], frozen: int = 0) -> torch.optim.Adam:
    """Adam at ``lr``, with the encoder / decoder multipliers for a STRAINER init; the first
    ``frozen`` layers are fixed (``requires_grad`` False, not in Adam)."""
    if len(transfer_lr) != 2 or not all(math.isfinite(m) and m >= 0 for m in transfer_lr):
        raise ValueError(f"transfer_lr must be two finite multipliers >= 0, got {transfer_lr}")
    for p in [*model.dec_w[:frozen], *model.dec_b[:frozen]]:
        p.requires_grad_(False)
    if tuple(transfer_lr) == (1.0, 1.0):
        return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    if init != "strainer":
        raise ValueError(f"transfer_lr applies to init 'strainer' only, got init {init!r}")
    k = len(init_weights)  # the pretrained layers come first
    enc = [*model.dec_w[frozen:k], *model.dec_b[frozen:k]]
    dec = [*model.dec_w[k:], *model.dec_b[k:]]
    return torch.optim.Adam([{"params": ps, "lr": lr * m} for ps, m in
                             ((enc, transfer_lr[0]), (dec, transfer_lr[1])) if ps], lr=lr)


def fit(image: torch.Tensor, init: str | Encoder = "siren", **kwargs: Any) -> FitResult:
    """Fits one image [H, W, C] in [0, 1]; same arguments as ``fit_many``."""
    if image.dim() != 3:
        raise ValueError(f"image must be [H, W, C], got shape {tuple(image.shape)}")
    return fit_many(image[None], init, **kwargs)


def siren_ft_init(train_image: torch.Tensor, **kwargs: Any) -> Layers:
    """"siren-ft" init: a random SIREN fitted to one other image [H, W, C]; returns all its
    layers. ``kwargs`` as for ``fit`` (e.g. steps, width, layers, seed)."""
    kwargs.setdefault("log_every", 0)
    result = fit(train_image, "siren", **kwargs)
    return result.model.network_layers(0)
