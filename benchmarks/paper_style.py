"""A SIREN / STRAINER written the way the STRAINER authors' library writes it, as the
baseline of ``bench_time_to_quality.py``: eager PyTorch, one ``nn.Linear`` + sine module per
layer, the decoders in a Python list evaluated one after another, fp32, Adam.

Same function and init as ``strainer_fast`` (so both start from the same weights):
``h = sin(w0 * (W h + b))`` for every layer but the last, the last affine; weights and biases
are copied in from (weight [out, in], bias [out]) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SineLayer(nn.Module):
    """``sin(w0 * linear(x))``: x [N, in] -> [N, out]."""

    def __init__(self, in_features: int, out_features: int, w0: float) -> None:
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * self.linear(x))


class EagerStrainer(nn.Module):
    """Shared encoder (``nn.Sequential`` of sine layers) + one ``nn.Sequential`` decoder per
    signal (sine layers, then a linear last layer), looped over in Python.

    coords [N, in] -> [S, N, out]. Built from ``encoder`` pairs [out, in] and ``decoders``
    (one list of pairs per signal); an empty encoder gives S independent SIRENs.
    """

    def __init__(self, encoder: Sequence[tuple[torch.Tensor, torch.Tensor]],
                 decoders: Sequence[Sequence[tuple[torch.Tensor, torch.Tensor]]],
                 w0: float = 30.0) -> None:
        super().__init__()
        self.encoder = nn.Sequential(*[self._layer(w, b, w0, sine=True) for w, b in encoder])
        self.decoders = nn.ModuleList(
            nn.Sequential(*[self._layer(w, b, w0, sine=i < len(dec) - 1)
                            for i, (w, b) in enumerate(dec)])
            for dec in decoders)

    @staticmethod
    def _layer(w: torch.Tensor, b: torch.Tensor, w0: float, sine: bool) -> nn.Module:
        layer = SineLayer(w.shape[1], w.shape[0], w0) if sine else nn.Linear(w.shape[1],
                                                                             w.shape[0])
        lin = layer.linear if sine else layer
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        return layer

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(coords)
        return torch.stack([dec(feats) for dec in self.decoders])


class BatchedSiren(nn.Module):
    """K independent SIRENs as one batched eager model, the strongest plain-PyTorch way to fit
    K signals (no Python loop over signals): weights stacked [K, out, in], one ``baddbmm`` and
    one ``sin(w0 * .)`` per layer. The parameters are the unscaled weights, as in the library
    and ``EagerStrainer`` (folding w0 into them would change what an Adam step does).

    coords [N, in] -> [K, N, out]; built from ``networks`` (one list of (weight [out, in],
    bias [out]) pairs per signal, all of one shape), the same function and init as
    ``EagerStrainer`` with an empty encoder.
    """

    def __init__(self, networks: Sequence[Sequence[tuple[torch.Tensor, torch.Tensor]]],
                 w0: float = 30.0) -> None:
        super().__init__()
        self.w0 = w0
        depth = len(networks[0])
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([net[i][0] for net in networks])) for i in range(depth))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([net[i][1] for net in networks])[:, None, :])
            for i in range(depth))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        h = coords.expand(self.weights[0].shape[0], *coords.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w.transpose(1, 2))
            if i < last:
                h = torch.sin(self.w0 * h)
        return h
