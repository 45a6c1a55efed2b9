"""Small vectorised drawing primitives for the phantom renderer (numpy only).

All geometry is in normalised image coordinates: x and y run from -1 (left/top edge) to
+1 (right/bottom edge); a `Canvas` maps them to pixels. Primitives only touch the bounding
box of what they draw, which keeps a 512 px phantom in tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def smoothstep(t: np.ndarray | float) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    out = 3.0 - 2.0 * t
    out *= t
    out *= t
    return out


def upsample(small: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Smoothly interpolate a small 2-D array to (rows, cols) with two small matrix products.

    Much cheaper than scipy.ndimage.zoom for the low-frequency textures used here.
    """
    left = _interp_matrix(small.shape[0], rows) @ small
    right_t = _interp_matrix(small.shape[1], cols).T
    if left.dtype != np.float32:
        return (left @ right_t).astype(np.float32)
    # OpenBLAS spreads a product this size over all cores, and the thread hand-off costs
    # ~10x the arithmetic (far worse on a busy machine). Column blocks below its threading
    # threshold run single-threaded with the same kernel, so the values are bit-identical.
    out = np.empty((rows, cols), np.float32)
    step = max(1, _BLAS_SINGLE_THREAD // max(rows * small.shape[1], 1))
    for c in range(0, cols, step):
        np.matmul(left, right_t[:, c : c + step], out=out[:, c : c + step])
    return out


# OpenBLAS runs a GEMM single-threaded when m * n * k < 65536 * 4; stay well below that.
_BLAS_SINGLE_THREAD = 200_000


def _interp_matrix(m: int, n: int) -> np.ndarray:
    pos = np.clip((np.arange(n) + 0.5) / n * m - 0.5, 0.0, m - 1.0)
    i0 = np.minimum(pos.astype(int), max(m - 2, 0))
    w = smoothstep(pos - i0)  # smooth (C1) rather than piecewise linear blending
    mat = np.zeros((n, m), np.float32)
    mat[np.arange(n), i0] = 1.0 - w
    if m > 1:
        mat[np.arange(n), i0 + 1] += w
    return mat


def soft_inside(margin: np.ndarray, eps: float) -> np.ndarray:
    """0 outside, 1 inside, smooth over +-eps around margin == 0 (margin > 0 is inside)."""
    return smoothstep(0.5 + margin / (2.0 * eps))


@dataclass
class Canvas:
    """A float32 density image plus the pixel <-> normalised coordinate mapping."""

    size: int

    def __post_init__(self) -> None:
        n = self.size
        self.data = np.zeros((n, n), np.float32)
        self.coords = ((np.arange(n, dtype=np.float32) + 0.5) / n) * 2.0 - 1.0
        self.px = 2.0 / n  # one pixel in normalised units

    def index(self, value: float) -> int:
        """Pixel index (clipped) of a normalised coordinate."""
        return int(np.clip((value + 1.0) / 2.0 * self.size, 0, self.size))

    def box(
        self, x0: float, x1: float, y0: float, y1: float
    ) -> tuple[slice, slice, np.ndarray, np.ndarray]:
        """Row/col slices for a normalised box and the (1, w) x and (h, 1) y coordinates."""
        c0, c1 = self.index(min(x0, x1)), self.index(max(x0, x1)) + 1
        r0, r1 = self.index(min(y0, y1)), self.index(max(y0, y1)) + 1
        c1, r1 = min(c1, self.size), min(r1, self.size)
        xs = self.coords[c0:c1][None, :]
        ys = self.coords[r0:r1][:, None]
        return slice(r0, r1), slice(c0, c1), xs, ys


def stroke(
    canvas: Canvas,
    points: np.ndarray,
    width: float,
    value: float,
    *,
    soft: float | None = None,
    target: np.ndarray | None = None,
) -> None:
    """Add a polyline of the given (normalised) width with a rounded profile.

    soft: edge softness (defaults to one pixel). `target` defaults to canvas.data.
    """
    pts = np.asarray(points, np.float32)
    out = canvas.data if target is None else target
    soft = canvas.px if soft is None else soft
    pad = width + 2 * soft
    rows, cols, xs, ys = canvas.box(
        pts[:, 0].min() - pad, pts[:, 0].max() + pad, pts[:, 1].min() - pad, pts[:, 1].max() + pad
    )
    if xs.size == 0 or ys.size == 0:
        return
    dist = np.full((ys.shape[0], xs.shape[1]), np.inf, np.float32)
    half = width / 2.0
    # Each segment only needs the pixels it can reach (the profile is zero beyond half + soft);
    # elsewhere the minimum over the other segments, or inf, gives the same zero. Long curves
    # (catheters, leads) touch a small fraction of their bounding box this way.
    reach = half + soft + canvas.px
    r_off, c_off = rows.start, cols.start
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:], strict=True):
        dx, dy = bx - ax, by - ay
        seg2 = dx * dx + dy * dy
        if seg2 == 0:
            continue
        c0 = max(canvas.index(min(ax, bx) - reach) - c_off, 0)
        c1 = min(canvas.index(max(ax, bx) + reach) + 1 - c_off, dist.shape[1])
        r0 = max(canvas.index(min(ay, by) - reach) - r_off, 0)
        r1 = min(canvas.index(max(ay, by) + reach) + 1 - r_off, dist.shape[0])
        if c1 <= c0 or r1 <= r0:
            continue
        sx, sy = xs[:, c0:c1], ys[r0:r1]
        t = np.clip(((sx - ax) * dx + (sy - ay) * dy) / seg2, 0.0, 1.0)
        d = np.hypot(sx - (ax + t * dx), sy - (ay + t * dy))
        np.minimum(dist[r0:r1, c0:c1], d, out=dist[r0:r1, c0:c1])
    # Rounded (tube-like) profile: thicker through the centre, like a projected cylinder.
    core = np.sqrt(np.clip(1.0 - (dist / (half + soft)) ** 2, 0.0, 1.0))
    out[rows, cols] += value * core


