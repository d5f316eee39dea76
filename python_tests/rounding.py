"""float32 values rounded to the tensor cores' operand formats (for tests)."""

from __future__ import annotations

import torch


def round_tf32(t: torch.Tensor, truncate: bool = False) -> torch.Tensor:
    """float32 -> the nearest (or truncated) value with TF32's 10-bit mantissa."""
    i = t.contiguous().view(torch.int32)
    if not truncate:
        i = i + (0xFFF + ((i >> 13) & 1))
    return (i & -8192).view(torch.float32)


def round_bf16(t: torch.Tensor) -> torch.Tensor:
    """float32 -> the nearest bf16 value, as float32."""
    return t.bfloat16().float()


ROUND = {"tf32": round_tf32, "bf16": round_bf16}
