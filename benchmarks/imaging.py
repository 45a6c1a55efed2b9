"""Imaging speed: phantom rendering, preprocessing and reading. Prints two tables.

The second compares, in the same process and interleaved, radialog's read + preprocess
(`read_xray` + `XRayTransform`) with the reference way of RaDialog's code (Pillow/pydicom to a
numpy array, float64 min-max remap, torchvision Resize/CenterCrop/ToTensor) on real images
(../shared/data/images when present) and on MIMIC-size (2544 x 3056) 8-bit JPEG and 16-bit PNG
files made from a real radiograph; outputs are checked to be equal (DICOMs excepted: the
reference applies no VOI LUT / MONOCHROME1 inversion).

Usage: python benchmarks/imaging.py [--repeat N]
Runs on one thread (BLAS/torch) so numbers are per core.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from radialog.imaging import example_image_path, read_xray  # noqa: E402
from radialog.imaging.phantom import render_phantom  # noqa: E402
from radialog.imaging.preprocess import XRayTransform  # noqa: E402

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"


def _reference(path: Path, crop: int = 448) -> torch.Tensor:
    """RaDialog's way: read to an array, remap_to_uint8 in float64, torchvision transforms."""
    from PIL import Image
    from torchvision import transforms

    if path.suffix == ".dcm":
        import pydicom

        array = pydicom.dcmread(path).pixel_array.astype(float)
    else:
        image = Image.open(path)  # like skimage.io.imread: 16-bit stays 16-bit, colour -> luma
        keep = image.mode in ("L", "I", "I;16", "I;16B", "I;16L")
        array = np.asarray(image if keep else image.convert("L")).astype(float)
    array -= array.min()
    array /= array.max()
    array *= 255
    image = Image.fromarray(array.astype(np.uint8)).convert("L")
    pipeline = transforms.Compose(
        [
            transforms.Resize(512),
            transforms.CenterCrop(crop),
            transforms.ToTensor(),
            transforms.Lambda(lambda t: t.repeat(3, 1, 1)),
        ]
    )
    return pipeline(image)


def _mimic_size_files(tmp: Path) -> list[Path]:
    """2544 x 3056 files (a typical MIMIC-CXR size) made from a real radiograph."""
    from PIL import Image

    source = SHARED_IMAGES / "00000001_000.png"
    base = Image.open(source if source.is_file() else example_image_path()).convert("L")
    big = base.resize((2544, 3056), Image.Resampling.BICUBIC)
    jpg, png16 = tmp / "mimic_size_8bit.jpg", tmp / "mimic_size_16bit.png"
    big.save(jpg, quality=95)
    Image.fromarray(np.asarray(big).astype(np.uint16) * 257).save(png16)
    return [jpg, png16]


def _remap_float64(pixels: np.ndarray) -> np.ndarray:
    """The per-pixel float64 remap (RaDialog's remap_to_uint8), the baseline of `to_uint8`."""
    array = np.asarray(pixels, dtype=np.float64)
    lo, hi = array.min(), array.max()
    return ((array - lo) / (hi - lo) * 255.0).astype(np.uint8)


def _compare_remap(repeat: int, jpg: Path, png16: Path) -> None:
    from radialog.imaging.preprocess import to_uint8

    print(
        f"\n{'min-max remap to uint8':36s} {'float64 ms':>12s} {'to_uint8 ms':>11s} {'ratio':>6s}"
    )
    for path in (jpg, png16):
        pixels = read_xray(path).pixels
        assert np.array_equal(to_uint8(pixels), _remap_float64(pixels))
        base = [_time(lambda p=pixels: _remap_float64(p), 1)[0] for _ in range(repeat)]
        ours = [_time(lambda p=pixels: to_uint8(p), 1)[0] for _ in range(repeat)]
        b, o = float(np.median(base)), float(np.median(ours))
        print(f"{path.name:36s} {b:12.1f} {o:11.1f} {b / o:6.2f}")


def _compare_read_preprocess(repeat: int) -> None:
    transform = XRayTransform()
    with tempfile.TemporaryDirectory() as tmp:
        big = _mimic_size_files(Path(tmp))
        _compare_remap(repeat, *big)
        paths = [example_image_path(), *big]
        if SHARED_IMAGES.is_dir():
            paths += sorted(p for p in SHARED_IMAGES.iterdir() if p.suffix in (".png", ".jpg"))
            paths += sorted(SHARED_IMAGES.glob("*.dcm"))[:1]
        print(
            f"\n{'read + preprocess (448 crop)':36s} {'reference ms':>12s} {'radialog ms':>11s} "
            f"{'ratio':>6s} {'images/s':>8s} {'equal':>6s}"
        )
        for path in paths:
            ours_fn = lambda p=path: transform(read_xray(p))  # noqa: E731
            ref_fn = lambda p=path: _reference(p)  # noqa: E731
            equal = "-" if path.suffix == ".dcm" else str(torch.equal(ours_fn(), ref_fn()))
            ref_t, ours_t = [], []
            for _ in range(repeat):  # interleaved: machine load hits both alike
                ref_t.append(_time(ref_fn, 1)[0])
                ours_t.append(_time(ours_fn, 1)[0])
            r, o = float(np.median(ref_t)), float(np.median(ours_t))
            print(
                f"{path.name[:36]:36s} {r:12.1f} {o:11.1f} {r / o:6.2f} {1000 / o:8.0f} {equal:>6s}"
            )


def _time(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times)), float(np.min(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = iter(range(10**6))
    transform = XRayTransform()
    xray = read_xray(example_image_path())
    rows = [
        ("render_phantom([], 512)", lambda: render_phantom([], next(seeds), 512)),
        (
            "render_phantom(4 findings, 512)",
            lambda: render_phantom(
                ["Cardiomegaly", "Pleural Effusion", "Edema", "Support Devices"], next(seeds), 512
            ),
        ),
        ("render_phantom([], 256)", lambda: render_phantom([], next(seeds), 256)),
        (
            "render_phantom([], 512, LATERAL)",
            lambda: render_phantom([], next(seeds), 512, "LATERAL"),
        ),
        (
            "render_phantom(4 findings, 512, LAT)",
            lambda: render_phantom(
                ["Cardiomegaly", "Pleural Effusion", "Edema", "Support Devices"],
                next(seeds),
                512,
                "LATERAL",
            ),
        ),
        (
            "render_phantom([], 256, LATERAL)",
            lambda: render_phantom([], next(seeds), 256, "LATERAL"),
        ),
        ("read_xray(example PNG)", lambda: read_xray(example_image_path())),
        ("XRayTransform(448) on XRay", lambda: transform(xray)),
    ]
    print(f"load average: {os.getloadavg()[0]:.1f} (numbers are inflated on a busy machine)")
    print(f"{'operation':36s} {'median ms':>10s} {'min ms':>8s}")
    for name, fn in rows:
        median, best = _time(fn, args.repeat)
        print(f"{name:36s} {median:10.1f} {best:8.1f}")
    _compare_read_preprocess(args.repeat)


if __name__ == "__main__":
    main()
