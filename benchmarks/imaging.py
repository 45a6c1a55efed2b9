"""Imaging speed: phantom rendering, preprocessing and reading. Prints a table.

Usage: python benchmarks/imaging.py [--repeat N]
Runs on one thread (BLAS/torch) so numbers are per core.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from radialog.imaging import example_image_path, read_xray  # noqa: E402
from radialog.imaging.phantom import render_phantom  # noqa: E402
from radialog.imaging.preprocess import XRayTransform  # noqa: E402


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


if __name__ == "__main__":
    main()
