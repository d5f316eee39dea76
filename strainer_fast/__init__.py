"""strainer_fast: transferable implicit neural representations (STRAINER) on fused sine-MLP
kernels.

The Python API in a few names (shapes: images [S, H, W, C] in [0, 1])::

    images, names = load_images(folder, size=64)        # or load_mri(split="train")
    model = pretrain(images, width=128, steps=1500, out="enc.pt")
    encoder = load_encoder("enc.pt")                     # or model.encoder()
    result = fit_many(test_images, encoder, steps=300)   # or fit(image, encoder)
    superres(lowres, scale=4, init=encoder); denoise(noisy, encoder, clean=clean)
    pretrain_occupancy(volumes) / fit_occupancy(volume, encoder)
    model = train_generalizable("transinr", size=32)      # TransINR / IPC baselines
    fit_generalizable(test_images, model, tto=True)
"""

from __future__ import annotations

import torch

from ._version import __version__
from .checkpoint import load_encoder, load_strainer, save_checkpoint
from .data import default_split, load_image, load_images, mri_dir
from .fit import FitResult, fit, fit_many
from .generalizable import fit_generalizable, load_generalizable, train_generalizable
from .jobs import compare
from .meta import meta_init
from .metrics import psnr, ssim
from .models import Encoder, Strainer
from .ops import batched_sine_mlp, sine_mlp
from .pretrain import pretrain
from .streaming import pretrain_streaming
from .tasks.denoise import add_noise, denoise
from .tasks.occupancy import chairs_dir, fit_occupancy, load_shapes, pretrain_occupancy
from .tasks.statue import statue_volume
from .tasks.superres import downsample, superres

__all__ = [
    "sine_mlp", "batched_sine_mlp",
    "Strainer", "Encoder",
    "load_image", "load_images", "load_mri", "mri_dir", "default_split",
    "pretrain", "pretrain_streaming", "meta_init", "save_checkpoint", "load_strainer",
    "load_encoder",
    "fit", "fit_many", "FitResult", "compare", "psnr", "ssim",
    "train_generalizable", "load_generalizable", "fit_generalizable",
    "superres", "downsample", "denoise", "add_noise",
    "pretrain_occupancy", "fit_occupancy", "load_shapes", "chairs_dir", "statue_volume",
    "__version__",
]


def load_mri(split: str = "train", size: int = 178) -> tuple[torch.Tensor, list[str]]:
    """The embedded MRI slices of ``split`` ("train": 10, "test": 6) as ([S, size, size, 1]
    in [0, 1], file names)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    train, test = default_split()
    return load_images(train if split == "train" else test, size)
