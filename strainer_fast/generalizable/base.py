"""What TransINR and IPC share: a transformer that reads an image and predicts the weights
of a sine-MLP hyponet, which renders the image on the fused ops.

A model maps images [B, H, W, C] in [0, 1] to per-image hyponet layers (weight
[B, out, in], bias [B, out]) of the library's SIREN shape (2 -> ``layers - 1`` sine layers
of ``width`` -> C, ``w0``); ``render`` evaluates them with ``batched_sine_mlp`` at
coordinates [N, 2] in [-1, 1], giving values [B, N, C] in the model's value range
(``config["value_range"]``, see ``value_range``: "signed" [-1, 1] or "unit" [0, 1]). Those
layers are also the starting point of test-time optimisation (``tto.fit_generalizable``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import Layers, init_layers, layer_sizes
from ..ops import batched_sine_mlp
from ..value_range import DEFAULT_VALUE_RANGE, resolve
from .transformer import PatchTokenizer, TokenTransformer

__all__ = ["GeneralizableINR"]


class GeneralizableINR(nn.Module):
    """Base class; subclasses set ``kind``, create ``self.tokens`` (learned weight tokens
    [T, dim]) and implement ``weights(outputs) -> Layers`` from the tokens' outputs
    [B, T, dim].

    ``base``: the hyponet's own SIREN-initialised layers (``base_w[l]`` [out, in],
    ``base_b[l]`` [out]), seeded by ``seed`` like every other parameter (the global RNG is
    not touched). ``value_range``: the range of the pixel values it is trained to render.
    """

    kind = ""

    def __init__(self, *, size: int, channels: int = 1, width: int = 64, layers: int = 6,
                 w0: float = 30.0, dim: int = 128, depth: int = 4, heads: int = 4,
                 patch: int = 8, seed: int = 0, backend: str = "auto",
                 precision: str = "exact", value_range: str = DEFAULT_VALUE_RANGE) -> None:
        super().__init__()
        for name, v in dict(size=size, channels=channels, width=width, dim=dim, depth=depth,
                            heads=heads, patch=patch).items():
            if int(v) < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if layers < 2:
            raise ValueError(f"layers must be >= 2 (a hyponet has sine layers), got {layers}")
        self.config = dict(size=size, channels=channels, width=width, layers=layers,
                           w0=float(w0), dim=dim, depth=depth, heads=heads, patch=patch,
                           value_range=resolve(value_range).name)
        self.backend, self.precision = backend, precision
        self.sizes = layer_sizes(2, width, layers, channels)
        g = torch.Generator().manual_seed(seed)
        base = init_layers(self.sizes, w0, g)
        self.base_w = nn.ParameterList([nn.Parameter(w) for w, _ in base])
        self.base_b = nn.ParameterList([nn.Parameter(b) for _, b in base])
        with torch.random.fork_rng(devices=[]):  # nn.Linear draws from the global RNG
            torch.manual_seed(seed)
            self.tokenizer = PatchTokenizer(size, patch, channels, dim)
            self.transformer = TokenTransformer(dim, depth, heads)
            self.build(g)

    def build(self, generator: torch.Generator) -> None:
        """Creates the subclass's weight tokens and output heads."""
        raise NotImplementedError

    def weights(self, outputs: torch.Tensor) -> Layers:
        """Per-image hyponet layers from the weight tokens' outputs [B, T, dim]."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> Layers:
        """images [B, size, size, C] in [0, 1] -> per-image layers (weight [B, out, in],
        bias [B, out])."""
        return self.weights(self.transformer(self.tokenizer(images), self.tokens))

    def render(self, layers: Layers, coords: torch.Tensor) -> torch.Tensor:
        """Values [B, N, C] (in the model's value range) of the per-image hyponets at coords
        [N, 2]."""
        return batched_sine_mlp(coords, [w for w, _ in layers], [b for _, b in layers],
                                self.config["w0"], last_linear=True, backend=self.backend,
                                precision=self.precision)
