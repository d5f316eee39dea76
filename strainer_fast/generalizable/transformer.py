"""Patch tokenizer and a small pre-norm transformer encoder (the hypernetworks' reader).

Images [B, H, W, C] in [0, 1] become ``(H / patch) * (W / patch)`` tokens of width ``dim``
(one linear map of each flattened patch, values scaled to [-1, 1], plus a learned position
embedding); the transformer reads those tokens together with learned weight tokens and
returns the weight tokens' outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PatchTokenizer", "TokenTransformer"]


class PatchTokenizer(nn.Module):
    """images [B, size, size, C] in [0, 1] -> tokens [B, (size / patch)^2, dim]."""

    def __init__(self, size: int, patch: int, channels: int, dim: int) -> None:
        super().__init__()
        if patch < 1 or size % patch:
            raise ValueError(f"patch must divide the image size: size {size}, patch {patch}")
        self.size, self.patch, self.channels = size, patch, channels
        self.embed = nn.Linear(patch * patch * channels, dim)
        self.position = nn.Parameter(torch.randn((size // patch) ** 2, dim) * 0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or tuple(images.shape[1:]) != (self.size, self.size,
                                                             self.channels):
            raise ValueError(f"images must be [B, {self.size}, {self.size}, {self.channels}] "
                             f"(the model's size and channels), got {tuple(images.shape)}")
        x = images.permute(0, 3, 1, 2) * 2 - 1
        x = F.unfold(x, self.patch, stride=self.patch).transpose(1, 2)  # [B, L, C p p]
        return self.embed(x) + self.position


class TokenTransformer(nn.Module):
    """``depth`` pre-norm self-attention blocks (GELU MLP of width 2 * dim, no dropout) and a
    final LayerNorm over [B, T, dim] tokens; ``forward(data, extra)`` returns the outputs of
    the ``extra`` [T', dim] learned tokens, [B, T', dim]."""

    def __init__(self, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads must divide dim: dim {dim}, heads {heads}")
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim),
                                            enable_nested_tensor=False)

    def forward(self, data: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        tokens = torch.cat([data, extra.expand(data.shape[0], -1, -1)], dim=1)
        return self.blocks(tokens)[:, data.shape[1]:]
