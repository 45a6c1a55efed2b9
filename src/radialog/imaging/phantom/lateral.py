"""Lateral chest phantom: the same synthetic patient as the frontal phantom, seen from the side.

Procedurally rendered, NOT a real radiograph (see the package `radialog.imaging.phantom`). Displayed the usual way for a
left lateral: the patient faces the image left, so the sternum is on the left (x < 0) and the
spine on the right. Both lungs superimpose; each has its own hemidiaphragm (the right one is
higher, the left one is silhouetted anteriorly by the heart) and the lung farther from the
detector (the right) is slightly magnified, which doubles the posterior ribs and sulci.

The frontal `Anatomy` of the seed (after the finding modifiers ran) drives the lateral one:
heart size, lung height, dome heights, carina and vertebral spacing are shared, so a PA and a
lateral of the same seed show one patient. Lateral-only geometry comes from its own random
stream, so adding the lateral view changed nothing in the frontal images.
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
    SOFT_TISSUE,
    Anatomy,
    marking_table,
    sample_polar,
)
from radialog.imaging.phantom.draw import (
    Canvas,
    bezier,
    blob,
    ring,
    smoothstep,
    soft_inside,
    stroke,
    upsample,
)

_MAGNIFY = (1.035, 1.0)  # per side: the right lung lies farther from the detector
_AIR_LAT = 0.75 * AIR_IN_LUNG  # air of both lungs together (a thicker body around them)


@dataclass
class LateralAnatomy:
    """Side-view geometry; `f` is the frontal anatomy of the same seed."""

    f: Anatomy
    depth: float  # half the anteroposterior lung depth at mid height
    xc: float  # x of the middle of the lungs
    stern_slope: float  # the sternum leans: its lower end is more anterior
    kyphosis: float  # the posterior chest wall bows backwards
    apex_x: float  # x of the lung apices (they sit posteriorly)
    vb_front: float  # vertebral body front, as a distance in front of the posterior wall
    vb_depth: float  # vertebral body anteroposterior depth
    dome_peak: float  # where the domes peak, 0 = anterior wall .. 1 = posterior wall
    sulcus: float  # depth of the posterior costophrenic sulci below cp
    retrosternal: float  # clear space between the sternum and the ascending aorta
    heart_tilt: float
    compression: tuple[int, float] | None = None  # vertebral fracture: (level, height lost)
    sternal_break: tuple[float, float] | None = None  # (y, anterior step)

    # --------------------------------------------------------------- outlines
    def x_ant(self, y: np.ndarray) -> np.ndarray:
        """Anterior lung border (back of the sternum) at height y."""
        return self.xc - self.depth + self.stern_slope * (self.f.cp - y)

    def x_post(self, y: np.ndarray) -> np.ndarray:
        """Posterior lung border (inner surface of the posterior ribs) at height y."""
        mid = (self.f.apex + self.f.cp) / 2 + 0.1
        half = (self.f.cp - self.f.apex) / 2
        return self.xc + self.depth - self.kyphosis * ((y - mid) / half) ** 2

    def y_top(self, x: np.ndarray) -> np.ndarray:
        """Upper lung outline: apices posteriorly, sloping down to the manubrium in front."""
        return self.f.apex + 0.42 * ((x - self.apex_x) / self.depth) ** 2

    def dome_y(self, x: np.ndarray, side: int) -> np.ndarray:
        """Hemidiaphragm: anterior costophrenic angle, dome peak, deep posterior sulcus."""
        a = self.f
        front = float(self.x_ant(np.float32(a.cp)))
        back = float(self.x_post(np.float32(a.cp)))
        t = np.clip((x - front) / (back - front), 0.0, 1.0)
        peak = a.cp - a.dome[side]
        y_front = a.cp - 0.35 * a.dome[side]
        y_back = a.cp + self.sulcus
        p = self.dome_peak
        before = peak + (y_front - peak) * np.clip((p - t) / p, 0.0, 1.0) ** 1.6
        after = peak + (y_back - peak) * np.clip((t - p) / (1 - p), 0.0, 1.0) ** 2.2
        return np.where(t < p, before, after)

    def heart_box(self) -> tuple[float, float, float, float]:
        """(centre x, centre y, long semi-axis, short semi-axis), resting on the left dome."""
        ax = self.f.ctr * self.f.width * 1.05
        ay = ax * 0.78
        c, s = math.cos(self.heart_tilt), math.sin(self.heart_tilt)
        ex, ey = math.hypot(ax * c, ay * s), math.hypot(ax * s, ay * c)  # half extents
        # It sits on the left dome and touches the lower sternum (no air below or in front).
        cy = self.f.cp - self.f.dome[LEFT] + 0.12 - ey
        cx = float(self.x_ant(np.float32(cy))) + ex - 0.04
        return cx, cy, ax, ay

    def carina_x(self) -> float:
        return self.xc + 0.06

    def vertebra(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(front, back) x of the vertebral bodies at height y."""
        front = self.x_post(y) - self.vb_front
        return front, front + self.vb_depth


