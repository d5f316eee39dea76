"""Image loading, coordinate grids and the embedded MRI data.

Images are tensors [H, W, C] (a batch: [S, H, W, C]) of float32 pixel values in [0, 1];
networks are trained at coordinates in [-1, 1] on the pixels mapped to a value range
(``value_range``: [-1, 1] by default, or [0, 1]).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from . import distributed
from .value_range import DEFAULT_VALUE_RANGE, ValueRange, resolve

__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "load_image", "load_images", "list_images", "coord_grid",
           "to_target", "from_output", "mri_dir", "default_split", "validation_split",
           "load_image_shard"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")
MAX_PIXELS = 64 * 1024 * 1024  # larger images are refused (decompression-bomb guard)


def load_image(path: str | Path, size: int = 178, gray: bool = False) -> torch.Tensor:
    """One image as [size, size, C] in [0, 1]: center-cropped to a square, then resized.

    C is 1 for grayscale and 3 for colour (alpha is dropped); ``gray`` converts colour to
    one channel. NPY files hold [H, W] or [H, W, C] (C in 1, 3), uint8 or floats in [0, 1].
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        arr = _read_npy(path)
    else:
        arr = _read_pil(path)
    if arr.ndim == 2:
        arr = arr[..., None]
    img = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if gray and img.shape[-1] == 3:  # one channel at a time: no 3-channel temporary
        img = img[..., 0:1] * 0.299 + img[..., 1:2] * 0.587 + img[..., 2:3] * 0.114
    return _crop_resize(img, size)


def _read_pil(path: Path) -> np.ndarray:
    """Pixels [H, W] or [H, W, 3] in [0, 1]: 8-bit, 16-bit ("I;16*" / "I" scaled by 65535),
    float ("F", must lie in [0, 1]), palette and alpha modes (alpha dropped)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ValueError(f"{path}: {w}x{h} image exceeds the limit of {MAX_PIXELS} "
                                 "pixels (strainer_fast.data.MAX_PIXELS)")
            if im.mode.startswith("I;16") or im.mode == "I":
                arr = np.asarray(im.convert("I"), dtype=np.float64)
                if arr.min() < 0 or arr.max() > 65535:
                    raise ValueError(f"{path}: integer pixels outside 0..65535")
                return (arr / (255.0 if im.mode == "I" and arr.max() <= 255 else 65535.0)
                        ).astype(np.float32)
            if im.mode == "F":
                arr = np.array(im, dtype=np.float32)  # writable: scaled / clamped in place
                if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
                    raise ValueError(f"{path}: float pixels must be finite and in [0, 1]")
                return arr
            im = im.convert("L" if im.mode in ("L", "LA", "1") else "RGB")
            arr = np.asarray(im, dtype=np.float32)  # a new array: scaled in place
            arr /= 255.0
            return arr
    except ValueError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    except Exception as exc:  # truncated / corrupt data: PIL raises OSError, SyntaxError, ...
        raise ValueError(f"{path}: corrupt or truncated image ({type(exc).__name__}: {exc})"
                         ) from None


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")  # header first: size check
    except Exception as exc:  # noqa: BLE001  truncated / foreign / pickled files
        raise ValueError(f"{path}: not a readable .npy file ({type(exc).__name__}: {exc})"
                         ) from None
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (1, 3)):
        raise ValueError(f"{path}: expected an [H, W] or [H, W, 1|3] array, got {arr.shape}")
    if min(arr.shape[:2]) < 1:
        raise ValueError(f"{path}: empty image ({arr.shape[1]}x{arr.shape[0]} pixels)")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise ValueError(f"{path}: {arr.shape[1]}x{arr.shape[0]} image exceeds the limit of "
                         f"{MAX_PIXELS} pixels (strainer_fast.data.MAX_PIXELS)")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32)  # one float copy, scaled in place
        out /= 255.0
        return out
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{path}: expected uint8 or float values, got {arr.dtype}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"{path}: float values must be finite and in [0, 1]")
    return np.array(arr, dtype=np.float32)


def _crop_resize(img: torch.Tensor, size: int) -> torch.Tensor:
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    img = img[top:top + s, left:left + s]
    if s != size:
        img = F.interpolate(img.permute(2, 0, 1)[None], size=(size, size), mode="bilinear",
                            antialias=True, align_corners=False)[0].permute(1, 2, 0)
    return img.clamp_(0, 1).contiguous()  # in place: ``img`` is this loader's own buffer


def list_images(source: str | Path) -> list[Path]:
    """The image files of a folder (sorted by name), or ``[source]`` for a file."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{source}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not source.exists():
        raise ValueError(f"{source}: no such file or folder")
    return [source]


