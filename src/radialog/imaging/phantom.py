"""Synthetic chest radiograph phantoms (PA, AP, lateral) with controllable CheXpert findings.

These images are procedurally rendered, NOT real radiographs. They exist so that the whole
pipeline (classifier, adapter, report generation, metrics) can be trained and tested end to
end without restricted patient data: each finding has a visible, varied signature that a
small CNN can learn, while global statistics (exposure, body habitus, rotation) vary per
seed so that no finding is given away by mean brightness alone.

Conventions: bright = dense (MONOCHROME2); the patient's right is on the image left (PA).
All geometry is in normalised coordinates in [-1, 1] (see `_draw.Canvas`). The same seed
gives the same anatomy, exposure and noise whatever the findings, so adding a finding only
changes the pixels that finding touches. Lateral views (`_lateral.py`) show the same patient
as the frontal views of a seed. PA and AP bytes are frozen by a hash test: phantom datasets
cache them on disk and models are trained on them, so never change their output.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from radialog.errors import InvalidInputError
from radialog.imaging._draw import (
    Canvas,
    blob,
    curve_band,
    ring,
    smoothstep,
    soft_inside,
    stroke,
    upsample,
)
from radialog.labels import CHEXPERT_LABELS, NO_FINDING, canonical_label

logger = logging.getLogger(__name__)

VIEWS = ("PA", "AP", "LATERAL")
RIGHT, LEFT = 0, 1  # patient sides; RIGHT is drawn on the image left
_SIGN = (-1.0, 1.0)  # x direction of each side

# Density units: roughly "how white". The exposure curve maps them to grey levels.
_AIR_IN_LUNG = 0.40
_SOFT_TISSUE = 0.55
_METAL = 1.6


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
        return self.shift + _SIGN[side] * (self.med_w + 0.07), self.carina + 0.08


def _sample_anatomy(rng: np.random.Generator, view: str) -> Anatomy:
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


# --------------------------------------------------------------------------- rendering


@dataclass
class _Scene:
    """What the base render exposes to finding painters."""

    canvas: Canvas
    anatomy: Anatomy
    x: np.ndarray  # (1, n) normalised x
    y: np.ndarray  # (n, 1) normalised y
    lung: list[np.ndarray]  # soft lung masks per side (before the heart is subtracted)
    air: list[np.ndarray]  # per side: lung minus heart/mediastinum, where air shows
    lung_eff: np.ndarray  # both sides of `air` together
    markings: np.ndarray  # the vessel markings added; dense airspace disease hides them


def _lung_mask(a: Anatomy, side: int, x: np.ndarray, y: np.ndarray, inset: float = 0.0):
    """Soft lung mask of a side; `inset` shrinks it from the apex and lateral wall."""
    s = _SIGN[side]
    xa = s * (x - a.shift)
    eps = 0.012
    medial = xa - a.medial
    lateral = a.lung_lateral(y, side, inset) - xa
    bottom = a.dome_y(xa, side) - y
    margin = np.minimum(np.minimum(medial, lateral), bottom)
    return soft_inside(margin, eps), lateral


def _heart_mask(a: Anatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    cx, cy, ax, ay = a.heart_box()
    c, s = math.cos(a.heart_tilt), math.sin(a.heart_tilt)
    dx, dy = x - cx, y - cy
    u = (c * dx + s * dy) / ax
    v = (-s * dx + c * dy) / ay
    r = np.sqrt(u * u + v * v)
    return soft_inside((1.0 - r) * min(ax, ay), 0.012)


def _mediastinum_mask(a: Anatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Upper mediastinum, flaring smoothly into the cardiac silhouette below the carina."""
    hx, hy, ax, ay = a.heart_box()
    flare = smoothstep((y - (hy - 1.6 * ay)) / (1.2 * ay))
    half = a.med_w + (0.75 * ax - a.med_w) * flare
    centre = a.shift + (hx - a.shift) * flare
    inside_x = half - np.abs(x - centre)
    inside_y = np.minimum(y + 1.05, hy - y)
    return soft_inside(np.minimum(inside_x, inside_y), 0.012)