def sample_lateral(f: Anatomy, rng: np.random.Generator) -> LateralAnatomy:
    depth = f.width * rng.uniform(0.78, 0.88)
    xc = rng.uniform(-0.08, 0.0)
    return LateralAnatomy(
        f=f,
        depth=depth,
        xc=xc,
        stern_slope=rng.uniform(0.06, 0.14),
        kyphosis=rng.uniform(0.04, 0.10),
        apex_x=xc + depth * rng.uniform(0.15, 0.35),
        vb_front=rng.uniform(0.27, 0.31),
        vb_depth=rng.uniform(0.15, 0.18),
        dome_peak=rng.uniform(0.35, 0.5),
        sulcus=rng.uniform(0.06, 0.12),
        retrosternal=rng.uniform(0.10, 0.16),
        heart_tilt=rng.uniform(-0.6, -0.3),
    )


@dataclass
class LateralScene:
    canvas: Canvas
    la: LateralAnatomy
    x: np.ndarray  # (1, n)
    y: np.ndarray  # (n, 1)
    air: list[np.ndarray]  # per lung: where its air shows (heart, aorta and hila removed)
    air_all: np.ndarray  # both lungs together, 0..1
    markings: np.ndarray


def _lung(la: LateralAnatomy, side: int, x: np.ndarray, y: np.ndarray, inset: float = 0.0):
    """Soft mask of one lung; `inset` pulls it away from the apex and anterior wall."""
    m = _MAGNIFY[side]
    cy = (la.f.apex + la.f.cp) / 2
    xs, ys = la.xc + (x - la.xc) / m, cy + (y - cy) / m
    front = xs - la.x_ant(ys) - inset
    back = la.x_post(ys) - xs
    top = ys - la.y_top(xs) - 1.2 * inset
    bottom = la.dome_y(xs, side) - ys
    return soft_inside(np.minimum(np.minimum(front, back), np.minimum(top, bottom)), 0.012)


