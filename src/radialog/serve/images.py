"""Images arriving over HTTP: data URIs, format checks, and the preview PNG for the page.

Only PNG, JPEG and DICOM are accepted, recognised by their bytes (never by a declared
MIME type or a file name: upload file names often carry patient names and are never
logged or echoed). Remote URLs are refused: the server works offline.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct

from PIL import Image

from radialog.errors import InvalidImageError
from radialog.imaging.io import XRay, read_xray
from radialog.imaging.preprocess import to_uint8
from radialog.serve.errors import ApiError

ACCEPTED = "PNG, JPEG or DICOM"
PREVIEW_MAX_SIDE = 1024
_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+/-]*)(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.I
)


def sniff_format(data: bytes) -> str | None:
    """'png', 'jpeg', 'dicom' or None, from the magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    return None


def decode_image_url(url: str, *, max_bytes: int, param: str) -> bytes:
    """The bytes of a `data:` URI; clear 400/413 errors for anything else."""
    url = url.strip()
    lower = url[:16].lower()
    if lower.startswith(("http://", "https://", "ftp://", "file:")):
        raise ApiError(
            400,
            "image URLs are not fetched: this server works offline. Send the image inline "
            "as a data URI, e.g. data:image/png;base64,<...> (PNG, JPEG or DICOM bytes)",
            "remote_image_url",
            param,
        )
    match = _DATA_URI.match(url)
    if not match:
        raise ApiError(
            400,
            "image_url must be a data URI such as data:image/png;base64,<...>",
            "invalid_image_url",
            param,
        )
    payload = url[match.end() :]
    if not match.group("b64"):
        raise ApiError(
            400, "image data URIs must be base64-encoded (;base64,)", "invalid_image_url", param
        )
    # Reject early on the encoded size so a huge string is never decoded.
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise ApiError(413, too_big_message(max_bytes), "image_too_large", param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            400, "the image data URI is not valid base64", "invalid_base64", param
        ) from None
    if len(data) > max_bytes:
        raise ApiError(413, too_big_message(max_bytes), "image_too_large", param)
    return data


def image_size(data: bytes, fmt: str) -> tuple[int, int, int] | None:
    """(width, height, frames) from the file header, without decoding the pixels; None when
    the header cannot be read (decoding then reports the problem)."""
    try:
        if fmt == "png":
            if data[12:16] != b"IHDR":
                return None
            width, height = struct.unpack(">II", data[16:24])
            return width, height, 1
        if fmt == "jpeg":
            return _jpeg_size(data)
        if fmt == "dicom":
            import pydicom

            # Only the three size tags are parsed: no patient data is read into memory.
            ds = pydicom.dcmread(
                io.BytesIO(data),
                stop_before_pixels=True,
                specific_tags=["Rows", "Columns", "NumberOfFrames"],
            )
            rows, cols = ds.get("Rows"), ds.get("Columns")
            if rows is None or cols is None:
                return None
            return int(cols), int(rows), int(ds.get("NumberOfFrames", 1) or 1)
    except Exception:  # noqa: BLE001 - a malformed header is for the decoder to report
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int, int] | None:
    """Width and height from a JPEG's start-of-frame segment."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # no length field
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height, 1
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + length
    return None


def check_pixels(data: bytes, fmt: str, max_pixels: int, param: str) -> None:
    """413 when the header says the image has more pixels than `max_pixels`."""
    size = image_size(data, fmt)
    if size is None:
        return
    width, height, frames = size
    if width * height * frames > max_pixels:
        frames_text = f" x {frames} frames" if frames > 1 else ""
        raise ApiError(
            413,
            f"the image is {width} x {height} pixels{frames_text}, more than the server's "
            f"limit of {max_pixels / 1e6:g} megapixels (a chest X-ray needs at most about "
            "4,300 x 3,500); downscale it",
            "image_too_many_pixels",
            param,
        )


def load_image(data: bytes, *, param: str = "image", max_pixels: int | None = None) -> XRay:
    """Decode uploaded bytes into an XRay; 400 empty, 415 wrong format, 413 more pixels than
    `max_pixels` (read from the header, before decoding), 422 corrupt."""
    if not data:
        raise ApiError(
            400, f"the image is empty (0 bytes); send a {ACCEPTED} file", "empty_image", param
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise ApiError(
            415,
            f"unsupported image format: send a {ACCEPTED} chest X-ray "
            "(DICOM needs the standard 128-byte preamble and 'DICM' marker)",
            "unsupported_media_type",
            param,
        )
    if max_pixels is not None:
        check_pixels(data, fmt, max_pixels, param)
    try:
        return read_xray(data)
    except InvalidImageError as exc:
        # read_xray's messages name the data only as "image data (bytes)": no identifiers.
        raise ApiError(
            422, f"the {fmt.upper()} image cannot be read: {exc}", "invalid_image", param
        ) from None


def preview_png(xray: XRay, max_side: int = PREVIEW_MAX_SIDE) -> bytes:
    """The image as the model sees it before resizing (min-max 8-bit grey), as PNG bytes.

    Browsers cannot show DICOM or 16-bit PNG; this is what the page displays and sends
    back in later chat turns. It carries no metadata.
    """
    im = Image.fromarray(to_uint8(xray.pixels), mode="L")
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def too_big_message(max_bytes: int) -> str:
    return (
        f"the image is larger than the server's limit ({max_bytes / 2**20:.1f} MiB); "
        "downscale it or export it as JPEG"
    )


__all__ = [
    "ACCEPTED",
    "check_pixels",
    "decode_image_url",
    "image_size",
    "load_image",
    "preview_png",
    "png_data_uri",
    "sniff_format",
]
