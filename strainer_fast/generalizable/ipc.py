"""IPC, generalizable INRs via instance pattern composers (Kim et al., CVPR 2023), reduced
scale, on a sine-MLP hyponet. Written from the paper's description only.

One shared hyponet; only the weight of one early layer (``modulated``, default 1: the second
layer, the first hidden-to-hidden one) is instance-specific, factorised at rank ``rank``:

    W_n = sqrt(3 / rank) * U_n V,   U_n [out, rank] per image,   V [rank, in] shared

The transformer reads the image's patch tokens with ``rank`` learned weight tokens; token k's
output goes through LayerNorm + Linear to column k of U_n (the instance pattern composer).
V starts with SIREN's init of that layer and the factor sqrt(3 / rank) offsets the variance
of U_n's entries (about 1/3 after the head), so W_n starts at SIREN's scale. All other layers
and every bias are shared and learned (the pattern composition rules).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..models import Layers, init_layers
from .base import GeneralizableINR

__all__ = ["IPC"]


class IPC(GeneralizableINR):
    """IPC hypernetwork; ``rank``: rank of the modulated weight (= weight tokens);
    ``modulated``: index of the modulated layer (a sine layer). See the module doc."""

    kind = "ipc"

    def __init__(self, *, rank: int = 16, modulated: int = 1, **kwargs) -> None:
        self._rank, self._modulated = rank, modulated
        super().__init__(**kwargs)
        self.config.update(rank=rank, modulated=modulated)

    def build(self, generator: torch.Generator) -> None:
        dim, (rank, m) = self.config["dim"], (self._rank, self._modulated)
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        if not 0 <= m < len(self.sizes) - 1:
            raise ValueError(f"modulated must be a sine layer, 0..{len(self.sizes) - 2}, "
                             f"got {m}")
        fan_in, out = self.sizes[m]
        (v, _), = init_layers([(fan_in, rank)], self.config["w0"], generator, first_index=m)
        self.shared_v = nn.Parameter(v)  # [rank, in]
        self.base_w[m] = nn.Parameter(torch.empty(0))  # replaced by U_n V: no base weight
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, out))
        self.tokens = nn.Parameter(torch.randn(rank, dim, generator=generator))

    def weights(self, outputs: torch.Tensor) -> Layers:
        batch, m = outputs.shape[0], self._modulated
        u = self.head(outputs).transpose(1, 2)  # [B, out, rank]
        w_n = math.sqrt(3 / self._rank) * (u @ self.shared_v)
        return [(w_n if i == m else w.expand(batch, -1, -1), b.expand(batch, -1))
                for i, (w, b) in enumerate(zip(self.base_w, self.base_b))]