def _heart(la: LateralAnatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    cx, cy, ax, ay = la.heart_box()
    c, s = math.cos(la.heart_tilt), math.sin(la.heart_tilt)
    dx, dy = x - cx, y - cy
    u = (c * dx + s * dy) / ax
    v = (-s * dx + c * dy) / ay
    return soft_inside((1.0 - np.sqrt(u * u + v * v)) * ay, 0.02)


def _great_vessels(la: LateralAnatomy, cv: Canvas) -> np.ndarray:
    """Ascending aorta, arch, descending aorta and the vessels above the arch (0..1 mask)."""
    a = la.f
    out = np.zeros_like(cv.data)
    hx, hy, ax, ay = la.heart_box()
    widen = a.med_w / 0.095  # "Enlarged Cardiomediastinum" widens the mediastinum
    w_asc = 0.08 * widen
    root = (hx + 0.1 * ax, hy - 0.6 * ay)
    top_y = a.carina - 0.22
    asc_x = float(la.x_ant(np.float32(top_y))) + la.retrosternal + w_asc / 2
    # A wider mediastinum bulges forwards into the retrosternal space.
    asc_x -= 0.5 * (w_asc - 0.08)
    cxr = la.carina_x()
    arch = bezier(root, (asc_x, a.carina), (asc_x + 0.02, top_y - 0.06), (cxr + 0.10, top_y), n=12)
    stroke(cv, arch, w_asc, 0.55, soft=0.03, target=out)
    vb_front = float(la.vertebra(np.float32(a.carina))[0])
    desc = bezier(
        (cxr + 0.10, top_y),
        (vb_front - 0.02, top_y + 0.05),
        (vb_front - 0.05, a.cp - 0.3),
        (vb_front - 0.06, a.cp + 0.05),
        n=10,
    )
    stroke(cv, desc, 0.06, 0.45, soft=0.02, target=out)
    # Brachiocephalic vessels rising from the arch to the thoracic inlet.
    stroke(
        cv, [(asc_x + 0.03, top_y), (asc_x + 0.06, -1.0)], 0.08 * widen, 0.5, soft=0.04, target=out
    )
    return np.clip(out, 0.0, 1.0)


def render_lateral_base(la: LateralAnatomy, rng: np.random.Generator, size: int) -> LateralScene:
    a = la.f
    cv = Canvas(size)
    x = cv.coords[None, :]
    y = cv.coords[:, None]
    d = cv.data

    # Soft tissue: the trunk from the front skin to the back, the neck above.
    neck = smoothstep((a.apex + 0.25 - y) / 0.35)
    skin_front = la.x_ant(y) - 0.09 + 0.32 * neck
    skin_back = la.x_post(y) + 0.22 - 0.10 * neck
    mid, half = (skin_front + skin_back) / 2, (skin_back - skin_front) / 2
    thick = np.sqrt(np.clip(1.0 - ((x - mid) / half) ** 2, 0.0, 1.0))
    body = soft_inside(np.minimum(x - skin_front, skin_back - x), 0.015)
    d += (0.10 + 0.78 * SOFT_TISSUE * thick) * body
    # Shoulders and raised arms overlap the upper chest: the spine looks darker further down.
    d += 0.16 * smoothstep((a.apex + 0.35 - y) / 0.45) * body

    lungs = [_lung(la, side, x, y) for side in (RIGHT, LEFT)]
    heart = _heart(la, x, y)
    vessels = _great_vessels(la, cv)
    solid = np.maximum(heart, vessels)
    air = [lung * (1.0 - solid) for lung in lungs]
    air_all = 0.5 * (air[0] + air[1])
    d -= _AIR_LAT * air_all
    d += 0.03 * solid

    # Upper abdomen below the lower dome.
    below = soft_inside(y - np.minimum(la.dome_y(x, RIGHT), la.dome_y(x, LEFT)), 0.015)
    d += 0.06 * below * body * (x < la.x_post(y))
    if a.gastric_bubble:
        gx = la.xc - la.depth * rng.uniform(0.1, 0.4)
        gy = float(la.dome_y(np.float32(gx), LEFT)) + rng.uniform(0.05, 0.08)
        blob(cv, gx, gy, rng.uniform(0.05, 0.08), -0.16, edge=0.015, aspect=0.6)

    # Vessels fan out from the hila in every direction (two half-plane tables).
    cx, cy = la.carina_x(), a.carina
    hx, hy = cx + 0.02, cy + 0.10
    markings = np.zeros_like(d)
    front_all, back_all = la.x_ant(cv.coords), la.x_post(cv.coords) * _MAGNIFY[RIGHT]
    rows, cols, xs, ys = cv.box(  # the lungs' bounding box: no markings outside it
        float(front_all.min()) - 0.02,
        float(back_all.max()) + 0.02,
        a.apex - 0.1,
        a.cp + la.sulcus + 0.1,
    )
    lung_box = air_all[rows, cols] * 2.0
    for s in (1.0, -1.0):
        table = marking_table(
            rng,
            trunks=int(rng.integers(5, 8)),
            width=0.012 + 0.010 * a.edema,
            amplitude=0.06,
            reach=la.depth * 1.1,
        )
        markings[rows, cols] += sample_polar(table, xs, ys, hx, hy, s, 1.2) * (lung_box > 0.5)
    markings[rows, cols] *= np.clip(lung_box, 0.0, 1.0)
    if a.edema:
        markings = ndimage.gaussian_filter(markings, sigma=1.2 * a.edema * size / 256, truncate=2.0)
    d += markings
    blob(cv, hx, hy, 0.09, 0.11, edge=0.04, aspect=1.3)  # hilar vessels

    # Trachea, angled backwards, and the upper lobe bronchi seen end on.
    stroke(cv, [(cx - 0.12, -1.0), (cx, cy)], 1.8 * a.trachea_w, -0.13, soft=0.012)
    blob(cv, cx + 0.01, cy + 0.06, 0.024, -0.09, edge=0.008)
    blob(cv, cx + 0.04, cy + 0.13, 0.02, -0.07, edge=0.008)

    _draw_spine(cv, la)
    _draw_ribs(cv, la)
    _draw_sternum(cv, la)
    if a.breasts:
        bx = float(la.x_ant(np.float32(a.cp - 0.2))) - 0.14
        blob(cv, bx, a.cp - 0.2, 0.26, a.breasts, edge=0.06, aspect=1.1)
    return LateralScene(cv, la, x, y, air, np.clip(air_all, 0.0, 1.0), markings)


def _draw_spine(cv: Canvas, la: LateralAnatomy) -> None:
    a = la.f
    front_all, back_all = la.vertebra(cv.coords)
    rows, cols, x, y = cv.box(float(front_all.min()) - 0.03, float(back_all.max()) + 0.25, -1, 1)
    out = cv.data[rows, cols]  # a view: drawing only touches the spine's columns
    front, back = la.vertebra(y)
    gap = a.rib_gap
    phase = (y - a.rib_y0) / gap
    level = np.floor(phase)
    frac = phase - level
    top = np.full_like(frac, 0.12)
    density = np.ones_like(frac)
    if la.compression is not None:
        k, loss = la.compression
        # Anterior wedge: the front of the body loses height, the crushed bone is denser.
        u = np.clip((back - x) / (back - front), 0.0, 1.0)
        top = np.where(level == k, 0.12 + loss * u, top)
        density = np.where(level == k, 1.0 + 1.2 * loss, density)
    inside_y = np.minimum(frac - top, 0.88 - frac) * gap
    inside_x = np.minimum(x - front, back - x)
    bodies = soft_inside(np.minimum(inside_x, inside_y), 0.01)
    cortex = 1.0 - soft_inside(np.minimum(inside_x, inside_y) - 0.008, 0.006)
    out += (0.10 + 0.03 * cortex) * bodies * density
    # Posterior elements: pedicles with dark neural foramina, then the spinous processes.
    foramen = np.exp(-(((x - back - 0.035) / 0.02) ** 2) - ((frac - 0.85) / 0.12) ** 2)
    pedicle = soft_inside(np.minimum(x - back, back + 0.075 - x), 0.01)
    out += 0.07 * pedicle * (1.0 - 0.8 * foramen)
    spinous_phase = np.mod(phase - 0.7 * (x - back - 0.08) / gap, 1.0)
    spinous = soft_inside(0.18 - np.abs(spinous_phase - 0.5), 0.05)
    reach = soft_inside(np.minimum(x - back - 0.08, back + 0.22 - x), 0.02)
    out += 0.06 * spinous * reach


def _draw_ribs(cv: Canvas, la: LateralAnatomy) -> None:
    """Posterior ribs run forwards and down from the spine; both sides, slightly offset."""
    a = la.f
    m_max = max(_MAGNIFY)
    x0 = float(la.x_ant(cv.coords).min())
    x1 = float(la.x_post(cv.coords).max()) * m_max + 0.07
    rows, cols, x, y = cv.box(x0, x1, a.rib_y0 * m_max - 0.01, 1.0)
    out = cv.data[rows, cols]
    for side in (RIGHT, LEFT):
        m = _MAGNIFY[side]
        back = la.x_post(y) * m
        run = np.maximum(back - x, 0.0)
        phi = (y - a.rib_y0 * m - 0.55 * run - 0.25 * run * run) / (a.rib_gap * m)
        frac = phi - np.floor(phi)
        u = np.abs(frac - 0.5) / (0.5 * a.rib_t / a.rib_gap)
        band = soft_inside(1.0 - u, 0.25) * (1.0 + 0.8 * smoothstep((u - 0.5) / 0.4))
        span = back + 0.04 - la.x_ant(y)
        fade = smoothstep((back + 0.06 - x) / 0.04) * smoothstep(1.0 - 1.3 * run / span)
        out += 0.032 * band * fade * (phi > 0) * (phi < 11)


def _draw_sternum(cv: Canvas, la: LateralAnatomy) -> None:
    a = la.f
    top, bottom = a.apex + 0.2, a.cp - 0.3 * a.dome[RIGHT]
    front = la.x_ant(np.array([top, bottom], np.float32))
    rows, cols, x, y = cv.box(
        float(front.min()) - 0.12, float(front.max()) + 0.02, top - 0.06, bottom + 0.06
    )
    joint = a.carina - 0.02  # manubriosternal joint (angle of Louis)
    centre = la.x_ant(y) - 0.035
    if la.sternal_break is not None:
        by, step = la.sternal_break
        centre = centre - step * (y > by)
    manubrium = smoothstep((joint - y) / 0.05)
    half = 0.022 + 0.012 * manubrium
    u = np.abs(x - centre) / half
    bone = soft_inside(1.0 - u, 0.15) * (1.0 + 0.9 * smoothstep((u - 0.5) / 0.4))
    along = soft_inside(np.minimum(y - top, bottom - y), 0.03)
    gaps = 1.0 - 0.7 * np.exp(-(((y - joint) / 0.008) ** 2))
    if la.sternal_break is not None:
        gaps = gaps * (1.0 - 0.9 * np.exp(-(((y - la.sternal_break[0]) / 0.006) ** 2)))
    cv.data[rows, cols] += 0.09 * bone * along * gaps


# --------------------------------------------------------------------------- findings


def _lateral_fracture(la: LateralAnatomy, rng: np.random.Generator) -> None:
    if rng.random() < 0.7:
        la.compression = (int(rng.integers(4, 9)), float(rng.uniform(0.35, 0.55)))
    else:
        la.sternal_break = (
            float(rng.uniform(la.f.carina + 0.05, la.f.cp - 0.35)),
            float(rng.uniform(0.015, 0.03)),
        )


LATERAL_MODIFIERS: dict[str, Callable[[LateralAnatomy, np.random.Generator], None]] = {
    "Fracture": _lateral_fracture,
}


def _lung_point(sc: LateralScene, rng: np.random.Generator, zone=(0.2, 0.85)):
    """A random point well inside the lungs, avoiding the heart and the spine."""
    la = sc.la
    a = la.f
    for _ in range(20):
        y = a.apex + (a.cp - a.dome[RIGHT] - a.apex) * rng.uniform(*zone)
        front = float(la.x_ant(np.float32(y))) + 0.08
        back = float(la.vertebra(np.float32(y))[0]) + 0.05
        x = rng.uniform(front, back)
        cx, cy, ax, ay = la.heart_box()
        if ((x - cx) / (ax + 0.05)) ** 2 + ((y - cy) / (ay + 0.05)) ** 2 > 1.0:
            return x, y
    return x, y


def _paint_effusion(sc: LateralScene, rng: np.random.Generator) -> None:
    """Fluid fills the posterior sulcus first and climbs the chest wall (a meniscus)."""
    la = sc.la
    a = la.f
    sides = [int(rng.integers(0, 2))] if rng.random() < 0.6 else [RIGHT, LEFT]
    for side in sides:
        back = la.x_post(sc.y)
        front = la.x_ant(sc.y)
        level = a.cp + la.sulcus - rng.uniform(0.22, 0.45)
        t_back = np.clip((sc.x - front) / (back - front), 0.0, 1.0)
        climb = rng.uniform(0.1, 0.25) * t_back**3 + rng.uniform(0.02, 0.08) * (1 - t_back) ** 4
        fluid = smoothstep((sc.y - (level - climb)) / 0.06) * sc.air[side]
        sc.canvas.data += (0.5 * _AIR_LAT + 0.04) * fluid - sc.markings * fluid


def _paint_pneumothorax(sc: LateralScene, rng: np.random.Generator) -> None:
    """Hard to see laterally: a faint lucent rim at the apex and front, a thin pleural line."""
    la = sc.la
    for side in (RIGHT, LEFT):
        inset = la.f.collapse[side]
        if not inset:
            continue
        collapsed = _lung(la, side, sc.x, sc.y, 0.6 * inset)
        space = np.clip(sc.air[side] - collapsed, 0.0, 1.0)
        sc.canvas.data -= 0.05 * space + sc.markings * space * 0.5
        edge = collapsed * (1.0 - collapsed) * 4.0
        sc.canvas.data += 0.06 * edge * sc.air[side]


def _paint_opacity(sc: LateralScene, rng: np.random.Generator) -> None:
    for _ in range(int(rng.integers(1, 3))):
        cx, cy = _lung_point(sc, rng, (0.3, 0.85))
        tmp = np.zeros_like(sc.canvas.data)
        blob(
            sc.canvas,
            cx,
            cy,
            rng.uniform(0.12, 0.2),
            rng.uniform(0.11, 0.16),
            edge=0.09,
            target=tmp,
            aspect=rng.uniform(0.7, 1.3),
        )
        sc.canvas.data += tmp * np.clip(2.0 * sc.air_all, 0.0, 1.0)


def _fissure_y(la: LateralAnatomy, x: np.ndarray) -> np.ndarray:
    """Oblique (major) fissure: from high posteriorly down to the front of the diaphragm."""
    a = la.f
    back = la.xc + la.depth
    front = la.xc - la.depth * 0.45
    t = np.clip((back - x) / (back - front), 0.0, 1.2)
    return (a.carina - 0.05) + (a.cp - a.dome[RIGHT] + 0.02 - (a.carina - 0.05)) * t


def _lobe(sc: LateralScene, rng: np.random.Generator) -> np.ndarray:
    la = sc.la
    below = soft_inside(sc.y - _fissure_y(la, sc.x), 0.008)
    choice = rng.integers(0, 3)
    if choice == 0:  # lower lobe: posterior and inferior to the oblique fissure
        return below
    minor = la.f.carina + 0.17
    if choice == 1:  # upper lobe (above the minor fissure, in front of the oblique one)
        return (1.0 - below) * soft_inside(minor - sc.y, 0.008)
    # middle lobe / lingula: a wedge between the minor and the oblique fissures
    return (1.0 - below) * soft_inside(sc.y - minor, 0.008)


def _airspace(
    sc: LateralScene, rng: np.random.Generator, region: np.ndarray, density: float, side: int
) -> None:
    n = sc.canvas.size
    lumps = upsample(rng.random((8, 8)).astype(np.float32), n, n)
    fill = region * (0.75 + 0.5 * lumps) * sc.air[side]
    sc.canvas.data += density * fill - sc.markings * np.clip(fill, 0.0, 1.0) * 0.8


def _paint_consolidation(sc: LateralScene, rng: np.random.Generator) -> None:
    side = int(rng.integers(0, 2))
    _airspace(sc, rng, _lobe(sc, rng), rng.uniform(0.34, 0.42), side)


def _paint_pneumonia(sc: LateralScene, rng: np.random.Generator) -> None:
    side = int(rng.integers(0, 2))
    tmp = np.zeros_like(sc.canvas.data)
    cx, cy = _lung_point(sc, rng, (0.45, 0.9))
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
    _airspace(sc, rng, np.clip(tmp, 0.0, 1.0), rng.uniform(0.26, 0.34), side)


def _paint_edema(sc: LateralScene, rng: np.random.Generator) -> None:
    """Perihilar haze and fluid-thickened fissures (vessels were blurred by the modifier)."""
    la = sc.la
    hx, hy = la.carina_x() + 0.02, la.f.carina + 0.1
    haze = np.zeros_like(sc.canvas.data)
    blob(
        sc.canvas,
        hx - 0.05,
        hy + 0.05,
        rng.uniform(0.35, 0.45),
        rng.uniform(0.14, 0.2),
        edge=0.2,
        target=haze,
    )
    sc.canvas.data += haze * np.clip(2.0 * sc.air_all, 0.0, 1.0)
    lines = np.zeros_like(sc.canvas.data)
    xs = np.linspace(la.xc + la.depth * 1.1, la.xc - la.depth * 0.6, 32, dtype=np.float32)
    stroke(sc.canvas, np.stack([xs, _fissure_y(la, xs)], 1), 0.008, 0.12, target=lines)
    minor = la.f.carina + 0.17
    front = float(la.x_ant(np.float32(minor)))
    stroke(sc.canvas, [(front, minor), (hx - 0.05, minor + 0.01)], 0.007, 0.10, target=lines)
    sc.canvas.data += lines * np.clip(2.0 * sc.air_all, 0.0, 1.0)


def _paint_atelectasis(sc: LateralScene, rng: np.random.Generator) -> None:
    la = sc.la
    a = la.f
    # A side is always drawn (the image bytes depend on this stream); the modifier's wins.
    drawn = int(rng.integers(0, 2))
    side = drawn if a.atelectasis_side is None else a.atelectasis_side
    if rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 4))):  # plate-like (discoid) bands at the bases
            cx, cy = _lung_point(sc, rng, (0.65, 0.95))
            half = rng.uniform(0.08, 0.15)
            tilt = rng.normal(0, 0.1)
            stroke(
                sc.canvas,
                [(cx - half, cy - tilt * half), (cx + half, cy + tilt * half)],
                rng.uniform(0.015, 0.025),
                0.22,
                soft=0.008,
            )
    else:
        # Lower lobe collapse: a dense triangle against the spine, above the posterior sulcus.
        shrink = rng.uniform(0.1, 0.2)
        fissure = _fissure_y(la, sc.x) + shrink * (la.x_post(sc.y) - sc.x + 0.2)
        region = soft_inside(sc.y - fissure, 0.015)
        sc.canvas.data += 0.45 * _AIR_LAT * region * sc.air[side]


