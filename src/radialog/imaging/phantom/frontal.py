"""The frontal (PA / AP) phantom: the base chest of an `Anatomy` and each finding's painter.

Procedurally rendered, NOT a real radiograph. PA and AP bytes are frozen by a hash test
(phantom datasets cache them and models are trained on them): never change their output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from radialog.imaging.phantom.anatomy import (
    AIR_IN_LUNG,
    LEFT,
    METAL,
    RIGHT,
    SIGN,
    SOFT_TISSUE,
    Anatomy,
    marking_table,
    sample_polar,
)
from radialog.imaging.phantom.draw import (
    Canvas,
    bezier,
    blob,
    curve_band,
    ring,
    smoothstep,
    soft_inside,
    stroke,
    upsample,
)

# --------------------------------------------------------------------------- rendering


@dataclass
class FrontalScene:
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
    s = SIGN[side]
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


def render_frontal_base(a: Anatomy, rng: np.random.Generator, size: int) -> FrontalScene:
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
    d += (0.12 + SOFT_TISSUE * thick) * body
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
    d -= AIR_IN_LUNG * lung_eff
    d += 0.10 * solid

    # Upper abdomen under the domes (liver on the right is denser).
    for side in (RIGHT, LEFT):
        s = SIGN[side]
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
        table = marking_table(
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
            a.shift, a.shift + SIGN[side] * (a.width + 0.05), a.apex - 0.02, a.cp + 0.02
        )
        mk = sample_polar(table, xs, ys, hx, hy, SIGN[side], 1.2)
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
        s = SIGN[side]
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
            bx = a.shift + SIGN[side] * a.width * 0.62
            blob(cv, bx, a.cp - 0.02, 0.33, a.breasts, edge=0.06, aspect=0.75)
    return FrontalScene(cv, a, x, y, lungs, air, lung_eff, markings)


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
        s = SIGN[side]
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
        s = SIGN[side]
        x0 = a.shift + s * 0.06
        x1 = a.shift + s * (a.width + 0.14)

        def f(xs: np.ndarray, x0=x0, x1=x1, s=s) -> np.ndarray:
            t = s * (xs - x0) / abs(x1 - x0)
            return a.clav_y - 0.10 * t + 0.035 * np.sin(2 * math.pi * t)

        curve_band(cv, x0, x1, f, 0.05, 0.09, cortex=0.6)
        # Humeral head at the shoulder.
        blob(cv, a.shift + s * (a.body + 0.12), a.clav_y + 0.06, 0.10, 0.12, edge=0.02)


def _random_lung_point(sc: FrontalScene, rng: np.random.Generator, side: int, zone=(0.2, 0.85)):
    a = sc.anatomy
    y = a.apex + (a.cp - a.dome[side] - a.apex) * rng.uniform(*zone)
    lat = float(a.lung_lateral(np.float32(y), side))
    inner = a.medial + 0.12 + (a.ctr * a.width if y > a.carina + 0.2 and side == LEFT else 0.0)
    xa = rng.uniform(min(inner, lat - 0.12), lat - 0.08)
    return a.shift + SIGN[side] * xa, y


def _paint_effusion(sc: FrontalScene, rng: np.random.Generator) -> None:
    a = sc.anatomy
    sides = [int(rng.integers(0, 2))] if rng.random() < 0.6 else [RIGHT, LEFT]
    for side in sides:
        s = SIGN[side]
        xa = s * (sc.x - a.shift)
        top = a.cp - a.dome[side]
        level = top - rng.uniform(0.0, 0.25)  # fluid surface height (medially)
        # Meniscus: the fluid climbs the lateral chest wall.
        lat = a.width
        climb = rng.uniform(0.08, 0.20) * np.clip(xa / lat, 0.0, 1.2) ** 3
        surface = level - climb
        fluid = smoothstep((sc.y - surface) / 0.07)
        fluid = fluid * sc.air[side]
        sc.canvas.data += (AIR_IN_LUNG + 0.05) * fluid - sc.markings * fluid


def _paint_pneumothorax(sc: FrontalScene, rng: np.random.Generator) -> None:
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


def _paint_opacity(sc: FrontalScene, rng: np.random.Generator) -> None:
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
    sc: FrontalScene,
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
        table = marking_table(rng, trunks=10, width=0.010, amplitude=1.0, reach=a.width)
        tubes = sample_polar(table, sc.x, sc.y, hx, hy, SIGN[side], 1.2)
        sc.canvas.data -= bronchograms * tubes * fill


def _lobe_region(sc: FrontalScene, rng: np.random.Generator, side: int) -> np.ndarray:
    a = sc.anatomy
    s = SIGN[side]
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


def _paint_consolidation(sc: FrontalScene, rng: np.random.Generator) -> None:
    side = int(rng.integers(0, 2))
    _airspace(sc, rng, _lobe_region(sc, rng, side), rng.uniform(0.30, 0.38), side, 0.18)


def _paint_pneumonia(sc: FrontalScene, rng: np.random.Generator) -> None:
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


def _paint_edema(sc: FrontalScene, rng: np.random.Generator) -> None:
    a = sc.anatomy
    amp = rng.uniform(0.14, 0.22)
    haze = np.zeros_like(sc.canvas.data)
    for side in (RIGHT, LEFT):
        hx, hy = a.hilum(side)
        blob(
            sc.canvas,
            hx + SIGN[side] * 0.08,
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
            x0 = a.shift + SIGN[side] * (lat - 0.005)
            x1 = a.shift + SIGN[side] * (lat - length)
            stroke(sc.canvas, [(x0, y), (x1, y + rng.normal(0, 0.004))], 0.006, 0.15)


def _paint_atelectasis(sc: FrontalScene, rng: np.random.Generator) -> None:
    a = sc.anatomy
    # A side is always drawn (the image bytes depend on this stream); the modifier's wins.
    drawn = int(rng.integers(0, 2))
    side = drawn if a.atelectasis_side is None else a.atelectasis_side
    s = SIGN[side]
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


def _paint_lesion(sc: FrontalScene, rng: np.random.Generator) -> None:
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


def _paint_pleural_other(sc: FrontalScene, rng: np.random.Generator) -> None:
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
        0.38 * band * zone * (0.6 + 0.8 * wobble) * (SIGN[side] * (sc.x - a.shift) > 0)
    )
    if rng.random() < 0.5:
        for _ in range(int(rng.integers(2, 5))):
            y = rng.uniform(zone_top + 0.05, zone_bot - 0.05)
            lat = float(a.lung_lateral(np.float32(y), side))
            blob(
                sc.canvas,
                a.shift + SIGN[side] * (lat - 0.015),
                y,
                0.02,
                0.35,
                edge=0.006,
                aspect=2.0,
            )


def _paint_devices(sc: FrontalScene, rng: np.random.Generator) -> None:
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
        stroke(cv, [(tx - 0.012, -1.0), (tx - 0.012, tip)], 0.005, METAL * 0.6)
    if "line" in kinds:
        side = int(rng.integers(0, 2))
        s = SIGN[side]
        cx_, cy_, ax_, ay_ = a.heart_box()
        pts = bezier(
            (a.shift + s * (a.width * 0.8), a.clav_y + 0.06),
            (a.shift + s * 0.15, a.clav_y + 0.02),
            (a.shift - 0.11, a.carina - 0.05),
            (a.shift - 0.10, cy_ - ay_ * rng.uniform(0.4, 0.8)),
        )
        stroke(cv, pts, 0.008, METAL * 0.5)
    if "pacer" in kinds:
        gx = a.shift + a.width * rng.uniform(0.45, 0.65)
        gy = a.clav_y + rng.uniform(0.12, 0.2)
        rows, cols, xs, ys = cv.box(gx - 0.1, gx + 0.1, gy - 0.08, gy + 0.08)
        rect = soft_inside(np.minimum(0.075 - np.abs(xs - gx), 0.05 - np.abs(ys - gy)), 0.008)
        cv.data[rows, cols] += METAL * rect
        cx_, cy_, ax_, ay_ = a.heart_box()
        for k in range(int(rng.integers(1, 3))):
            end = (cx_ + ax_ * rng.uniform(0.1, 0.5), cy_ + ay_ * rng.uniform(0.2, 0.6))
            pts = bezier(
                (gx - 0.05, gy), (a.shift + 0.02, gy + 0.02 * k), (a.shift - 0.08, cy_ - ay_), end
            )
            stroke(cv, pts, 0.007, METAL * 0.6)
    if "wires" in kinds:
        top = a.carina - 0.2
        for k in range(int(rng.integers(4, 7))):
            y = top + k * rng.uniform(0.09, 0.11)
            ring(cv, a.shift + rng.normal(0, 0.006), y, 0.022, 0.012, 0.007, METAL * 0.7)


PAINTERS: dict[str, Callable[[FrontalScene, np.random.Generator], None]] = {
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
