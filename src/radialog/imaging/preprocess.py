"""RaDialog's image preprocessing: the one place it is defined.

Exactly the pipeline of the original (BioViL-T inference transform):
min-max remap to uint8 (no percentile clipping) -> PIL "L" -> Resize(512) (shorter side,
bilinear) -> CenterCrop(448) -> ToTensor ([0, 1]) -> repeat to 3 channels.
No mean/std normalisation. The findings classifier uses CenterCrop(488).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from radialog.imaging.io import XRay, read_xray

RESIZE = 512
ENCODER_CROP = 448
CLASSIFIER_CROP = 488

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
    arr = np.asarray(pixels, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("cannot remap an empty image")
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    arr = (arr - lo) / (hi - lo) * 255.0
    return np.nan_to_num(arr, nan=0.0).astype(np.uint8)


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
    return Image.fromarray(to_uint8(pixels)).convert("L")


class _ExpandChannels:
    """(1, H, W) -> (3, H, W), as RaDialog's ExpandChannels."""

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.repeat(3, 1, 1)

    def __repr__(self) -> str:
        return "ExpandChannels()"


class XRayTransform:
    """Callable: 2-D array / XRay / PIL image / path -> float tensor (3, crop, crop) in [0, 1]."""

    def __init__(self, resize: int = RESIZE, crop: int = ENCODER_CROP) -> None:
        if crop > resize:
            raise ValueError(f"crop ({crop}) must not exceed resize ({resize})")
        self.resize = resize
        self.crop = crop
        self.pipeline = transforms.Compose(
            [
                transforms.Resize(resize),
                transforms.CenterCrop(crop),
                transforms.ToTensor(),
                _ExpandChannels(),
            ]
        )

    def __call__(self, image: np.ndarray | XRay | Image.Image | str | Path) -> torch.Tensor:
        return self.pipeline(to_pil(image))

    def __repr__(self) -> str:
        return f"XRayTransform(resize={self.resize}, crop={self.crop})"