def _paint_lesion(sc: LateralScene, rng: np.random.Generator) -> None:
    cx, cy = _lung_point(sc, rng, (0.15, 0.85))
    mass = rng.random() < 0.35
    radius = rng.uniform(0.06, 0.11) if mass else rng.uniform(0.025, 0.05)
    blob(
        sc.canvas,
        cx,
        cy,
        radius,
        rng.uniform(0.2, 0.3),
        edge=0.006 + 0.05 * radius,
        lobes=(int(rng.integers(3, 7)), rng.uniform(0.0, 0.15), rng.uniform(0, 6.3)),
    )


def _paint_pleural_other(sc: LateralScene, rng: np.random.Generator) -> None:
    """Thickening along the posterior chest wall and calcified plaques on the diaphragm."""
    la = sc.la
    a = la.f
    side = int(rng.integers(0, 2))
    inset = rng.uniform(0.03, 0.05)
    m = _MAGNIFY[side]
    wall = la.x_post(sc.y) * m - sc.x
    n = sc.canvas.size
    wobble = upsample(rng.random((12, 1)).astype(np.float32), n, 1)
    band = soft_inside(wall, 0.006) * soft_inside(inset - wall, 0.01)
    zone = soft_inside(np.minimum(sc.y - (a.apex + 0.3), a.cp - sc.y), 0.05)
    sc.canvas.data += 0.3 * band * zone * (0.6 + 0.8 * wobble)
    if rng.random() < 0.6:
        for _ in range(int(rng.integers(2, 4))):
            x0 = rng.uniform(la.xc - la.depth * 0.6, la.xc + la.depth * 0.5)
            xs = np.linspace(x0, x0 + rng.uniform(0.06, 0.12), 8, dtype=np.float32)
            ys = la.dome_y(xs, side) - 0.006
            stroke(sc.canvas, np.stack([xs, ys], 1), 0.012, 0.35)