def ring(
    canvas: Canvas, cx: float, cy: float, rx: float, ry: float, width: float, value: float
) -> None:
    """Add an elliptical wire loop (e.g. a sternotomy wire)."""
    pad = width + canvas.px
    rows, cols, xs, ys = canvas.box(cx - rx - pad, cx + rx + pad, cy - ry - pad, cy + ry + pad)
    r = np.hypot((xs - cx) / rx, (ys - cy) / ry)
    d = np.abs(r - 1.0) * min(rx, ry)
    canvas.data[rows, cols] += value * np.clip(1.0 - d / (width / 2 + canvas.px), 0.0, 1.0)


def blob(
    canvas: Canvas,
    cx: float,
    cy: float,
    radius: float,
    value: float,
    *,
    edge: float,
    lobes: tuple[int, float, float] = (0, 0.0, 0.0),
    aspect: float = 1.0,
    target: np.ndarray | None = None,
) -> None:
    """Add a rounded (spherical-profile) density; lobes = (count, amplitude, phase)."""
    out = canvas.data if target is None else target
    k, amp, phase = lobes
    reach = radius * (1 + abs(amp)) + 2 * edge
    rows, cols, xs, ys = canvas.box(
        cx - reach, cx + reach, cy - reach * aspect, cy + reach * aspect
    )
    dx, dy = xs - cx, (ys - cy) / aspect
    rr = np.hypot(dx, dy)
    if k:
        rad = radius * (1.0 + amp * np.sin(k * np.arctan2(dy, dx) + phase))
    else:
        rad = radius
    inside = soft_inside(rad - rr, edge)
    depth = np.sqrt(np.clip(1.0 - (rr / (rad + edge)) ** 2, 0.0, 1.0))
    out[rows, cols] += value * inside * (0.35 + 0.65 * depth)


def curve_band(
    canvas: Canvas,
    x0: float,
    x1: float,
    f,
    thickness: float,
    value: float,
    *,
    cortex: float = 0.0,
    gaps: list[tuple[float, float]] | None = None,
) -> None:
    """Add a band of vertical thickness around y = f(x) for x in [x0, x1] (ribs, clavicles).

    cortex > 0 brightens the band edges (cortical bone). gaps: (x, width) pairs left empty.
    """
    c0, c1 = canvas.index(min(x0, x1)), canvas.index(max(x0, x1))
    if c1 <= c0:
        return
    xs = canvas.coords[c0:c1]
    yc = f(xs).astype(np.float32)
    slope = np.gradient(yc, xs) if xs.size > 1 else np.zeros_like(yc)
    half = thickness / 2.0 * np.sqrt(1.0 + slope * slope)
    r0 = canvas.index(float((yc - half).min()) - canvas.px)
    r1 = min(canvas.size, canvas.index(float((yc + half).max()) + canvas.px) + 1)
    if r1 <= r0:
        return
    ys = canvas.coords[r0:r1][:, None]
    u = np.abs(ys - yc[None, :]) / half[None, :]  # 0 at centre line, 1 at the edge
    body = soft_inside(1.0 - u, 2 * canvas.px / thickness)
    profile = body * (1.0 + cortex * smoothstep((u - 0.55) / 0.45))
    # Fade the ends so bones do not stop with a hard vertical edge.
    span = max(abs(x1 - x0), 1e-6)
    ends = smoothstep(np.minimum(np.abs(xs - x0), np.abs(xs - x1)) / (0.08 * span))
    weight = ends
    for gx, gw in gaps or []:
        weight = weight * smoothstep((np.abs(xs - gx) - gw / 2) / (1.5 * canvas.px))
    canvas.data[r0:r1, c0:c1] += value * profile * weight[None, :]


def bezier(*pts: tuple[float, float], n: int = 24) -> np.ndarray:
    p = np.asarray(pts, np.float32)
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
    # Cubic Bezier through four control points.
    return (
        (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t**2 * p[2] + t**3 * p[3]
    )
