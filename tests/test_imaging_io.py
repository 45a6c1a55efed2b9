"""read_xray: real files, 16-bit, DICOM photometry, errors, huge images, privacy."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_paths import SHARED_IMAGES
from radialog.errors import InvalidImageError
from radialog.imaging import XRay, example_image_path, read_xray

MONO2 = SHARED_IMAGES / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
MONO1 = SHARED_IMAGES / "Fake_MONOHR1.dcm"
needs_data = pytest.mark.skipif(not SHARED_IMAGES.is_dir(), reason="shared test data not present")


def _minmax(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return (a - a.min()) / (a.max() - a.min())


@needs_data
@pytest.mark.parametrize(
    "name", sorted(p.name for p in SHARED_IMAGES.glob("*")) if SHARED_IMAGES.is_dir() else []
)
def test_reads_every_real_image(name: str) -> None:
    x = read_xray(SHARED_IMAGES / name)
    assert isinstance(x, XRay)
    assert x.pixels.ndim == 2 and x.pixels.dtype == np.float32
    assert min(x.pixels.shape) >= 256
    assert np.isfinite(x.pixels).all()
    # A radiograph has real contrast and is not mostly saturated.
    assert x.pixels.std() > 10
    assert x.format == {".png": "png", ".jpg": "jpeg", ".dcm": "dicom"}[Path(name).suffix]
    if x.format == "dicom":
        assert x.view == "PA"


@needs_data
def test_monochrome1_reads_as_inverse_of_monochrome2() -> None:
    m1 = read_xray(MONO1).pixels
    m2 = read_xray(MONO2).pixels
    assert m1.shape == m2.shape
    assert np.corrcoef(m1.ravel(), m2.ravel())[0, 1] < -0.999
    assert np.allclose(_minmax(m1) + _minmax(m2), 1.0, atol=1e-6)


@needs_data
def test_monochrome2_is_bright_where_dense() -> None:
    # Lungs (air) are dark in a correctly read frontal film: centre-left/right darker than spine.
    x = read_xray(MONO2).pixels
    h, w = x.shape
    lung = np.concatenate(
        [x[h // 3 : h // 2, w // 5 : w // 3], x[h // 3 : h // 2, -w // 3 : -w // 5]]
    )
    assert lung.mean() < np.median(x)


@needs_data
def test_format_detected_by_content_not_suffix(tmp_path: Path) -> None:
    disguised = tmp_path / "scan.png"
    disguised.write_bytes(MONO2.read_bytes())
    assert read_xray(disguised).format == "dicom"
    as_bytes = read_xray((SHARED_IMAGES / "16747_3_1.jpg").read_bytes())
    assert as_bytes.format == "jpeg"
    assert np.array_equal(as_bytes.pixels, read_xray(SHARED_IMAGES / "16747_3_1.jpg").pixels)


def test_16bit_png_keeps_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65536, size=(300, 200), dtype=np.uint16)
    values[0, :4] = [1000, 1001, 1002, 1003]  # differ below 8-bit resolution
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    x = read_xray(path)
    assert x.bits == 16 and x.format == "png"
    assert x.pixels.shape == (300, 200)
    assert np.array_equal(x.pixels, values.astype(np.float32))
    assert len(np.unique(x.pixels)) > 256


def test_rgb_png_becomes_grayscale(tmp_path: Path) -> None:
    gray = np.tile(np.arange(256, dtype=np.uint8), (40, 1))
    path = tmp_path / "rgb.png"
    Image.fromarray(np.stack([gray] * 3, axis=-1)).save(path)
    x = read_xray(path)
    assert x.pixels.shape == (40, 256)
    assert np.array_equal(x.pixels, gray.astype(np.float32))


def test_max_side_reduces_and_keeps_aspect(tmp_path: Path) -> None:
    arr = np.tile(np.linspace(0, 65535, 1200, dtype=np.uint16), (600, 1))
    Image.fromarray(arr).save(tmp_path / "wide.png")
    x = read_xray(tmp_path / "wide.png", max_side=300)
    assert x.pixels.shape == (150, 300)
    assert x.original_shape == (600, 1200)
    assert x.pixels.max() > 60000  # 16-bit range kept after reduction


@pytest.mark.parametrize(
    ("content", "suffix", "expect"),
    [
        (b"", ".png", "empty"),
        (b"this is a radiology report, not an image\n", ".png", "text file"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, ".png", "corrupt"),
        (b"\x00\x01\x02garbage" * 20, ".bin", "not a supported image format"),
    ],
)
def test_bad_files_raise_clear_errors(
    tmp_path: Path, content: bytes, suffix: str, expect: str
) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(InvalidImageError, match=expect) as info:
        read_xray(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="does not exist"):
        read_xray(tmp_path / "nope.png")
    with pytest.raises(InvalidImageError, match="directory"):
        read_xray(tmp_path)


def test_truncated_png_and_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (256, 256), dtype=np.uint8))
    for fmt in ("PNG", "JPEG"):
        full = tmp_path / f"full.{fmt.lower()}"
        img.save(full, format=fmt)
        cut = tmp_path / f"cut.{fmt.lower()}"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(InvalidImageError, match="truncated or corrupt"):
            read_xray(cut)


@needs_data
def test_truncated_dicom(tmp_path: Path) -> None:
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(MONO2.read_bytes()[:60000])
    with pytest.raises(InvalidImageError, match="DICOM file"):
        read_xray(cut)


def _write_dicom(path: Path, pixels: np.ndarray | None, **elements: object) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID12345"
    ds.PatientBirthDate = "19700101"
    ds.Modality = "DX"
    ds.ViewPosition = "AP"
    for key, value in elements.items():
        setattr(ds, key, value)
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = elements.get("PhotometricInterpretation", "MONOCHROME2")
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_rescale_window_and_no_identifiers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stored = np.tile(np.arange(0, 4096, 16, dtype=np.uint16), (64, 1))  # 64 x 256
    path = tmp_path / "Doe^Jane_scan.dcm"
    _write_dicom(
        path, stored, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=2000, WindowWidth=2000
    )
    with caplog.at_level(logging.DEBUG):
        x = read_xray(path)
        with pytest.raises(InvalidImageError) as info:
            _raise_no_pixels(tmp_path)
    assert x.view == "AP" and x.format == "dicom" and x.bits == 12
    # Rescale: value = 2 * stored - 100; window [1000, 3000] linear, saturated outside.
    rescaled = 2 * stored[0].astype(np.float64) - 100
    row = x.pixels[0]
    assert np.all(np.diff(row) >= 0)  # monotone, MONOCHROME2 kept
    assert np.all(row[rescaled < 900] == row.min())
    assert np.all(row[rescaled > 3100] == row.max())
    inside = (rescaled > 1100) & (rescaled < 2900)
    assert len(np.unique(row[inside])) == inside.sum()
    for text in (repr(x), str(info.value), caplog.text):
        assert "PID12345" not in text
        assert "19700101" not in text
    assert "Doe" not in repr(x) and "Doe^Jane" not in caplog.text


def _raise_no_pixels(tmp_path: Path) -> None:
    path = tmp_path / "header_only.dcm"
    _write_dicom(path, None, NumberOfFrames=3)
    read_xray(path)


def test_dicom_without_pixels_is_clear(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="no pixel data"):
        _raise_no_pixels(tmp_path)


def test_dicom_monochrome1_synthetic(tmp_path: Path) -> None:
    stored = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (8, 1))
    _write_dicom(tmp_path / "m1.dcm", stored, PhotometricInterpretation="MONOCHROME1")
    row = read_xray(tmp_path / "m1.dcm").pixels[0]
    assert np.all(np.diff(row) < 0)  # high stored values are dark in MONOCHROME1


# VmHWM (peak RSS of this address space) rather than ru_maxrss, which Linux carries over
# from the parent across fork/exec.
_HUGE_SCRIPT = """
import re, sys, time
from pathlib import Path
from radialog.imaging import read_xray
t = time.perf_counter()
x = read_xray(Path(sys.argv[1]), max_side=2048)
hwm = int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
print(x.pixels.shape, x.original_shape, round(time.perf_counter() - t, 2), hwm // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_huge_png_is_read_with_bounded_memory(tmp_path: Path) -> None:
    side = 20000
    path = tmp_path / "huge.png"
    # A mostly constant image compresses to a few hundred KB; PIL allocates it once here.
    img = Image.new("L", (side, side), 90)
    img.paste(200, (side // 4, side // 4, side // 2, side // 2))
    img.save(path, compress_level=1)
    del img
    assert path.stat().st_size < 5_000_000
    t = time.perf_counter()
    # A fresh process so ru_maxrss measures only the read.
    out = subprocess.run(
        [sys.executable, "-c", _HUGE_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split(")")
    elapsed = time.perf_counter() - t
    assert out[0].strip() == "(2048, 2048"
    peak_mb = int(out[-1].split()[-1])
    # 400 MB for the 8-bit decode plus interpreter/numpy/torch-free imports; never a float copy.
    print(f"huge PNG read: {elapsed:.1f} s, peak RSS {peak_mb} MB")
    assert peak_mb < 700, peak_mb
    assert elapsed < 60


def test_oversized_rgb_is_rejected_without_decoding(tmp_path: Path) -> None:
    from radialog.imaging import io as imaging_io

    path = tmp_path / "big_rgb.png"
    Image.new("RGB", (300, 300), (10, 20, 30)).save(path)
    old = imaging_io.MAX_DECODE_BYTES
    imaging_io.MAX_DECODE_BYTES = 100_000
    try:
        with pytest.raises(InvalidImageError, match="Downscale it"):
            read_xray(path)
    finally:
        imaging_io.MAX_DECODE_BYTES = old


def test_huge_jpeg_is_drafted(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.new("L", (6000, 3000), 128).save(path, quality=80)
    x = read_xray(path, max_side=1000)
    assert max(x.pixels.shape) <= 1000 and x.original_shape == (3000, 6000)
    assert x.pixels.shape[1] == 2 * x.pixels.shape[0]


def test_example_image_is_bundled() -> None:
    path = example_image_path()
    assert path.is_file()
    x = read_xray(path)
    assert x.pixels.shape == (512, 512) and x.format == "png" and x.bits == 8


def test_jpeg_exif_orientation_is_applied(tmp_path: Path) -> None:
    # A phone photo of a film: stored landscape, EXIF Orientation 6 = rotate 90 degrees clockwise.
    pixels = np.zeros((40, 60), dtype=np.uint8)
    pixels[:, :10] = 255  # bright band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=100)
    x = read_xray(path)
    assert x.shape == (60, 40)
    assert x.pixels[:10].mean() > 200 and x.pixels[-10:].mean() < 50  # the band is now on top
    plain = tmp_path / "plain.jpg"
    Image.fromarray(pixels).save(plain, quality=100)
    assert read_xray(plain).shape == (40, 60)
