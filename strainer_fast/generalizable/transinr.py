"""TransINR (Chen and Wang, ECCV 2022), reduced scale, on a sine-MLP hyponet.

Written from the paper's description (weight tokens; grouped, normalised modulation of the
base weights); the structure was checked against the authors' BSD-3 code, none of it
copied. Every hyponet layer l has ``g_l = min(groups, out_l)`` learned weight tokens.
The transformer's output for token k of layer l goes through LayerNorm + Linear to a vector
m_k [in_l]; output unit j of layer l (one row of W_l [out, in]) belongs to group
k = j // (out_l / g_l) and gets the weight row

    W'_j = ||W_j|| * (W_j * m_k) / ||W_j * m_k||

of the learned base layer W_l: the modulation picks the row's direction, the base row keeps
its norm (the paper normalises rows to unit norm; keeping the SIREN-initialised norm keeps
each sine layer's frequency scale at w0 = 30). Biases are the base biases, shared.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import Layers
from .base import GeneralizableINR

__all__ = ["TransINR"]


class TransINR(GeneralizableINR):
    """TransINR hypernetwork; ``groups``: weight tokens per layer (at most; must divide each
    layer's width). See the module doc."""

    kind = "transinr"

    def __init__(self, *, groups: int = 8, **kwargs) -> None:
        self._groups = groups
        super().__init__(**kwargs)
        self.config["groups"] = groups

    def build(self, generator: torch.Generator) -> None:
        dim = self.config["dim"]
        if self._groups < 1:
            raise ValueError(f"groups must be >= 1, got {self._groups}")
        self.group_counts = [min(self._groups, out) for _, out in self.sizes]
        bad = [out for (_, out), g in zip(self.sizes, self.group_counts) if out % g]
        if bad:
            raise ValueError(f"groups={self._groups} must divide every layer's width "
                             f"(got widths {sorted(set(bad))})")
        self.heads = nn.ModuleList([nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, fan_in))
                                    for fan_in, _ in self.sizes])
        self.tokens = nn.Parameter(torch.randn(sum(self.group_counts), dim,
                                               generator=generator))

    def weights(self, outputs: torch.Tensor) -> Layers:
        layers, start = [], 0
        for head, w, b, g in zip(self.heads, self.base_w, self.base_b, self.group_counts):
            m = head(outputs[:, start:start + g])  # [B, g, in]
            start += g
            m = m.repeat_interleave(w.shape[0] // g, dim=1)  # [B, out, in]
            mod = w * m
            scale = w.norm(dim=1, keepdim=True) / mod.norm(dim=2, keepdim=True).clamp_min(1e-12)
            layers.append((mod * scale, b.expand(outputs.shape[0], -1)))
        return layers
