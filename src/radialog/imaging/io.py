"""Read chest X-rays from PNG/JPEG (8/16-bit) and DICOM into one pixel convention.

`read_xray` returns an `XRay` whose `pixels` are a 2-D float32 array where bright means
dense (bone white, i.e. MONOCHROME2), in the file's own value range (0..255 for 8-bit,
0..65535 for 16-bit PNG, the VOI/modality output range for DICOM).

The format is detected from the content (magic bytes), never from the file suffix.
Large images are reduced to at most `max_side` pixels on the long side while decoding
(JPEG via `Image.draft`, which decodes at 1/2, 1/4 or 1/8 scale) or right after it
(PNG), and files whose full decode would need more than `MAX_DECODE_BYTES` are refused
with a clear error rather than exhausting memory.

Privacy: nothing here logs or puts into messages any DICOM header value; DICOM files are
only ever named as "DICOM file <path>".
"""

from __future__ import annotations

import io
import logging
import math
import struct
import warnings
import zlib
from pathlib import Path
from typing import IO

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, JpegImagePlugin, PngImagePlugin

from radialog.errors import InvalidImageError
from radialog.imaging.xray import XRay, block_mean, fit_max_side

logger = logging.getLogger(__name__)

# A full decode that needs more memory than this is refused (20000 x 20000 8-bit is 400 MB
# and passes; 20000 x 20000 RGB at 1.2 GB does not). JPEG is drafted below this first.
MAX_DECODE_BYTES = 1 << 30

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_DICOM_MAGIC_OFFSET = 128
_DICOM_MAGIC = b"DICM"
# Strip height for reducing 16-bit images in numpy without a full-size float copy.
_STRIP_ROWS = 1024
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "I;16": 2, "I;16B": 2, "I;16L": 2}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)


