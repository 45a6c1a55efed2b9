"""The synthetic patient of a phantom seed: body geometry, lung markings, and what findings do to it.

`Anatomy` is sampled per seed (`sample_anatomy`); the finding `MODIFIERS` change it before any
view is rendered, so the frontal (`frontal.py`) and lateral (`lateral.py`) views of one seed
show one patient. Densities are in "how white" units that `exposure.expose` maps to grey.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from radialog.imaging.phantom.draw import smoothstep

VIEWS = ("PA", "AP", "LATERAL")
RIGHT, LEFT = 0, 1  # patient sides; RIGHT is drawn on the image left
SIGN = (-1.0, 1.0)  # x direction of each side

# Density units: roughly "how white". The exposure curve maps them to grey levels.
AIR_IN_LUNG = 0.40
SOFT_TISSUE = 0.55
METAL = 1.6


@dataclass
class Anatomy:
    """Per-seed geometry; findings may modify it before rendering."""

    width: float  # lung lateral extent from the midline (half thoracic width)
    body: float  # body half-width at the chest
    apex: float  # y of the lung apices
    full: float  # y where the lungs reach full width
    cp: float  # y of the costophrenic angles (lowest lung point)
    dome: list[float]  # dome height above cp, per side
    medial: float  # lung medial border (distance from midline)
    ctr: float  # cardiothoracic ratio
    heart_x: (
        float  # heart centre offset towards the patient's left, as a fraction of its half-width
    )
    heart_ay: float  # heart height / width
    heart_tilt: float
    med_w: float  # upper mediastinum half-width
    shift: float = 0.0  # mediastinal shift (+ towards the image right)
    trachea_w: float = 0.035
    carina: float = -0.25
    rib_y0: float = -0.80
    rib_gap: float = 0.105
    rib_t: float = 0.040
    rib_curve: float = 0.60
    rib_breaks: dict[tuple[int, int], tuple[float, float, float]] = field(default_factory=dict)
    clav_y: float = -0.72
    spine_w: float = 0.065
    breasts: float = 0.0
    gastric_bubble: bool = True
    collapse: list[float] = field(default_factory=lambda: [0.0, 0.0])  # pneumothorax depth
    edema: float = 0.0  # 0..1: vessel indistinctness
    atelectasis_side: int | None = None  # the collapsed side, set by the atelectasis modifier
    view: str = "PA"

    def lung_lateral(self, y: np.ndarray, side: int, inset: float = 0.0) -> np.ndarray:
        """Lateral lung border (distance from midline) at height y."""
        apex = self.apex + inset * 1.2
        t = np.clip((y - apex) / (self.full - apex), 0.0, 1.0)
        w = self.width - inset
        return self.medial + (w - self.medial) * np.sqrt(t)

    def dome_y(self, xa: np.ndarray, side: int) -> np.ndarray:
        """Diaphragm surface height at lateral distance xa (from midline) on a side."""
        mid = (self.medial + self.width) / 2.0
        half = (self.width - self.medial) / 2.0 * 1.08
        u = np.abs((xa - mid) / half)
        return self.cp - self.dome[side] * np.clip(1.0 - u**2.6, 0.0, 1.0)

    def heart_box(self) -> tuple[float, float, float, float]:
        """(centre x, centre y, semi-axis x, semi-axis y) of the cardiac silhouette."""
        ax = self.ctr * self.width
        ay = ax * self.heart_ay
        # About a third of the heart lies right of the midline; it rests on the left dome.
        cx = self.shift + self.heart_x * ax
        cy = self.cp - self.dome[LEFT] + 0.10 - ay
        return cx, cy, ax, ay

    def hilum(self, side: int) -> tuple[float, float]:
        return self.shift + SIGN[side] * (self.med_w + 0.07), self.carina + 0.08


def sample_anatomy(rng: np.random.Generator, view: str) -> Anatomy:
    width = rng.uniform(0.64, 0.76)
    apex = rng.uniform(-0.80, -0.70)
    cp = rng.uniform(0.42, 0.58)
    dome_r = rng.uniform(0.16, 0.24)
    return Anatomy(
        width=width,
        body=width + rng.uniform(0.10, 0.18),
        apex=apex,
        full=cp - rng.uniform(0.30, 0.40),
        cp=cp,
        dome=[dome_r, dome_r - rng.uniform(0.02, 0.06)],
        medial=rng.uniform(0.05, 0.07),
        ctr=rng.uniform(0.40, 0.47),
        heart_x=rng.uniform(0.28, 0.40),
        heart_ay=rng.uniform(0.62, 0.74),
        heart_tilt=rng.uniform(0.05, 0.25),
        med_w=rng.uniform(0.085, 0.105),
        trachea_w=rng.uniform(0.030, 0.040),
        carina=apex + rng.uniform(0.45, 0.55),
        rib_y0=apex + rng.uniform(-0.06, -0.02),
        rib_gap=rng.uniform(0.095, 0.11),
        rib_t=rng.uniform(0.036, 0.046),
        rib_curve=rng.uniform(0.95, 1.25),
        clav_y=apex + rng.uniform(0.02, 0.08) - (0.06 if view == "AP" else 0.0),
        spine_w=rng.uniform(0.055, 0.07),
        breasts=rng.uniform(0.05, 0.14) if rng.random() < 0.4 else 0.0,
        gastric_bubble=bool(rng.random() < 0.7),
        view=view,
    )


def marking_table(
    rng: np.random.Generator,
    *,
    trunks: int,
    width: float,
    amplitude: float,
    reach: float,
    n_theta: int = 512,
    n_r: int = 96,
    r_max: float = 1.2,
) -> np.ndarray:
    """Branching vessel (or bronchus) texture in polar coordinates around a hilum.

    Row = angle bin over [-pi, pi) (0 points laterally), column = radius bin over [0, r_max).
    """
    table = np.zeros((n_theta, n_r), np.float32)
    r = ((np.arange(n_r) + 0.5) / n_r * r_max).astype(np.float32)
    bin_w = 2 * math.pi / n_theta
    branches = []  # (theta, start, end, curl); all random draws first, in the original order
    for _ in range(trunks):
        theta0 = rng.uniform(-1.7, 1.6)
        branches.append((theta0, 0.04, rng.uniform(0.45, 0.8) * reach, rng.normal(0, 0.15)))
        for _ in range(rng.integers(2, 5)):
            start = rng.uniform(0.15, 0.5) * reach
            branches.append(
                (
                    theta0 + rng.normal(0, 0.12),
                    start,
                    start + rng.uniform(0.2, 0.45) * reach,
                    rng.normal(0, 0.45),
                )
            )
    # All branches at once as (branch, radius) arrays. Per-branch scalars are rounded to float32
    # exactly as numpy rounds a Python float meeting a float32 array, so every element is
    # computed with the same float32 operations as the one-branch-at-a-time loop.
    b = np.asarray(branches, np.float64)
    t0, start, end, curl = (b[:, i : i + 1].astype(np.float32) for i in range(4))
    span = np.maximum(b[:, 2:3] - b[:, 1:2], 1e-3).astype(np.float32)
    trunk = np.where(b[:, 1:2] < 0.1, np.float32(1.0), np.float32(0.7))
    centre = t0 + curl * np.clip(r - start, 0.0, None)
    along = np.clip((r - start) / span, 0.0, 1.0)
    w = np.float32(width) * (1.0 - 0.65 * along) * trunk
    ang_w = w / np.maximum(r, 0.06)
    on = smoothstep((r - start) / 0.03) * smoothstep((end - r) / 0.08)
    fade = np.float32(amplitude) * (1.0 - 0.6 * along)
    weight = on * fade
    reach_w = 3 * ang_w.max(axis=1)
    los = ((centre.min(axis=1) - reach_w + math.pi) / bin_w).astype(np.int64)
    his = ((centre.max(axis=1) + reach_w + math.pi) / bin_w).astype(np.int64) + 1
    for i in range(len(branches)):
        lo, hi = max(int(los[i]), 0), min(int(his[i]), n_theta)
        th = (np.arange(lo, hi, dtype=np.float32) + 0.5) * bin_w - math.pi
        g = np.exp(-(((th[:, None] - centre[i]) / ang_w[i]) ** 2))
        # max is order independent, so drawing branches in any order gives the same table
        np.maximum(table[lo:hi], g * weight[i], out=table[lo:hi])
    return table


def sample_polar(
    table: np.ndarray, x: np.ndarray, y: np.ndarray, hx: float, hy: float, s: float, r_max: float
) -> np.ndarray:
    n_theta, n_r = table.shape
    theta = np.arctan2(y - hy, s * (x - hx))
    rad = np.hypot(x - hx, y - hy)
    ti = ((theta + math.pi) * (n_theta / (2 * math.pi))).astype(np.int32) % n_theta
    ri = np.minimum((rad * (n_r / r_max)).astype(np.int32), n_r - 1)
    return table.ravel()[ti * n_r + ri]


# --------------------------------------------------------------------------- findings
# Anatomy modifiers run before the base render; painters add density after it.


def _mod_cardiomegaly(a: Anatomy, rng: np.random.Generator) -> None:
    a.ctr = rng.uniform(0.56, 0.68)
    a.heart_x *= rng.uniform(1.0, 1.2)  # enlarges mostly towards the left


def _mod_enlarged_cm(a: Anatomy, rng: np.random.Generator) -> None:
    a.med_w *= rng.uniform(1.6, 2.1)


def _mod_pneumothorax(a: Anatomy, rng: np.random.Generator) -> None:
    side = int(rng.integers(0, 2))
    a.collapse[side] = rng.uniform(0.07, 0.20)


def _mod_edema(a: Anatomy, rng: np.random.Generator) -> None:
    a.edema = rng.uniform(0.7, 1.0)


def _mod_atelectasis(a: Anatomy, rng: np.random.Generator) -> None:
    side = int(rng.integers(0, 2))
    # Volume loss: the hemidiaphragm rises and the mediastinum moves towards the collapse.
    a.dome[side] += rng.uniform(0.04, 0.09)
    a.shift += SIGN[side] * rng.uniform(0.0, 0.03)
    a.atelectasis_side = side


def _mod_fracture(a: Anatomy, rng: np.random.Generator) -> None:
    side = int(rng.integers(0, 2))  # fractures cluster on one side
    for _ in range(int(rng.integers(1, 4))):
        key = (side, int(rng.integers(2, 8)))
        a.rib_breaks[key] = (
            rng.uniform(0.5, 0.95),
            rng.uniform(0.02, 0.03),
            rng.uniform(0.025, 0.04),
        )


MODIFIERS: dict[str, Callable[[Anatomy, np.random.Generator], None]] = {
    "Cardiomegaly": _mod_cardiomegaly,
    "Enlarged Cardiomediastinum": _mod_enlarged_cm,
    "Pneumothorax": _mod_pneumothorax,
    "Edema": _mod_edema,
    "Atelectasis": _mod_atelectasis,
    "Fracture": _mod_fracture,
}