def load_images(
    sources: str | Path | Iterable[str | Path], size: int = 178, gray: bool = False
) -> tuple[torch.Tensor, list[str]]:
    """Images from files and/or folders as ([S, size, size, C] in [0, 1], file names)."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    paths = [p for s in sources for p in list_images(s)]
    if not paths:
        raise ValueError("no images given")
    images = [load_image(p, size, gray) for p in paths]
    channels = {img.shape[-1] for img in images}
    if len(channels) > 1:
        detail = ", ".join(f"{p.name}: {img.shape[-1]}" for p, img in zip(paths, images))
        raise ValueError(f"images have mixed channel counts ({detail}); use gray=True / --gray")
    batch = images[0][None] if len(images) == 1 else torch.stack(images)  # one: no copy
    return batch, [p.name for p in paths]


def coord_grid(height: int, width: int) -> torch.Tensor:
    """Grid [height * width, 2] of (row, col), each linspace(-1, 1) with ends, row-major."""
    rows = torch.linspace(-1, 1, height)
    cols = torch.linspace(-1, 1, width)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)


def to_target(images: torch.Tensor, value_range: str | ValueRange = DEFAULT_VALUE_RANGE
              ) -> torch.Tensor:
    """[S, H, W, C] in [0, 1] -> training targets [S, H * W, C] in ``value_range``."""
    return resolve(value_range).to_target(images)


def from_output(out: torch.Tensor, height: int, width: int,
                value_range: str | ValueRange = DEFAULT_VALUE_RANGE) -> torch.Tensor:
    """Network output [S, H * W, C] in ``value_range`` -> images [S, H, W, C] clamped to
    [0, 1]."""
    return resolve(value_range).to_pixels(out, height, width)


def mri_dir() -> Path:
    """Folder of the 16 embedded MNI brain MRI slices (PNG) and their README.md."""
    return Path(__file__).resolve().parent / "datasets" / "mri"


def default_split() -> tuple[list[Path], list[Path]]:
    """(train, test) paths of the embedded MRI slices, per the split table in its README."""
    readme = (mri_dir() / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\|\s*(mni_z\d+\.png)\s*\|.*\|\s*\**(train|test)\**\s*\|\s*$", readme,
                      flags=re.MULTILINE)
    split: dict[str, list[Path]] = {"train": [], "test": []}
    for name, part in rows:
        split[part].append(mri_dir() / name)
    return split["train"], split["test"]


VALIDATION_SLICES = ("mni_z048.png", "mni_z110.png")


def validation_split() -> tuple[list[Path], list[Path]]:
    """(tuning-train, validation) paths carved from the embedded MRI *train* split, for
    choosing hyper-parameters without touching the test slices: the 2 slices named in
    ``VALIDATION_SLICES`` (z = -24 and +38 mm) are validation, the other 8 train slices are
    tuning-train. Never use the test split to choose a default."""
    train, _ = default_split()
    val = [p for p in train if p.name in VALIDATION_SLICES]
    return [p for p in train if p.name not in VALIDATION_SLICES], val


def load_image_shard(source: str | Path, size: int, gray: bool = False
                     ) -> tuple[torch.Tensor, list[str], tuple[int, int, int]]:
    """Collective under ``torch.distributed``: this rank's block of the images of ``source``
    as (images [S_rank, size, size, C], names of all signals, (start, stop, total)); a
    single process gets them all. A bad file or mixed channel counts on any rank raise the
    same ValueError on every rank."""
    rank, world = distributed.rank_world()
    paths = list_images(source)
    start, stop = distributed.shard(len(paths), rank, world)
    images, error = None, None
    try:
        images, _ = load_images(paths[start:stop], size, gray)
    except ValueError as exc:
        error = str(exc)
    distributed.first_error(error)
    channels = set(distributed.all_gather(images.shape[-1]))
    if len(channels) > 1:
        raise ValueError(f"images have mixed channel counts ({sorted(channels)}); use --gray")
    return images, [p.name for p in paths], (start, stop, len(paths))
