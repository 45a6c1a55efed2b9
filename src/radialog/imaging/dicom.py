"""DICOM decoding for `read_xray` (private: use `radialog.imaging.read_xray`).

Only the elements needed to render the pixels are parsed (`specific_tags`), so patient
identifiers never even enter memory. Warnings that pydicom raises while reading may quote
element values, so they are counted, never shown.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import IO

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

from radialog.errors import InvalidImageError
from radialog.imaging.xray import XRay, block_mean, fit_max_side

logger = logging.getLogger(__name__)

# Everything that affects how pixels are decoded and displayed; nothing that identifies anyone.
_PIXEL_TAGS = [
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "PixelPaddingValue",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "ModalityLUTSequence",
    "VOILUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "PresentationLUTShape",
    "ViewPosition",
    "Modality",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "PixelData",
]
_VIEW_RE = re.compile(r"^[A-Z][A-Z0-9 _-]{0,15}$")


def read_dicom(fp: IO[bytes], name: str, *, max_side: int) -> XRay:
    """Decode a DICOM image: modality LUT, VOI LUT/window, MONOCHROME1 inverted, first frame."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(fp, specific_tags=_PIXEL_TAGS)
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidImageError(
                f"{name} is truncated or corrupt ({type(exc).__name__}); re-export it"
            ) from None
        pixels = _render(ds, name)
    if caught:
        logger.debug("%s: pydicom emitted %d warning(s) while reading", name, len(caught))

    original = pixels.shape
    factor = max(original) // max_side
    if factor > 1:
        pixels = block_mean(pixels, factor)
    pixels = fit_max_side(pixels, max_side)
    return XRay(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        view=_view_position(ds),
        format="dicom",
        bits=int(ds.get("BitsStored", ds.get("BitsAllocated", 0)) or 0),
        original_shape=original if pixels.shape != original else None,
    )


def _render(ds: pydicom.Dataset, name: str) -> np.ndarray:
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InvalidImageError(
            f"{name} has no pixel data (it may be a report, presentation state or a "
            "multi-frame header without frames); pass a DICOM that contains the image"
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        logger.info("%s has %d frames; reading the first", name, frames)
    try:
        arr = pixel_array(ds, index=0 if frames > 1 else None)
    except Exception as exc:  # noqa: BLE001 - decoders raise many types; all mean "cannot decode"
        tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        what = f"transfer syntax {tsyntax.name}" if tsyntax is not None else "its pixel data"
        raise InvalidImageError(
            f"{name}: cannot decode {what} ({type(exc).__name__}); the file may be truncated, "
            "or convert it to an uncompressed DICOM or PNG"
        ) from None
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        # Colour DICOM (pydicom already converted YBR to RGB): ITU-R 601 luma, as PIL "L".
        arr = arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if arr.ndim != 2:
        raise InvalidImageError(
            f"{name}: expected a 2-D image, got pixel array of shape {arr.shape}"
        )

    out = apply_modality_lut(arr, ds)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        out = apply_voi_lut(out, ds, index=0)
    out = np.asarray(out, dtype=np.float32)

    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        # MONOCHROME1 shows low values as white; flip within the same range so the
        # result reads as MONOCHROME2 (bright = dense) like every other image.
        out = (out.min() + out.max()) - out
    return out


def _view_position(ds: pydicom.Dataset) -> str | None:
    value = str(ds.get("ViewPosition", "") or "").strip().upper()
    return value if _VIEW_RE.match(value) else None