def read_xray(source: str | Path | bytes, *, max_side: int = 4096) -> XRay:
    """Read a PNG, JPEG or DICOM chest X-ray.

    `source` is a path or the file's bytes. Images larger than `max_side` on the long side
    are reduced (box filter) to fit. Raises `InvalidImageError` for anything that is not a
    readable image: missing, empty, truncated, corrupt or unsupported files.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    name, fp = _open_source(source)
    try:
        head = fp.read(_DICOM_MAGIC_OFFSET + len(_DICOM_MAGIC))
        fp.seek(0)
        if not head:
            raise InvalidImageError(f"{name} is empty (0 bytes); pass a PNG, JPEG or DICOM X-ray")
        if head[_DICOM_MAGIC_OFFSET:] == _DICOM_MAGIC:
            from radialog.imaging import dicom  # pydicom is imported only for DICOM files

            return dicom.read_dicom(fp, _dicom_name(source), max_side=max_side)
        if head.startswith(_PNG_MAGIC):
            return _read_pillow(fp, name, max_side, PngImagePlugin.PngImageFile, "png")
        if head.startswith(_JPEG_MAGIC):
            return _read_pillow(fp, name, max_side, JpegImagePlugin.JpegImageFile, "jpeg")
        return _read_other(fp, name, max_side, head)
    finally:
        fp.close()


def _open_source(source: str | Path | bytes) -> tuple[str, IO[bytes]]:
    if isinstance(source, bytes | bytearray | memoryview):
        return "image data (bytes)", io.BytesIO(bytes(source))
    if not isinstance(source, str | Path):
        raise TypeError(f"read_xray expects a path or bytes, got {type(source).__name__}")
    path = Path(source).expanduser()
    if not path.exists():
        raise InvalidImageError(f"image file {path} does not exist; check the path")
    if path.is_dir():
        raise InvalidImageError(f"{path} is a directory; pass an image file (PNG, JPEG or DICOM)")
    try:
        return f"image file {path}", path.open("rb")
    except OSError as exc:
        raise InvalidImageError(f"cannot open image file {path}: {exc.strerror}") from None


def _dicom_name(source: str | Path | bytes) -> str:
    if isinstance(source, str | Path):
        return f"DICOM file {Path(source).expanduser()}"
    return "DICOM data (bytes)"


def _read_pillow(
    fp: IO[bytes],
    name: str,
    max_side: int,
    plugin: type[ImageFile.ImageFile],
    fmt: str,
) -> XRay:
    try:
        # Instantiating the plugin directly skips Image.open's decompression-bomb check,
        # which we replace with our own: a memory budget plus reduction to max_side.
        im = plugin(fp)
    except _DECODE_ERRORS as exc:
        raise InvalidImageError(
            f"{name} looks like a {fmt.upper()} but its header is corrupt ({exc}); "
            "re-export the image"
        ) from None
    return _decode_pillow_image(im, name, max_side, fmt)


def _read_other(fp: IO[bytes], name: str, max_side: int, head: bytes) -> XRay:
    """Anything that is not PNG/JPEG/DICOM: let Pillow try (TIFF, BMP, ...) with its checks."""
    if _looks_like_text(head):
        raise InvalidImageError(
            f"{name} is a text file, not an image; pass a PNG, JPEG or DICOM X-ray"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(fp)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(f"{name} is too large to read safely ({exc})") from None
    except _DECODE_ERRORS:
        raise InvalidImageError(
            f"{name} is not a supported image format; pass a PNG, JPEG or DICOM X-ray "
            "(DICOM files must have the standard 128-byte preamble and 'DICM' marker)"
        ) from None
    fmt = (im.format or "unknown").lower()
    return _decode_pillow_image(im, name, max_side, fmt)


def _looks_like_text(head: bytes) -> bool:
    sample = head[:128]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode_pillow_image(im: ImageFile.ImageFile, name: str, max_side: int, fmt: str) -> XRay:
    original = (im.size[1], im.size[0])
    if getattr(im, "n_frames", 1) > 1:
        logger.info("%s has %d frames; reading the first", name, im.n_frames)
    if fmt == "jpeg" and max(im.size) > max_side:
        # Decode at 1/2, 1/4 or 1/8 scale: bounded memory for huge JPEGs.
        f = max(im.size) / max_side
        target = (max(1, math.ceil(im.size[0] / f)), max(1, math.ceil(im.size[1] / f)))
        im.draft("L" if im.mode in ("L", "RGB", "YCbCr") else None, target)
    need = im.size[0] * im.size[1] * _BYTES_PER_PIXEL.get(im.mode, 4)
    if need > MAX_DECODE_BYTES:
        raise InvalidImageError(
            f"{name} is {im.size[0]} x {im.size[1]} pixels ({im.mode}); decoding it would need "
            f"{need / 2**30:.1f} GiB. Downscale it (e.g. to 4096 px) before reading"
        )
    try:
        im.load()
        if fmt == "jpeg":
            im = ImageOps.exif_transpose(im) if _has_orientation(im) else im
        colour = colourfulness(im) if im.mode not in _GREY_MODES else None
        pixels = _to_gray_array(im, max_side)
    except _DECODE_ERRORS as exc:
        raise InvalidImageError(
            f"{name} is truncated or corrupt ({exc}); re-export or re-download the image"
        ) from None
    # Pillow hides the stored bit depth; 16-bit grey PNG/TIFF open as I;16 (or I).
    bits = 16 if im.mode.startswith("I;16") or im.mode == "I" else 8
    reduced = pixels.shape != original
    return XRay(
        pixels=pixels,
        view=None,
        format=fmt,
        bits=bits,
        original_shape=original if reduced else None,
        colour=colour,
    )


_GREY_MODES = ("1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N")
_COLOUR_SIDE = 64


def colourfulness(im: Image.Image) -> float:
    """Mean chroma (max - min of R, G, B, in 0..1) of a 64-px thumbnail: 0 for a grey image
    stored as RGB (as many X-ray JPEGs are), about 0.1-0.5 for a colour photograph."""
    small = im.copy()
    small.thumbnail((_COLOUR_SIDE, _COLOUR_SIDE), Image.Resampling.BOX)
    if small.mode in ("RGBA", "LA", "PA"):
        # Transparent pixels count as grey, whatever colour they store.
        rgba = np.asarray(small.convert("RGBA"), dtype=np.float32)
        rgb, alpha = rgba[..., :3], rgba[..., 3] / 255.0
    else:
        rgb, alpha = np.asarray(small.convert("RGB"), dtype=np.float32), None
    chroma = (rgb.max(axis=-1) - rgb.min(axis=-1)) / 255.0
    if alpha is not None:
        chroma = chroma * alpha
    return round(float(chroma.mean()), 4)


def _has_orientation(im: Image.Image) -> bool:
    """True when EXIF asks for a rotation/flip (exif_transpose otherwise only copies)."""
    return im.getexif().get(ExifTags.Base.Orientation, 1) != 1


def _to_gray_array(im: Image.Image, max_side: int) -> np.ndarray:
    """Grayscale float32 array with the long side at most max_side; 16-bit precision kept."""
    # Integer box reduction first (cheap, bounded memory), then an exact small resize.
    factor = max(1, max(im.size) // max_side)
    if im.mode.startswith("I;16"):
        return fit_max_side(_reduce_strips(im, factor), max_side)
    if im.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr", "1", "La", "RGBa", "LAB", "HSV"):
        im = im.convert("RGB") if im.mode not in ("1", "LA", "La") else im.convert("L")
    if factor > 1:
        # Reduce before the colour conversion and the float copy: both are then small.
        im = im.reduce(factor)
    if im.mode == "RGB":
        im = im.convert("L")  # ITU-R 601-2 luma, as PIL.convert("L") everywhere else
    return fit_max_side(np.asarray(im, dtype=np.float32), max_side)


def _reduce_strips(im: Image.Image, factor: int) -> np.ndarray:
    """Box-reduce a 16-bit image by an integer factor, strip by strip (no full float copy)."""
    w, h = im.size
    if factor <= 1:
        return np.asarray(im).astype(np.float32)
    rows_per_strip = max(factor, (_STRIP_ROWS // factor) * factor)
    out_rows = []
    for y0 in range(0, h, rows_per_strip):
        strip = np.asarray(im.crop((0, y0, w, min(h, y0 + rows_per_strip)))).astype(np.float32)
        out_rows.append(block_mean(strip, factor))
    return np.concatenate(out_rows, axis=0)
