"""Encoder freezing for fits from a transferred (STRAINER) init: how many pretrained layers
stay fixed (``fit_many(freeze=...)``, ``strainer-fast fit --freeze``). Off by default: on the
validation split (``benchmarks/tune_transfer.py``) no depth beat training every layer.

``freeze=N``: the first N encoder layers keep their pretrained weights (their parameters get
``requires_grad`` False and are left out of Adam). ``freeze="auto"``: N = 1 + the index of the
encoder layer whose weight has the highest stable rank (``stable_rank``), i.e. frozen up to
and including that layer, the rule of "What Cohort INRs Encode and Where to Freeze Them"
(arXiv 2605.08298).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

__all__ = ["FREEZE_AUTO", "stable_rank", "freeze_depth", "parse_freeze"]

FREEZE_AUTO = "auto"


def stable_rank(weight: torch.Tensor) -> torch.Tensor:
    """Stable rank ``||W||_F^2 / ||W||_2^2`` of weights [.., out, in] (the squared singular
    values' sum over the largest one; between 1 and the rank); returns [..]; 0 for a zero
    matrix."""
    if weight.dim() < 2:
        raise ValueError(f"weight must be [.., out, in], got shape {tuple(weight.shape)}")
    w = weight.detach().double()
    spectral = torch.linalg.matrix_norm(w, ord=2) ** 2
    return (w ** 2).sum((-2, -1)) / spectral.clamp_min(torch.finfo(w.dtype).tiny)


def freeze_depth(freeze: int | str, init: str,
                 encoder: Sequence[tuple[torch.Tensor, torch.Tensor]] | None) -> int:
    """The number of leading layers a fit from ``init`` keeps fixed: ``freeze`` (an int in
    [0, encoder layers], or ``"auto"``: 1 + argmax of the encoder weights' ``stable_rank``);
    ``encoder``: the pretrained (weight [out, in], bias [out]) pairs. Anything but 0 needs a
    STRAINER init."""
    auto = freeze == FREEZE_AUTO
    if not auto and (isinstance(freeze, bool) or not isinstance(freeze, int) or freeze < 0):
        raise ValueError(f"freeze must be an int >= 0 or {FREEZE_AUTO!r}, got {freeze!r}")
    if freeze == 0:
        return 0
    if init != "strainer" or not encoder:
        raise ValueError(f"freeze applies to a STRAINER init (pretrained encoder layers), "
                         f"not init {init!r}")
    if auto:
        return 1 + int(torch.stack([stable_rank(w) for w, _ in encoder]).argmax())
    if freeze > len(encoder):
        raise ValueError(f"freeze={freeze} but the encoder has {len(encoder)} layers")
    return freeze


def parse_freeze(text: str) -> int | str:
    """``--freeze`` value: "auto" or a whole number >= 0 (argparse ``type``)."""
    if text == FREEZE_AUTO:
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of layers >= 0 or "
                                         f"{FREEZE_AUTO!r}, got {text!r}")
    return value
