"""The value range of the training targets: the one place where pixels in [0, 1] become the
values a network is fitted to, its outputs become pixels again, and a training MSE becomes a
PSNR.

Two ranges (``VALUE_RANGES``, the ``--value-range`` flag):

- ``"signed"``: targets in [-1, 1] (target = 2 * pixel - 1), SIREN's convention;
- ``"unit"``: targets in [0, 1], the pixels as loaded, the STRAINER authors' protocol.

PSNR is always on [0, 1] pixels: a training MSE on targets of range width ``w`` is ``w**2``
times the MSE on pixels, so PSNR = 10 log10(w**2 / MSE) (factor 4 for "signed", 1 for
"unit").

``DEFAULT_VALUE_RANGE`` ("signed") is the library's behaviour before the setting existed,
kept for now; it was NOT chosen on validation images (choosing the default on the
validation split is a later step). ``LEGACY_VALUE_RANGE`` ("signed") is what checkpoints
saved before the setting existed were trained under; it stays "signed" whatever the default
becomes.

An encoder (or a TransINR / IPC model) pretrained under one range is refused for a fit
under the other (``check_same``): its features were trained to produce the other range's
values. A fit whose range is left unset (None) takes the encoder's (``for_encoder``).

Occupancy (``tasks.occupancy``) does not use this setting: its targets are labels
(inside 1, outside -1), not pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ValueRange", "VALUE_RANGES", "DEFAULT_VALUE_RANGE", "LEGACY_VALUE_RANGE",
           "resolve", "recorded", "for_encoder", "check_same", "range_fingerprint"]


@dataclass(frozen=True)
class ValueRange:
    """Targets ``low + (high - low) * pixel`` for pixels in [0, 1]."""

    name: str
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def __str__(self) -> str:
        return f"{self.name} [{self.low:g}, {self.high:g}]"

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels (any shape, nominally in [0, 1]) -> targets, elementwise, unclamped."""
        return pixels * self.width + self.low

    def to_target(self, images: torch.Tensor) -> torch.Tensor:
        """Images [S, H, W, C] in [0, 1] -> training targets [S, H * W, C]."""
        s, h, w, c = images.shape
        return self.encode(images).reshape(s, h * w, c)

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """Network outputs (any shape) -> pixels clamped to [0, 1], elementwise."""
        return ((out - self.low) / self.width).clamp(0, 1)

    def to_pixels(self, out: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Network output [S, H * W, C] -> images [S, H, W, C] clamped to [0, 1]."""
        return self.decode(out).reshape(out.shape[0], height, width, out.shape[-1])

    def psnr(self, mse: torch.Tensor) -> torch.Tensor:
        """PSNR (dB) on [0, 1] pixels of a training MSE on targets (any shape, elementwise;
        the pixels' PSNR before clamping)."""
        return 10 * torch.log10(self.width ** 2 / mse)


_RANGES = {"signed": ValueRange("signed", -1.0, 1.0), "unit": ValueRange("unit", 0.0, 1.0)}
VALUE_RANGES = tuple(_RANGES)
DEFAULT_VALUE_RANGE = "signed"  # the historical behaviour, not yet chosen on validation data
LEGACY_VALUE_RANGE = "signed"  # checkpoints without the field were trained under it


def resolve(value_range: str | ValueRange) -> ValueRange:
    """The ``ValueRange`` of a name in ``VALUE_RANGES`` (a ``ValueRange`` passes through)."""
    if isinstance(value_range, ValueRange):
        return value_range
    if value_range not in _RANGES:
        raise ValueError(f"value range must be one of {', '.join(VALUE_RANGES)} "
                         f"(signed = [-1, 1], unit = [0, 1]), got {value_range!r}")
    return _RANGES[value_range]


def recorded(saved: dict) -> str:
    """The value range recorded in a checkpoint's metadata or config ``saved`` (its
    ``"value_range"``); ``LEGACY_VALUE_RANGE`` when it has none (saved before the setting
    existed)."""
    return saved.get("value_range") or LEGACY_VALUE_RANGE


def range_fingerprint(value_range: str | ValueRange) -> dict:
    """The entry of a value range in a resume fingerprint (``train.Checkpointer``): none for
    ``LEGACY_VALUE_RANGE``, so training states saved before the setting existed still
    resume, else ``{"value_range": name}``."""
    name = resolve(value_range).name
    return {} if name == LEGACY_VALUE_RANGE else {"value_range": name}


def check_same(trained: str, requested: str | ValueRange, what: str) -> None:
    """Refuses a model trained under value range ``trained`` (``what``: which model, e.g. its
    checkpoint) for a fit under ``requested``; the ValueError names both and the way out."""
    have, want = resolve(trained), resolve(requested)
    if have != want:
        raise ValueError(
            f"{what} was pretrained under value range {have} but this fit uses {want}: a "
            f"pretrained model only transfers to fits in its own range; fit with "
            f"--value-range {have.name} (value_range={have.name!r}), or pretrain one with "
            f"--value-range {want.name}")


def for_encoder(requested: str | ValueRange | None, trained: str | None = None,
                what: str = "the encoder") -> ValueRange:
    """The value range of a fit: ``requested``, else (None) the range a pretrained model was
    ``trained`` under, else ``DEFAULT_VALUE_RANGE``; a ``requested`` range that differs from
    ``trained`` is refused (``check_same``)."""
    if requested is None:
        return resolve(trained or DEFAULT_VALUE_RANGE)
    if trained is not None:
        check_same(trained, requested, what)
    return resolve(requested)
