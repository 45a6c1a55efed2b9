"""The decoded radiograph (`XRay`) and the pixel reductions every reader shares.

Its own module so that the readers (`io` for PNG/JPEG, `dicom` for DICOM) depend on it and
not on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass(frozen=True, repr=False)
class XRay:
    """A decoded radiograph.

    pixels: 2-D float32, bright = dense, in the file's own value range.
    view: DICOM ViewPosition (e.g. "PA", "AP", "LATERAL") when known, else None.
    format: "png", "jpeg", "dicom" (or another Pillow format name, lower case).
    bits: bits per sample of the stored data (8, 16, or DICOM BitsStored).
    """

    pixels: np.ndarray
    view: str | None = None
    format: str = "unknown"
    bits: int = 8
    # Set when the image was reduced to fit max_side: the original (height, width).
    original_shape: tuple[int, int] | None = field(default=None)
    # How colourful the file was before it became grey (mean chroma in 0..1, see
    # `colourfulness`); None for grey files. The input gate refuses colour photographs by it.
    colour: float | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.pixels.shape)  # type: ignore[return-value]

    def __repr__(self) -> str:
        # Deliberately only image facts: never any header value beyond the view.
        lo, hi = (
            (float(self.pixels.min()), float(self.pixels.max())) if self.pixels.size else (0, 0)
        )
        return (
            f"XRay(shape={self.shape}, format={self.format!r}, view={self.view!r}, "
            f"bits={self.bits}, range=({lo:g}, {hi:g}))"
        )


def fit_max_side(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Area-resample a 2-D float array so its long side is at most max_side (aspect kept)."""
    h, w = arr.shape
    if max(h, w) <= max_side:
        return np.ascontiguousarray(arr, dtype=np.float32)
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # BOX never overshoots the input range, unlike Lanczos.
    small = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32)).resize(
        size, Image.Resampling.BOX
    )
    return np.asarray(small, dtype=np.float32)


def block_mean(arr: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks; partial edge blocks average what they have."""
    if factor <= 1:
        return arr.astype(np.float32, copy=False)
    h, w = arr.shape
    ph, pw = (-h) % factor, (-w) % factor
    a = arr.astype(np.float32, copy=False)
    if ph or pw:
        a = np.pad(a, ((0, ph), (0, pw)))
        ones = np.pad(np.ones((h, w), np.float32), ((0, ph), (0, pw)))
    else:
        ones = None
    hb, wb = a.shape[0] // factor, a.shape[1] // factor
    sums = a.reshape(hb, factor, wb, factor).sum(axis=(1, 3))
    if ones is None:
        return (sums / (factor * factor)).astype(np.float32)
    counts = ones.reshape(hb, factor, wb, factor).sum(axis=(1, 3))
    return (sums / counts).astype(np.float32)
