"""RaDialog's image preprocessing: the one place it is defined.

Exactly the pipeline of the original (BioViL-T inference transform):
min-max remap to uint8 (no percentile clipping) -> PIL "L" -> Resize(512) (shorter side,
bilinear) -> CenterCrop(448) -> ToTensor ([0, 1]) -> repeat to 3 channels.
No mean/std normalisation. The findings classifier uses CenterCrop(488).

The three steps are written out with PIL and torch exactly as torchvision computes them for a
PIL image (tests compare with torchvision itself): importing torchvision takes about a second
(it imports torch._dynamo), a large share of a one-shot report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from radialog.imaging.io import XRay, read_xray
from radialog.imaging.sizes import CLASSIFIER_CROP, ENCODER_CROP, RESIZE

__all__ = [
    "CLASSIFIER_CROP",
    "ENCODER_CROP",
    "RESIZE",
    "XRayTransform",
    "to_pil",
    "to_uint8",
]


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Min-max remap to uint8 [0, 255], truncating like RaDialog's `remap_to_uint8`.

    A constant image (no contrast) maps to zeros instead of dividing by zero.
    """
    arr = np.asarray(pixels)
    if arr.size == 0:
        raise ValueError("cannot remap an empty image")
    fast = _to_uint8_by_table(arr)
    if fast is not None:
        return fast
    arr = np.asarray(arr, dtype=np.float64)
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    arr = (arr - lo) / (hi - lo) * 255.0
    return np.nan_to_num(arr, nan=0.0).astype(np.uint8)


_TABLE_MAX = 1 << 16


def _to_uint8_by_table(arr: np.ndarray) -> np.ndarray | None:
    """`to_uint8` for integer-valued images (8/16-bit files: nearly all X-rays) via a lookup
    table computed with the very same float64 formula, so the result is identical; ~3x faster
    than the per-pixel float64 passes. None when the image is not integer-valued."""
    if arr.dtype.kind not in "fui" or arr.dtype.itemsize > 4:
        return None
    lo, hi = arr.min(), arr.max()
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo or hi - lo >= _TABLE_MAX:
        return None
    if lo != np.floor(lo) or hi != np.floor(hi):
        return None
    offset = arr - arr.dtype.type(lo)  # exact: integers below 2**24 in float32
    index = offset.astype(np.uint16)
    if arr.dtype.kind == "f" and not np.array_equal(index, offset):
        return None  # fractional values somewhere
    lo, hi = float(lo), float(hi)
    values = np.arange(int(hi - lo) + 1, dtype=np.float64) + lo
    table = ((values - lo) / (hi - lo) * 255.0).astype(np.uint8)
    if len(table) == 256 and np.array_equal(table, np.arange(256)):
        return index.astype(np.uint8)  # a full-range 8-bit image maps onto itself
    return table[index]


def to_pil(image: np.ndarray | XRay | Image.Image | str | Path) -> Image.Image:
    """The min-max remapped 8-bit grayscale PIL image every model input starts from."""
    if isinstance(image, str | Path):
        image = read_xray(image)
    if isinstance(image, XRay):
        pixels = image.pixels
    elif isinstance(image, Image.Image):
        # 16-bit and float modes keep their range; colour goes through PIL's luma.
        keep = image.mode.startswith("I") or image.mode in ("F", "L")
        pixels = np.asarray(image if keep else image.convert("L"))
    elif isinstance(image, np.ndarray):
        pixels = image
    else:
        raise TypeError(
            f"expected a 2-D array, XRay, PIL image or path, got {type(image).__name__}"
        )
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {pixels.shape}")
    return Image.fromarray(to_uint8(pixels), mode="L")


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    """torchvision's `Resize(size)` on a PIL image: the shorter side to `size`, the longer
    one scaled and truncated, PIL's bilinear filter (antialiased)."""
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) == (w, h):
        return image
    return image.resize((new_w, new_h), Image.BILINEAR)


def center_crop(image: Image.Image, crop: int) -> Image.Image:
    """torchvision's `CenterCrop(crop)` on a PIL image at least `crop` wide and high."""
    w, h = image.size
    if crop > w or crop > h:
        raise ValueError(f"cannot crop {crop} x {crop} from a {w} x {h} image")
    top = int(round((h - crop) / 2.0))
    left = int(round((w - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


def to_tensor(image: Image.Image) -> torch.Tensor:
    """torchvision's `ToTensor()` on an "L" image: (1, H, W) float in [0, 1]."""
    if image.mode != "L":
        raise ValueError(f"expected an 8-bit grayscale ('L') image, got mode {image.mode!r}")
    pixels = torch.from_numpy(np.array(image, np.uint8, copy=True))
    return (
        pixels.view(image.size[1], image.size[0], 1)
        .permute((2, 0, 1))
        .contiguous()
        .to(dtype=torch.get_default_dtype())
        .div(255)
    )


class XRayTransform:
    """Callable: 2-D array / XRay / PIL image / path -> float tensor (3, crop, crop) in [0, 1]."""

    def __init__(self, resize: int = RESIZE, crop: int = ENCODER_CROP) -> None:
        if crop > resize:
            raise ValueError(f"crop ({crop}) must not exceed resize ({resize})")
        self.resize = resize
        self.crop = crop

    def __call__(self, image: np.ndarray | XRay | Image.Image | str | Path) -> torch.Tensor:
        pil = center_crop(resize_shorter_side(to_pil(image), self.resize), self.crop)
        return to_tensor(pil).repeat(3, 1, 1)  # RaDialog's ExpandChannels

    def __repr__(self) -> str:
        return f"XRayTransform(resize={self.resize}, crop={self.crop})"
