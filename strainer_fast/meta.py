"""Meta-learned SIREN initialisations (MAML, first-order MAML and Reptile).

Each outer step adapts a copy of the meta weights to every training image at once (one
batched network, ``torch.func.functional_call`` with the task weights) with
``inner_steps`` SGD steps, then updates the meta weights with Adam on

- ``"maml"``: the gradient of the mean post-adaptation task loss, differentiated through
  the inner SGD steps (second order);
- ``"fomaml"``: the mean over tasks of the loss gradient at the adapted weights;
- ``"reptile"``: the mean over tasks of (meta weights - adapted weights).

The fused ops are first-order only, so ``"maml"`` runs its task network on the
plain-PyTorch reference ops (``backend="reference"``), whose backward is differentiable;
the first-order methods use the fused ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.func import functional_call

from .memory import check_fits
from .models import Layers, Strainer, resolve_device
from .train import Callback, train
from .train.objectives import image_batches
from .value_range import DEFAULT_VALUE_RANGE, ValueRange, resolve

__all__ = ["META_METHODS", "meta_init"]

META_METHODS = ("maml", "fomaml", "reptile")


def meta_init(
    images: torch.Tensor,
    method: str = "fomaml",
    *,
    width: int = 256,
    layers: int = 6,
    w0: float = 30.0,
    steps: int = 5000,
    inner_steps: int = 3,
    inner_lr: float = 1e-2,
    lr: float = 1e-4,
    seed: int = 0,
    device: str = "auto",
    backend: str = "auto",
    precision: str = "exact",
    progress: bool = True,
    points: int | None = None,
    value_range: str | ValueRange = DEFAULT_VALUE_RANGE,
    callbacks: Sequence[Callback] = (),
) -> Layers:
    """Meta-learns SIREN weights on training images [S, H, W, C] in [0, 1].

    ``steps`` outer steps (the STRAINER pretraining budget), each over all S images, run
    by the training engine; inner loop: SGD with ``inner_lr`` on per-image MSE; outer: Adam
    with ``lr``. ``points`` N: each outer step (its inner steps and its meta gradient) fits
    the same N random pixels, drawn from a generator seeded ``seed``; None: the full grid.
    ``value_range``: the range the pixels are mapped to (``value_range``; fit from the
    result in the same range). ``callbacks``: more ``train.Callback`` s for the outer loop
    (its ``t.step`` counts outer steps; ``t.model.network_layers(0)``: the meta weights),
    e.g. snapshots of the meta weights on the way. A configuration that cannot fit in memory
    raises ``memory.WontFit`` up front.
    Returns the (weight [out, in], bias [out]) pairs of the meta-learned network.
    """
    if method not in META_METHODS:
        raise ValueError(f"meta method must be one of {META_METHODS}, got {method!r}")
    if images.dim() != 4:
        raise ValueError(f"images must be [S, H, W, C], got shape {tuple(images.shape)}")
    dev = resolve_device(device)
    s, h, w, c = images.shape
    check_fits(dev, f"meta-learning on {s} image(s) of {h}x{w} px", signals=s, grid=h * w,
               channels=c, points=points, width=width, layers=layers)
    # Network 0 of this model holds the meta weights; `tasks` evaluates S adapted copies.
    meta_net = Strainer(1, out_features=c, width=width, layers=layers, shared=0, w0=w0,
                        seed=seed, backend=backend, precision=precision).to(dev)
    second_order = method == "maml"
    tasks = Strainer(s, out_features=c, width=width, layers=layers, shared=0, w0=w0,
                     backend="reference" if second_order else backend,
                     precision=precision).to(dev)
    names = [n for n, _ in tasks.named_parameters()]
    meta = list(meta_net.parameters())
    vr = resolve(value_range)
    batch = image_batches(images.to(dev, torch.float32), points,
                          torch.Generator().manual_seed(seed), vr)

    def objective(step: int) -> torch.Tensor:
        """Adapts, sets the meta gradients, returns the adapted per-task MSE [S]."""
        coords, target = batch(step)

        def task_mse(params: list[torch.Tensor]) -> torch.Tensor:
            out = functional_call(tasks, dict(zip(names, params)), (coords,))
            return ((out - target) ** 2).mean(dim=(1, 2))

        if second_order:  # keep the graph from the meta weights through the inner steps
            fast = [p.expand(s, *p.shape[1:]) for p in meta]
        else:
            fast = [p.detach().expand(s, *p.shape[1:]).clone().requires_grad_() for p in meta]
        for _ in range(inner_steps):
            grads = torch.autograd.grad(task_mse(fast).sum(), fast, create_graph=second_order)
            fast = [p - inner_lr * g for p, g in zip(fast, grads)]
            if not second_order:
                fast = [p.detach().requires_grad_() for p in fast]
        if second_order:
            mse = task_mse(fast)
            meta_grads = torch.autograd.grad(mse.sum() / s, meta)
        elif method == "fomaml":
            mse = task_mse(fast)
            grads = torch.autograd.grad(mse.sum(), fast)
            meta_grads = [g.mean(0, keepdim=True) for g in grads]
        else:
            with torch.no_grad():
                mse = task_mse(fast)
            meta_grads = [(m.detach() - f.detach()).mean(0, keepdim=True)
                          for m, f in zip(meta, fast)]
        for p, g in zip(meta, meta_grads):
            p.grad = g
        return mse.detach()

    train(meta_net, objective, steps, lr=lr, callbacks=callbacks, progress=progress,
          desc=f"meta {method}", value_range=vr)
    return meta_net.network_layers(0)