def _paint_devices(sc: LateralScene, rng: np.random.Generator) -> None:
    la = sc.la
    a = la.f
    cv = sc.canvas
    kinds = [k for k in ("ett", "line", "pacer", "wires") if rng.random() < 0.5]
    if not kinds:
        kinds = [("ett", "line", "pacer", "wires")[int(rng.integers(0, 4))]]
    cx, cy = la.carina_x(), a.carina
    hx, hy, ax, ay = la.heart_box()
    if "ett" in kinds:
        tip = rng.uniform(0.06, 0.16)
        # The tube follows the trachea, which runs from (cx - 0.12, -1) to the carina.
        end = (cx - 0.12 * tip / (cy + 1.0), cy - tip)
        for dx in (-0.018, 0.018):
            stroke(cv, [(cx - 0.12 + dx, -1.0), (end[0] + dx, end[1])], 0.006, 0.2)
        stroke(cv, [(cx - 0.12 - 0.012, -1.0), (end[0] - 0.012, end[1])], 0.005, METAL * 0.6)
    if "line" in kinds:
        start = (float(la.x_ant(np.float32(a.clav_y))) + 0.12, a.clav_y)
        pts = bezier(
            start,
            (start[0] + 0.12, a.clav_y + 0.08),
            (cx - 0.05, cy),
            (hx + 0.3 * ax, hy - 0.5 * ay),
        )
        stroke(cv, pts, 0.008, METAL * 0.5)
    if "pacer" in kinds:
        gx = float(la.x_ant(np.float32(a.clav_y + 0.15))) - 0.10
        gy = a.clav_y + rng.uniform(0.12, 0.2)
        rows, cols, xs, ys = cv.box(gx - 0.05, gx + 0.05, gy - 0.08, gy + 0.08)
        rect = soft_inside(np.minimum(0.025 - np.abs(xs - gx), 0.06 - np.abs(ys - gy)), 0.008)
        cv.data[rows, cols] += METAL * rect
        for k in range(int(rng.integers(1, 3))):
            end = (hx - ax * rng.uniform(0.3, 0.7), hy + ay * rng.uniform(0.2, 0.6))
            pts = bezier(
                (gx, gy + 0.05), (gx + 0.2, gy + 0.1 + 0.03 * k), (cx - 0.05, hy - ay), end
            )
            stroke(cv, pts, 0.007, METAL * 0.6)
    if "wires" in kinds:
        top = a.carina - 0.15
        for k in range(int(rng.integers(4, 7))):
            y = top + k * rng.uniform(0.09, 0.11)
            x = float(la.x_ant(np.float32(y))) - 0.035 + rng.normal(0, 0.004)
            ring(cv, x, y, 0.03, 0.008, 0.007, METAL * 0.7)


LATERAL_PAINTERS: dict[str, Callable[[LateralScene, np.random.Generator], None]] = {
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


def render_lateral(
    anatomy: Anatomy,
    wanted: list[str],
    finding_rngs: dict[str, np.random.Generator],
    seed: int,
    size: int,
) -> np.ndarray:
    """Density image of the lateral view; findings' frontal modifiers already ran on `anatomy`."""
    la = sample_lateral(anatomy, np.random.default_rng([seed, 4]))
    for name in wanted:
        if name in LATERAL_MODIFIERS:
            LATERAL_MODIFIERS[name](la, finding_rngs[name])
    scene = render_lateral_base(la, np.random.default_rng([seed, 5]), size)
    for name in wanted:
        if name in LATERAL_PAINTERS:
            LATERAL_PAINTERS[name](scene, finding_rngs[name])
    return scene.canvas.data