def _marking_table(
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


def _sample_polar(
    table: np.ndarray, x: np.ndarray, y: np.ndarray, hx: float, hy: float, s: float, r_max: float
) -> np.ndarray:
    n_theta, n_r = table.shape
    theta = np.arctan2(y - hy, s * (x - hx))
    rad = np.hypot(x - hx, y - hy)
    ti = ((theta + math.pi) * (n_theta / (2 * math.pi))).astype(np.int32) % n_theta
    ri = np.minimum((rad * (n_r / r_max)).astype(np.int32), n_r - 1)
    return table.ravel()[ti * n_r + ri]


def _render_base(a: Anatomy, rng: np.random.Generator, size: int) -> _Scene:
    cv = Canvas(size)
    x = cv.coords[None, :]
    y = cv.coords[:, None]
    d = cv.data

    # Soft tissue: neck, sloping shoulders, chest; thicker through the middle.
    neck_base = a.apex - 0.12
    shoulder = a.body + 0.16 * smoothstep((a.apex + 0.25 - y) / 0.35)
    slope = smoothstep((y - (neck_base - 0.2)) / 0.28)
    half = 0.26 + (shoulder - 0.26) * np.sqrt(slope)
    thick = np.sqrt(np.clip(1.0 - (x / half) ** 2, 0.0, 1.0))
    body = soft_inside(half - np.abs(x), 0.015)
    d += (0.12 + _SOFT_TISSUE * thick) * body
    # Arms beside the chest wall, separated by a darker axillary gap.
    arm_in = a.body + 0.05
    arm = soft_inside(np.minimum(np.abs(x) - arm_in, arm_in + 0.22 - np.abs(x)), 0.02)
    d += 0.35 * arm * smoothstep((y - (a.apex - 0.05)) / 0.2) * (1.0 - body)

    lungs = [_lung_mask(a, side, x, y)[0] for side in (RIGHT, LEFT)]
    heart = _heart_mask(a, x, y)
    medi = _mediastinum_mask(a, x, y)
    solid = np.maximum(heart, medi)
    air = [lung * (1.0 - solid) for lung in lungs]
    lung_eff = np.clip(air[0] + air[1], 0.0, 1.0)
    d -= _AIR_IN_LUNG * lung_eff
    d += 0.10 * solid

    # Upper abdomen under the domes (liver on the right is denser).
    for side in (RIGHT, LEFT):
        s = _SIGN[side]
        xa = s * (x - a.shift)
        below = soft_inside(y - a.dome_y(np.maximum(xa, a.medial), side), 0.015)
        d += (
            (0.12 if side == RIGHT else 0.09)
            * below
            * (xa > 0 if side == RIGHT else xa >= 0)
            * body
        )
    if a.gastric_bubble:
        gx = a.shift + a.width * rng.uniform(0.35, 0.6)
        gy = a.cp - a.dome[LEFT] + rng.uniform(0.08, 0.13)
        blob(cv, gx, gy, rng.uniform(0.05, 0.08), -0.18, edge=0.015, aspect=0.6)

    # Pulmonary vessels radiate from the hila and fade towards the periphery.
    markings = np.zeros_like(d)
    for side in (RIGHT, LEFT):
        hx, hy = a.hilum(side)
        table = _marking_table(
            rng,
            trunks=int(rng.integers(6, 9)),
            width=0.012 + 0.010 * a.edema,
            amplitude=0.075,
            reach=a.width * 0.95,
        )
        collapse = a.collapse[side]
        field_mask = (
            air[side] if collapse == 0 else _lung_mask(a, side, x, y, collapse)[0] * air[side]
        )
        rows, cols, xs, ys = cv.box(
            a.shift, a.shift + _SIGN[side] * (a.width + 0.05), a.apex - 0.02, a.cp + 0.02
        )
        mk = _sample_polar(table, xs, ys, hx, hy, _SIGN[side], 1.2)
        markings[rows, cols] += mk * field_mask[rows, cols]
        blob(cv, hx, hy + 0.03, 0.055, 0.08, edge=0.03, aspect=1.6)
    if a.edema:
        # Indistinct vessels: blur the marking field itself.
        markings = ndimage.gaussian_filter(markings, sigma=1.2 * a.edema * size / 256, truncate=2.0)
    d += markings

    # Trachea and main bronchi: air column in the mediastinum.
    tx = a.shift
    stroke(cv, [(tx, -1.0), (tx, a.carina)], 2 * a.trachea_w, -0.22, soft=0.01)
    for side in (RIGHT, LEFT):
        s = _SIGN[side]
        stroke(
            cv,
            [
                (tx, a.carina - 0.01),
                (tx + s * 0.08, a.carina + 0.08),
                (tx + s * 0.12, a.carina + 0.15),
            ],
            1.3 * a.trachea_w,
            -0.12,
            soft=0.01,
        )
    # Aortic knob.
    blob(cv, a.shift + a.med_w + 0.012, a.carina - 0.07, 0.045, 0.08, edge=0.012)

    _draw_spine(cv, a)
    _draw_ribs(cv, a, x, y)
    _draw_clavicles(cv, a)
    if a.breasts:
        for side in (RIGHT, LEFT):
            bx = a.shift + _SIGN[side] * a.width * 0.62
            blob(cv, bx, a.cp - 0.02, 0.33, a.breasts, edge=0.06, aspect=0.75)
    return _Scene(cv, a, x, y, lungs, air, lung_eff, markings)


def _draw_spine(cv: Canvas, a: Anatomy) -> None:
    rows, cols, xs, ys = cv.box(a.shift - 2 * a.spine_w, a.shift + 2 * a.spine_w, a.apex - 0.2, 1.0)
    inside = soft_inside(a.spine_w - np.abs(xs - a.shift), 0.012)
    # Vertebral bodies with end plates, and pedicles as paired ovals.
    phase = np.mod((ys - a.rib_y0) / a.rib_gap, 1.0)
    plates = smoothstep((np.abs(phase - 0.5) - 0.36) / 0.12)
    ped = np.exp(
        -(((np.abs(xs - a.shift) - 0.7 * a.spine_w) / 0.012) ** 2) - ((phase - 0.5) / 0.15) ** 2
    )
    fade = smoothstep((ys - (a.apex - 0.2)) / 0.15)
    cv.data[rows, cols] += (inside * (0.035 + 0.025 * plates) + 0.025 * ped) * fade


def _draw_ribs(cv: Canvas, a: Anatomy, x: np.ndarray, y: np.ndarray) -> None:
    """All posterior and anterior ribs of a side as one periodic field (fast, parallel arcs)."""
    for side in (RIGHT, LEFT):
        s = _SIGN[side]
        start = a.spine_w + 0.01
        rows, cols, xs, ys = cv.box(a.shift, a.shift + s * (a.body + 0.02), a.rib_y0 - 0.2, 1.0)
        t = np.maximum(s * (xs - a.shift) - start, 0.0)
        wall = a.body - 0.02 - start
        band = _rib_field(a, t, ys, wall)
        for (bside, index), (frac, gap, step) in a.rib_breaks.items():
            if bside != side:
                continue
            # Fracture: the lateral fragment steps down and a lucent gap crosses the rib.
            bt = frac * (a.width - start)
            lateral = t > bt
            k = _rib_index(a, t, ys)
            ks = _rib_index(a, t, ys - step)
            own = (np.floor(k) == index) & lateral
            shifted = _rib_field(a, t, ys - step, wall) * ((np.floor(ks) == index) & lateral)
            band = np.where(own, 0.0, band) + shifted
            band *= 1.0 - (np.floor(np.maximum(k, ks)) == index) * (np.abs(t - bt) < gap / 2)
        # Ribs show over the thorax; the dense abdomen below the domes hides them partly.
        thorax = smoothstep((ys - (a.apex - 0.08)) / 0.05) * soft_inside(
            a.width + 0.07 - np.abs(xs - a.shift), 0.02
        )
        hidden = 1.0 - 0.6 * smoothstep((ys - (a.cp - a.dome[side])) / 0.1)
        cv.data[rows, cols] += 0.085 * band * thorax * hidden
        # Anterior ribs: fainter, running down and in from the lateral wall.
        xa = s * (xs - a.shift)
        lat = a.lung_lateral(ys, side) + 0.04
        phi = (ys - a.rib_y0 - 0.10 - 0.45 * (lat - xa)) / a.rib_gap
        frac = phi - np.floor(phi)
        u = np.abs(frac - 0.5) / (0.4 * a.rib_t / a.rib_gap)
        ant = soft_inside(1.0 - u, 0.3) * soft_inside(xa - 0.28, 0.05) * soft_inside(lat - xa, 0.02)
        ant *= (phi > 0) & (phi < 7)
        cv.data[rows, cols] += 0.035 * ant


def _rib_index(a: Anatomy, t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fractional rib number of the posterior rib passing through (t, y).

    Rib k follows y = y0 - 0.30 t + c(y0) t^2 with y0 = rib_y0 + k * gap and a curvature that
    grows for lower ribs; solved for y0 in closed form.
    """
    c0, c1 = a.rib_curve, 0.35
    t2 = t * t
    y0 = (y + 0.30 * t - c0 * t2 + c1 * a.rib_y0 * t2) / (1.0 + c1 * t2)
    return (y0 - a.rib_y0) / a.rib_gap


def _rib_field(a: Anatomy, t: np.ndarray, y: np.ndarray, wall: float) -> np.ndarray:
    k = _rib_index(a, t, y)
    frac = k - np.floor(k)
    u = np.abs(frac - 0.5) / (0.5 * a.rib_t / a.rib_gap)
    body = soft_inside(1.0 - u, 0.25)
    cortex = smoothstep((u - 0.5) / 0.4)
    ends = smoothstep(t / 0.03) * smoothstep((wall - t) / 0.06)
    return body * (1.0 + 0.8 * cortex) * ends * ((k > 0) & (k < 10))


def _draw_clavicles(cv: Canvas, a: Anatomy) -> None:
    for side in (RIGHT, LEFT):
        s = _SIGN[side]
        x0 = a.shift + s * 0.06
        x1 = a.shift + s * (a.width + 0.14)

        def f(xs: np.ndarray, x0=x0, x1=x1, s=s) -> np.ndarray:
            t = s * (xs - x0) / abs(x1 - x0)
            return a.clav_y - 0.10 * t + 0.035 * np.sin(2 * math.pi * t)

        curve_band(cv, x0, x1, f, 0.05, 0.09, cortex=0.6)
        # Humeral head at the shoulder.
        blob(cv, a.shift + s * (a.body + 0.12), a.clav_y + 0.06, 0.10, 0.12, edge=0.02)


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
    a.shift += _SIGN[side] * rng.uniform(0.0, 0.03)
    a._atelectasis_side = side  # type: ignore[attr-defined]


def _mod_fracture(a: Anatomy, rng: np.random.Generator) -> None:
    side = int(rng.integers(0, 2))  # fractures cluster on one side
    for _ in range(int(rng.integers(1, 4))):
        key = (side, int(rng.integers(2, 8)))
        a.rib_breaks[key] = (
            rng.uniform(0.5, 0.95),
            rng.uniform(0.02, 0.03),
            rng.uniform(0.025, 0.04),
        )


_MODIFIERS: dict[str, Callable[[Anatomy, np.random.Generator], None]] = {
    "Cardiomegaly": _mod_cardiomegaly,
    "Enlarged Cardiomediastinum": _mod_enlarged_cm,
    "Pneumothorax": _mod_pneumothorax,
    "Edema": _mod_edema,
    "Atelectasis": _mod_atelectasis,
    "Fracture": _mod_fracture,
}


def _random_lung_point(sc: _Scene, rng: np.random.Generator, side: int, zone=(0.2, 0.85)):
    a = sc.anatomy
    y = a.apex + (a.cp - a.dome[side] - a.apex) * rng.uniform(*zone)
    lat = float(a.lung_lateral(np.float32(y), side))
    inner = a.medial + 0.12 + (a.ctr * a.width if y > a.carina + 0.2 and side == LEFT else 0.0)
    xa = rng.uniform(min(inner, lat - 0.12), lat - 0.08)
    return a.shift + _SIGN[side] * xa, y


def _paint_effusion(sc: _Scene, rng: np.random.Generator) -> None:
    a = sc.anatomy
    sides = [int(rng.integers(0, 2))] if rng.random() < 0.6 else [RIGHT, LEFT]
    for side in sides:
        s = _SIGN[side]
        xa = s * (sc.x - a.shift)
        top = a.cp - a.dome[side]
        level = top - rng.uniform(0.0, 0.25)  # fluid surface height (medially)
        # Meniscus: the fluid climbs the lateral chest wall.
        lat = a.width
        climb = rng.uniform(0.08, 0.20) * np.clip(xa / lat, 0.0, 1.2) ** 3
        surface = level - climb
        fluid = smoothstep((sc.y - surface) / 0.07)
        fluid = fluid * sc.air[side]
        sc.canvas.data += (_AIR_IN_LUNG + 0.05) * fluid - sc.markings * fluid


def _paint_pneumothorax(sc: _Scene, rng: np.random.Generator) -> None:
    a = sc.anatomy
    for side in (RIGHT, LEFT):
        inset = a.collapse[side]
        if not inset:
            continue
        collapsed, lateral = _lung_mask(a, side, sc.x, sc.y, inset)
        space = np.clip(sc.air[side] - collapsed, 0.0, 1.0)
        sc.canvas.data -= 0.08 * space
        # The visceral pleural line: a thin white line at the collapsed lung edge.
        line = np.exp(-((lateral / (1.2 * sc.canvas.px)) ** 2)) * sc.air[side]
        sc.canvas.data += 0.14 * line


def _paint_opacity(sc: _Scene, rng: np.random.Generator) -> None:
    """Ill-defined hazy (ground-glass) area; vessels stay visible through it."""
    side = int(rng.integers(0, 2))
    for _ in range(int(rng.integers(1, 3))):
        cx, cy = _random_lung_point(sc, rng, side, (0.3, 0.85))
        tmp = np.zeros_like(sc.canvas.data)
        blob(
            sc.canvas,
            cx,
            cy,
            rng.uniform(0.12, 0.2),
            rng.uniform(0.13, 0.2),
            edge=0.09,
            target=tmp,
            aspect=rng.uniform(0.7, 1.3),
        )
        sc.canvas.data += tmp * sc.air[side]


def _airspace(
    sc: _Scene,
    rng: np.random.Generator,
    region: np.ndarray,
    density: float,
    side: int,
    bronchograms: float,
) -> None:
    a = sc.anatomy
    n = sc.canvas.size
    lumps = upsample(rng.random((8, 8)).astype(np.float32), n, n)
    fill = region * (0.75 + 0.5 * lumps) * sc.air[side]
    sc.canvas.data += density * fill - sc.markings * np.clip(fill, 0.0, 1.0) * 0.8
    if bronchograms:
        hx, hy = a.hilum(side)
        table = _marking_table(rng, trunks=10, width=0.010, amplitude=1.0, reach=a.width)
        tubes = _sample_polar(table, sc.x, sc.y, hx, hy, _SIGN[side], 1.2)
        sc.canvas.data -= bronchograms * tubes * fill


def _lobe_region(sc: _Scene, rng: np.random.Generator, side: int) -> np.ndarray:
    a = sc.anatomy
    s = _SIGN[side]
    xa = s * (sc.x - a.shift)
    choice = rng.integers(0, 3)
    if choice == 0:  # upper lobe: above the (horizontal) fissure
        fissure = a.carina + rng.uniform(0.1, 0.2) + 0.05 * xa
        return soft_inside(fissure - sc.y, 0.01) * np.ones_like(xa)
    if choice == 1:  # lower lobe: below an oblique line rising laterally
        fissure = a.carina + rng.uniform(0.2, 0.35) - 0.25 * xa
        return soft_inside(sc.y - fissure, 0.03) * np.ones_like(xa)
    # middle/lingula: lower zone next to the heart border (silhouettes it)
    return soft_inside(sc.y - (a.carina + 0.25), 0.04) * soft_inside(0.45 * a.width - xa, 0.05)


def _paint_consolidation(sc: _Scene, rng: np.random.Generator) -> None:
    side = int(rng.integers(0, 2))
    _airspace(sc, rng, _lobe_region(sc, rng, side), rng.uniform(0.30, 0.38), side, 0.18)


def _paint_pneumonia(sc: _Scene, rng: np.random.Generator) -> None:
    """Multifocal, patchy, fluffy airspace disease with a few bronchograms."""
    side = int(rng.integers(0, 2))
    tmp = np.zeros_like(sc.canvas.data)
    cx, cy = _random_lung_point(sc, rng, side, (0.45, 0.9))
    for _ in range(int(rng.integers(3, 7))):
        blob(
            sc.canvas,
            cx + rng.normal(0, 0.08),
            cy + rng.normal(0, 0.08),
            rng.uniform(0.04, 0.09),
            1.0,
            edge=0.04,
            target=tmp,
            lobes=(5, 0.25, rng.uniform(0, 6.3)),
        )
    region = np.clip(tmp, 0.0, 1.0)
    _airspace(sc, rng, region, rng.uniform(0.22, 0.3), side, 0.08)


def _paint_edema(sc: _Scene, rng: np.random.Generator) -> None:
    a = sc.anatomy
    amp = rng.uniform(0.14, 0.22)
    haze = np.zeros_like(sc.canvas.data)
    for side in (RIGHT, LEFT):
        hx, hy = a.hilum(side)
        blob(
            sc.canvas,
            hx + _SIGN[side] * 0.08,
            hy + 0.05,
            rng.uniform(0.3, 0.4),
            amp,
            edge=0.2,
            target=haze,
            aspect=1.2,
        )
        haze *= 1.0
        sc.canvas.data += haze * sc.air[side]
        haze[:] = 0
        # Kerley B lines: short horizontal lines touching the lateral pleura at the bases.
        for _ in range(int(rng.integers(5, 10))):
            y = a.cp - a.dome[side] - rng.uniform(0.02, 0.22)
            lat = float(a.lung_lateral(np.float32(y), side))
            length = rng.uniform(0.04, 0.08)
            x0 = a.shift + _SIGN[side] * (lat - 0.005)
            x1 = a.shift + _SIGN[side] * (lat - length)
            stroke(sc.canvas, [(x0, y), (x1, y + rng.normal(0, 0.004))], 0.006, 0.15)


def _paint_atelectasis(sc: _Scene, rng: np.random.Generator) -> None:
    a = sc.anatomy
    side = getattr(a, "_atelectasis_side", int(rng.integers(0, 2)))
    s = _SIGN[side]
    if rng.random() < 0.5:
        # Plate-like (discoid): thin linear densities in the lower zone.
        for _ in range(int(rng.integers(1, 4))):
            cx, cy = _random_lung_point(sc, rng, side, (0.6, 0.9))
            half = rng.uniform(0.08, 0.16)
            tilt = rng.normal(0, 0.08)
            stroke(
                sc.canvas,
                [(cx - half, cy - tilt * half), (cx + half, cy + tilt * half)],
                rng.uniform(0.015, 0.025),
                0.3,
                soft=0.008,
            )
    else:
        # Lobar collapse: a dense wedge from the hilum to the medial diaphragm.
        hx, hy = a.hilum(side)
        base_y = a.cp - a.dome[side] + 0.02
        inner = a.shift + s * (a.medial + 0.02)
        outer = a.shift + s * rng.uniform(0.3, 0.45) * a.width
        rows, cols, xs, ys = sc.canvas.box(min(inner, outer, hx), max(inner, outer, hx), hy, base_y)
        t = np.clip((ys - hy) / max(base_y - hy, 1e-3), 0.0, 1.0)
        edge_x = hx + (outer - hx) * t
        inside = soft_inside((s * (edge_x - xs)), 0.015) * soft_inside(
            s * (xs - inner) + 0.02, 0.01
        )
        sc.canvas.data[rows, cols] += 0.28 * inside * sc.air[side][rows, cols]


def _paint_lesion(sc: _Scene, rng: np.random.Generator) -> None:
    side = int(rng.integers(0, 2))
    cx, cy = _random_lung_point(sc, rng, side, (0.15, 0.85))
    mass = rng.random() < 0.35
    radius = rng.uniform(0.06, 0.11) if mass else rng.uniform(0.025, 0.05)
    blob(
        sc.canvas,
        cx,
        cy,
        radius,
        rng.uniform(0.22, 0.32),
        edge=0.006 + 0.05 * radius,
        lobes=(int(rng.integers(3, 7)), rng.uniform(0.0, 0.15), rng.uniform(0, 6.3)),
    )


def _paint_pleural_other(sc: _Scene, rng: np.random.Generator) -> None:
    """Pleural thickening along the lateral wall or as an apical cap, maybe calcified plaques."""
    a = sc.anatomy
    side = int(rng.integers(0, 2))
    inset = rng.uniform(0.035, 0.06)
    _, lateral = _lung_mask(a, side, sc.x, sc.y, 0.0)
    band = soft_inside(lateral, 0.006) * soft_inside(inset - lateral, 0.01)
    n = sc.canvas.size
    wobble = upsample(rng.random((12, 1)).astype(np.float32), n, 1)
    apical = rng.random() < 0.35
    ys = sc.y
    zone_top = a.apex if apical else a.apex + 0.3
    zone_bot = a.apex + 0.3 if apical else a.cp - a.dome[side]
    zone = soft_inside(np.minimum(ys - zone_top, zone_bot - ys), 0.05)
    sc.canvas.data += (
        0.38 * band * zone * (0.6 + 0.8 * wobble) * (_SIGN[side] * (sc.x - a.shift) > 0)
    )
    if rng.random() < 0.5:
        for _ in range(int(rng.integers(2, 5))):
            y = rng.uniform(zone_top + 0.05, zone_bot - 0.05)
            lat = float(a.lung_lateral(np.float32(y), side))
            blob(
                sc.canvas,
                a.shift + _SIGN[side] * (lat - 0.015),
                y,
                0.02,
                0.35,
                edge=0.006,
                aspect=2.0,
            )


def _paint_devices(sc: _Scene, rng: np.random.Generator) -> None:
    a = sc.anatomy
    cv = sc.canvas
    kinds = [k for k in ("ett", "line", "pacer", "wires") if rng.random() < 0.5]
    if not kinds:
        kinds = [("ett", "line", "pacer", "wires")[int(rng.integers(0, 4))]]
    if "ett" in kinds:
        tip = a.carina - rng.uniform(0.06, 0.16)
        tx = a.shift + rng.normal(0, 0.005)
        for dx in (-0.018, 0.018):
            stroke(cv, [(tx + dx, -1.0), (tx + dx, tip)], 0.006, 0.22)
        stroke(cv, [(tx - 0.012, -1.0), (tx - 0.012, tip)], 0.005, _METAL * 0.6)
    if "line" in kinds:
        side = int(rng.integers(0, 2))
        s = _SIGN[side]
        cx_, cy_, ax_, ay_ = a.heart_box()
        pts = _bezier(
            (a.shift + s * (a.width * 0.8), a.clav_y + 0.06),
            (a.shift + s * 0.15, a.clav_y + 0.02),
            (a.shift - 0.11, a.carina - 0.05),
            (a.shift - 0.10, cy_ - ay_ * rng.uniform(0.4, 0.8)),
        )
        stroke(cv, pts, 0.008, _METAL * 0.5)
    if "pacer" in kinds:
        gx = a.shift + a.width * rng.uniform(0.45, 0.65)
        gy = a.clav_y + rng.uniform(0.12, 0.2)
        rows, cols, xs, ys = cv.box(gx - 0.1, gx + 0.1, gy - 0.08, gy + 0.08)
        rect = soft_inside(np.minimum(0.075 - np.abs(xs - gx), 0.05 - np.abs(ys - gy)), 0.008)
        cv.data[rows, cols] += _METAL * rect
        cx_, cy_, ax_, ay_ = a.heart_box()
        for k in range(int(rng.integers(1, 3))):
            end = (cx_ + ax_ * rng.uniform(0.1, 0.5), cy_ + ay_ * rng.uniform(0.2, 0.6))
            pts = _bezier(
                (gx - 0.05, gy), (a.shift + 0.02, gy + 0.02 * k), (a.shift - 0.08, cy_ - ay_), end
            )
            stroke(cv, pts, 0.007, _METAL * 0.6)
    if "wires" in kinds:
        top = a.carina - 0.2
        for k in range(int(rng.integers(4, 7))):
            y = top + k * rng.uniform(0.09, 0.11)
            ring(cv, a.shift + rng.normal(0, 0.006), y, 0.022, 0.012, 0.007, _METAL * 0.7)


def _bezier(*pts: tuple[float, float], n: int = 24) -> np.ndarray:
    p = np.asarray(pts, np.float32)
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
    # Cubic Bezier through four control points.
    return (
        (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t**2 * p[2] + t**3 * p[3]
    )


_PAINTERS: dict[str, Callable[[_Scene, np.random.Generator], None]] = {
    "Pleural Effusion": _paint_effusion,
    "Pneumothorax": _paint_pneumothorax,
    "Lung Opacity": _paint_opacity,
    "Consolidation": _paint_consolidation,
    "Pneumonia": _paint_pneumonia,
    "Edema": _paint_edema,
    "Atelectasis": _paint_atelectasis,
    "Lung Lesion": _paint_lesion,
    "Pleural Other": _paint_pleural_other,
    "Support Devices": _paint_devices,
}

PHANTOM_FINDINGS: tuple[str, ...] = tuple(
    name
    for name in CHEXPERT_LABELS
    if name == NO_FINDING or name in _MODIFIERS or name in _PAINTERS
)


# --------------------------------------------------------------------------- public API


def render_phantom(
    findings: Iterable[str], seed: int, size: int = 512, view: str = "PA"
) -> np.ndarray:
    """Render a synthetic chest radiograph (uint8, size x size) with the given findings.

    findings: CheXpert label names (any case); "No Finding" or an empty list gives a clean
    chest. view: "PA", "AP" or "LATERAL" (any case); a lateral shows the same patient as the
    frontal views of that seed. Deterministic for (findings, seed, size, view); the order of
    findings is irrelevant.
    """
    wanted = _validate(findings, seed, size, view)
    view = view.upper()
    rng_anatomy = np.random.default_rng([seed, 0])
    anatomy = _sample_anatomy(rng_anatomy, view)
    exposure = _sample_exposure(rng_anatomy, size)
    if view.upper() == "AP":
        anatomy.ctr *= 1.06  # AP projection magnifies the heart
    finding_rngs = {
        name: np.random.default_rng([seed, 1, CHEXPERT_LABELS.index(name)]) for name in wanted
    }
    for name in wanted:
        if name in _MODIFIERS:
            _MODIFIERS[name](anatomy, finding_rngs[name])
    if view == "LATERAL":
        from radialog.imaging._lateral import render_lateral  # imports this module

        density = render_lateral(anatomy, wanted, finding_rngs, seed, size)
        return _expose(density, exposure, np.random.default_rng([seed, 3]))
    scene = _render_base(anatomy, np.random.default_rng([seed, 2]), size)
    for name in wanted:
        if name in _PAINTERS:
            _PAINTERS[name](scene, finding_rngs[name])
    return _expose(scene.canvas.data, exposure, np.random.default_rng([seed, 3]))


@dataclass(frozen=True)
class _Exposure:
    angle: float
    zoom: float
    shift: tuple[float, float]
    gain: float
    gamma: float
    black: float
    white: float
    noise: float
    size: int


def _sample_exposure(rng: np.random.Generator, size: int) -> _Exposure:
    return _Exposure(
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


def _expose(density: np.ndarray, e: _Exposure, rng: np.random.Generator) -> np.ndarray:
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


def _validate(findings: Iterable[str], seed: int, size: int, view: str) -> list[str]:
    if isinstance(findings, str):
        findings = [f for f in findings.split(",") if f.strip()]
    names: set[str] = set()
    for item in findings:
        try:
            name = canonical_label(item)
        except ValueError:
            raise InvalidInputError(
                f"unknown finding {item!r}; the phantom renders: {', '.join(PHANTOM_FINDINGS)}"
            ) from None
        if name not in PHANTOM_FINDINGS:
            raise InvalidInputError(
                f"the phantom cannot render {name!r}; it renders: {', '.join(PHANTOM_FINDINGS)}"
            )
        names.add(name)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}")
    if not 64 <= size <= 4096:
        raise InvalidInputError(f"size must be between 64 and 4096 pixels, got {size}")
    if not isinstance(view, str) or view.upper() not in VIEWS:
        raise InvalidInputError(
            f"view {view!r} is not supported by the phantom; use one of: {', '.join(VIEWS)}"
        )
    return [name for name in CHEXPERT_LABELS if name in names and name != NO_FINDING]
