"""SIREN and STRAINER networks on the fused sine-MLP ops.

Both map coordinates [N, in_features] in [-1, 1] to values [.., N, out_features]; every
layer but the last is ``sin(w0 * (h W^T + b))``, the last is affine. Parameters use the
SIREN init: first layer U(-1/in, 1/in), later layers U(-sqrt(6/in)/w0, sqrt(6/in)/w0),
biases U(-1/sqrt(in), 1/sqrt(in)) (the ``nn.Linear`` default).

``weight_scale`` (alpha, default 1): weight scaling (Yeom et al., ICLR 2025, "Fast Training
of Sinusoidal Neural Fields via Scaling Initialization"): after the SIREN draw, the weight
matrix of every layer except the network's last (the first layer included) is multiplied by
alpha; biases and the last layer keep the SIREN init. alpha = 1 is the plain SIREN init, bit
for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .ops import batched_sine_mlp, sine_mlp
from .value_range import recorded

__all__ = ["Siren", "Strainer", "Encoder", "init_layers", "layer_sizes", "resolve_device"]

Layers = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Encoder:
    """A pretrained STRAINER encoder: its shared layers ((weight [out, in], bias [out])
    pairs) and the architecture they come from (``depth`` layers in all, ``w0``).

    Pass it to ``fit`` / ``fit_many`` / the tasks as ``init``: a new network then starts
    from these layers plus a fresh decoder. ``meta``: what the checkpoint says about its
    pretraining (e.g. ``size`` [H, W], ``signals``, ``steps``, ``value_range``).
    """

    layers: Layers
    depth: int
    w0: float
    out_features: int = 1
    meta: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        """Hidden width: the output size of the last shared layer."""
        return self.layers[-1][0].shape[0]

    @property
    def shared(self) -> int:
        """Number of shared (encoder) layers."""
        return len(self.layers)

    @property
    def in_features(self) -> int:
        """Coordinate dimension: 2 for images, 3 for occupancy."""
        return self.layers[0][0].shape[-1]

    @property
    def value_range(self) -> str:
        """The value range it was pretrained under (``value_range``; metadata without one,
        e.g. an older checkpoint: ``LEGACY_VALUE_RANGE``)."""
        return recorded(self.meta)

    def architecture(self) -> dict:
        """{width, layers, shared, w0} of the networks this encoder belongs to."""
        return dict(width=self.width, layers=self.depth, shared=self.shared, w0=self.w0)

    def resolve(self, **requested: object) -> dict:
        """The architecture, checked against ``requested`` values (None: take the
        encoder's); a conflict raises ValueError naming each key."""
        arch = self.architecture()
        bad = [f"{k}={arch[k]!r} in checkpoint but {v!r} requested"
               for k, v in requested.items() if v is not None and k in arch and arch[k] != v]
        if bad:
            raise ValueError("encoder architecture conflict: " + "; ".join(bad)
                             + " (leave these unset to use the encoder's)")
        return arch


def layer_sizes(
    in_features: int, width: int, layers: int, out_features: int
) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of each of the ``layers`` layers."""
    if layers < 1 or width < 1 or in_features < 1 or out_features < 1:
        raise ValueError("layers, width, in_features and out_features must all be >= 1")
    dims = [in_features] + [width] * (layers - 1) + [out_features]
    return list(zip(dims[:-1], dims[1:]))


def init_layers(
    sizes: Sequence[tuple[int, int]],
    w0: float,
    generator: torch.Generator,
    *,
    first_index: int = 0,
    batch: int | None = None,
    weight_scale: float = 1.0,
    depth: int | None = None,
) -> Layers:
    """SIREN-initialised (weight [.., out, in], bias [.., out]) pairs, float32, CPU.

    ``first_index`` is the depth of ``sizes[0]`` in the whole network (layer 0 gets the
    first-layer init); ``batch`` prepends a dimension of that many independent draws.
    ``weight_scale``: alpha of weight scaling (module doc), applied to every weight but the
    one of the network's last layer, at index ``depth - 1`` (``depth``: layers in the whole
    network; default ``first_index + len(sizes)``, i.e. ``sizes`` ends with the last layer).
    """
    if not (math.isfinite(weight_scale) and weight_scale > 0):
        raise ValueError(f"weight_scale must be a finite number > 0, got {weight_scale}")
    last = (first_index + len(sizes) if depth is None else depth) - 1
    prefix = () if batch is None else (batch,)
    out: Layers = []
    for index, (fan_in, fan_out) in enumerate(sizes, start=first_index):
        bound = 1.0 / fan_in if index == 0 else math.sqrt(6.0 / fan_in) / w0
        w = (torch.rand(*prefix, fan_out, fan_in, generator=generator) * 2 - 1) * bound
        b = (torch.rand(*prefix, fan_out, generator=generator) * 2 - 1) / math.sqrt(fan_in)
        if weight_scale != 1.0 and index < last:
            w = w * weight_scale
        out.append((w, b))
    return out


class Siren(nn.Module):
    """One SIREN: coords [N, in_features] -> [N, out_features] (last layer linear);
    ``weight_scale``: alpha of weight scaling (module doc)."""

    def __init__(
        self,
        in_features: int = 2,
        out_features: int = 1,
        width: int = 256,
        layers: int = 6,
        w0: float = 30.0,
        *,
        seed: int = 0,
        backend: str = "auto",
        precision: str = "exact",
        weight_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.config = dict(in_features=in_features, out_features=out_features, width=width,
                           layers=layers, w0=float(w0))
        self.backend, self.precision = backend, precision
        g = torch.Generator().manual_seed(seed)
        params = init_layers(layer_sizes(in_features, width, layers, out_features), w0, g,
                             weight_scale=weight_scale)
        self.weights = nn.ParameterList([nn.Parameter(w) for w, _ in params])
        self.biases = nn.ParameterList([nn.Parameter(b) for _, b in params])

    def layers(self) -> Layers:
        """The (weight [out, in], bias [out]) pairs, detached copies."""
        return [(w.detach().clone(), b.detach().clone()) for w, b in zip(self.weights, self.biases)]

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return sine_mlp(coords, list(self.weights), list(self.biases), self.config["w0"],
                        last_linear=True, backend=self.backend, precision=self.precision)


class Strainer(nn.Module):
    """Shared encoder (``shared`` sine layers) + ``signals`` decoders (remaining layers).

    coords [N, in_features] -> [signals, N, out_features]. The encoder runs once per
    forward; the decoders run as one ``batched_sine_mlp`` call on the shared features
    (parameters [signals, out, in]). With ``shared=0`` this is ``signals`` independent
    SIRENs evaluated in one batched call. ``weight_scale``: alpha of weight scaling (module
    doc) for the encoder and every decoder layer but the last. ``layers`` counts every layer
    (sine layers + the linear last one); ``seed`` fixes the SIREN init draw.
    ``value_range``: the range of the targets it was trained on, set by ``pretrain`` /
    ``load_strainer`` (None: unknown) and passed on by ``encoder()``.

    Example: ``Strainer(10, width=64, layers=4, shared=3)(coords)``: coords [N, 2] -> [10, N, 1].
    """

    value_range: str | None = None

    def __init__(
        self,
        signals: int,
        in_features: int = 2,
        out_features: int = 1,
        width: int = 256,
        layers: int = 6,
        shared: int = 5,
        w0: float = 30.0,
        *,
        seed: int = 0,
        backend: str = "auto",
        precision: str = "exact",
        weight_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0 <= shared < layers:
            raise ValueError(f"shared must be in [0, layers - 1] = [0, {layers - 1}], got {shared}")
        if signals < 1:
            raise ValueError(f"signals must be >= 1, got {signals}")
        self.config = dict(in_features=in_features, out_features=out_features, width=width,
                           layers=layers, shared=shared, w0=float(w0))
        self.backend, self.precision = backend, precision
        sizes = layer_sizes(in_features, width, layers, out_features)
        g = torch.Generator().manual_seed(seed)
        enc = init_layers(sizes[:shared], w0, g, weight_scale=weight_scale, depth=layers)
        dec = init_layers(sizes[shared:], w0, g, first_index=shared, batch=signals,
                          weight_scale=weight_scale)
        self.enc_w = nn.ParameterList([nn.Parameter(w) for w, _ in enc])
        self.enc_b = nn.ParameterList([nn.Parameter(b) for _, b in enc])
        self.dec_w = nn.ParameterList([nn.Parameter(w) for w, _ in dec])
        self.dec_b = nn.ParameterList([nn.Parameter(b) for _, b in dec])

    @classmethod
    def from_layers(cls, layers: Layers, *, w0: float, shared: int = 0, backend: str = "auto",
                    precision: str = "exact") -> Strainer:
        """Builds a model from given (weight, bias) pairs: the first ``shared`` are the
        encoder ([out, in]), the rest the decoders ([S, out, in])."""
        enc, dec = layers[:shared], layers[shared:]
        if not dec or any(w.dim() != 3 for w, _ in dec) or any(w.dim() != 2 for w, _ in enc):
            raise ValueError("from_layers: encoder weights must be [out, in], decoder [S, out, in]")
        width = layers[0][0].shape[-2] if len(layers) > 1 else 1
        model = cls(dec[0][0].shape[0], in_features=layers[0][0].shape[-1],
                    out_features=layers[-1][0].shape[-2], width=width,
                    layers=len(layers), shared=shared, w0=w0, backend=backend, precision=precision)
        with torch.no_grad():
            for pw, pb, (w, b) in zip([*model.enc_w, *model.dec_w], [*model.enc_b, *model.dec_b],
                                      [*enc, *dec]):
                pw.copy_(w)
                pb.copy_(b)
        return model

    @property
    def signals(self) -> int:
        """Number of decoders (one per pretraining signal)."""
        return self.dec_w[0].shape[0]

    def encoder_layers(self) -> Layers:
        """The shared encoder's (weight [out, in], bias [out]) pairs, detached copies."""
        return [(w.detach().clone(), b.detach().clone()) for w, b in zip(self.enc_w, self.enc_b)]

    def encoder(self, **meta: object) -> Encoder:
        """The shared encoder (detached copies) with this model's architecture; ``meta``
        (default ``value_range``: the model's, when known)."""
        if self.value_range is not None:
            meta = {"value_range": self.value_range, **meta}
        return Encoder(self.encoder_layers(), self.config["layers"], self.config["w0"],
                       self.config["out_features"], dict(meta))

    def network_layers(self, index: int) -> Layers:
        """All layers of signal ``index``'s network (encoder + its decoder), detached."""
        dec = [(w[index].detach().clone(), b[index].detach().clone())
               for w, b in zip(self.dec_w, self.dec_b)]
        return self.encoder_layers() + dec

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Coordinates [N, in_features] in [-1, 1] -> outputs [signals, N, out_features]."""
        w0 = self.config["w0"]
        h = coords
        if len(self.enc_w):
            h = sine_mlp(coords, list(self.enc_w), list(self.enc_b), w0, last_linear=False,
                         backend=self.backend, precision=self.precision)
        return batched_sine_mlp(h, list(self.dec_w), list(self.dec_b), w0, last_linear=True,
                                backend=self.backend, precision=self.precision)


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> cuda if available else cpu; "cpu"/"cuda" checked for availability."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available")
    return torch.device(device)
