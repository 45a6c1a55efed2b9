"""Film exposure of a phantom: positioning, the film response and noise, per seed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from radialog.imaging.phantom.draw import upsample


@dataclass(frozen=True)
class Exposure:
    angle: float
    zoom: float
    shift: tuple[float, float]
    gain: float
    gamma: float
    black: float
    white: float
    noise: float
    size: int


def sample_exposure(rng: np.random.Generator, size: int) -> Exposure:
    return Exposure(
        angle=rng.uniform(-4.0, 4.0),
        zoom=rng.uniform(0.92, 1.04),
        shift=(rng.uniform(-0.04, 0.04), rng.uniform(-0.03, 0.05)),
        gain=rng.uniform(1.6, 2.3),
        gamma=rng.uniform(0.8, 1.25),
        black=rng.uniform(0.0, 0.12),
        white=rng.uniform(0.88, 1.05),
        noise=rng.uniform(0.012, 0.03),
        size=size,
    )


def expose(density: np.ndarray, e: Exposure, rng: np.random.Generator) -> np.ndarray:
    n = e.size
    # Patient positioning: small rotation, magnification and offset, as one resampling.
    c = (n - 1) / 2.0
    th = math.radians(e.angle)
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]]) / e.zoom
    shift_px = np.array([e.shift[1], e.shift[0]]) * n / 2.0
    offset = np.array([c, c]) - rot @ (np.array([c, c]) + shift_px)
    # PIL's affine resampling is several times faster than scipy's for one float image.
    coeffs = (rot[1, 1], rot[1, 0], offset[1], rot[0, 1], rot[0, 0], offset[0])
    d = np.asarray(
        Image.fromarray(density).transform(
            (n, n), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR
        ),
        dtype=np.float32,
    )
    # Film response: attenuation -> brightness, then a per-seed window and gamma.
    b = 1.0 - np.exp(-e.gain * np.clip(d, 0.0, None))
    b = np.clip((b - e.black) / (e.white - e.black), 0.0, 1.0) ** e.gamma
    # Quantum noise (stronger in dark, low-dose regions) plus a smooth low-frequency wash.
    lowfreq = upsample(rng.standard_normal((6, 6)).astype(np.float32), n, n)
    b = (
        b
        + 0.02 * lowfreq
        + e.noise * (1.2 - 0.6 * b) * rng.standard_normal((n, n), dtype=np.float32)
    )
    return (np.clip(b, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
