"""Images for training and measuring the input gate: chest radiographs and everything else.

Every source yields grey float32 arrays (bright = dense, any range) with a class name from
`radialog.gate.model.CLASSES`. Sources are split so that nothing measured is trained on:

- real chest X-rays: PneumoniaMNIST (paediatric, 28 px, upsampled to 224 px as a
  low-resolution upload would be): official train split for training, val for choosing
  the thresholds, test for the benchmark. The bundled full-size radiographs in
  `../shared/data/images` are never used in training (the benchmark reports them apart).
- phantoms (`radialog.imaging.phantom`, PA / AP / lateral): seeds below 100,000 train,
  above it test.
- scikit-image's `data` photographs and scientific images: split by image (`SKIMAGE_TEST`
  are never trained on).
- synthetic negatives (noise, flat fields, gradients, text and forms, colour fields,
  shapes, CT-like ellipse slices): seeds below 100,000 train, above it test.
- inverted and rotated radiographs are made from the chest images of the same split.

Data files are read by path (`shared/data/...`); nothing here is copied into the repository.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

log = logging.getLogger(__name__)

TEST_SEED = 100_000
UPLOAD_SIDE = 224  # PneumoniaMNIST's 28 px images are upsampled to this, as an upload would be

# scikit-image `data` images never used in training (the benchmark's held-out photographs).
SKIMAGE_TEST = (
    "camera",
    "coins",
    "gravel",
    "page",
    "cell",
    "shepp_logan_phantom",
    "coffee",
    "rocket",
    "retina",
)
SKIMAGE_TRAIN = (
    "astronaut",
    "brick",
    "cat",
    "chelsea",
    "checkerboard",
    "clock",
    "grass",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "text",
    "colorwheel",
    "logo",
    "binary_blobs",
)
SKIMAGE_DOCUMENTS = ("page", "text")

SYNTHETIC_KINDS = ("noise", "flat", "gradient", "document", "colour", "shapes", "ct_like")


@dataclass
class Sample:
    """One image for the gate. `pixels`: 2-D grey (bright = dense); `rgb`: the colour image
    when the source is colour (H, W, 3 uint8), for tests through the full reader."""

    pixels: np.ndarray
    label: str  # one of radialog.gate.model.CLASSES
    source: str  # e.g. "pneumoniamnist/test", "skimage/camera", "synthetic/noise"
    rgb: np.ndarray | None = None


def shared_data() -> Path:
    """`../shared/data` beside the project (where the real images are read from)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


# ---- chest radiographs ----------------------------------------------------------------------


def pneumoniamnist(split: str, root: Path | None = None) -> list[np.ndarray]:
    """PneumoniaMNIST images of one official split (copy a), upsampled to 224 px."""
    path = (root or shared_data()) / "medmnist" / "pneumoniamnist_a.npz"
    if not path.is_file():
        log.warning("%s not found: no PneumoniaMNIST images", path)
        return []
    with np.load(path) as data:
        images = data[f"{split}_images"]
    return [upsample(img, UPLOAD_SIDE) for img in images]


def upsample(img: np.ndarray, side: int) -> np.ndarray:
    im = Image.fromarray(np.asarray(img, dtype=np.uint8)).resize(
        (side, side), Image.Resampling.BICUBIC
    )
    return np.asarray(im, dtype=np.float32)


def phantoms(n: int, split: str, size: int = 160) -> list[tuple[np.ndarray, str]]:
    """(image, view) phantoms, a third each PA / AP / lateral, with random findings."""
    from radialog.imaging.phantom import render_phantom
    from radialog.labels import CHEXPERT_LABELS

    base = 0 if split == "train" else TEST_SEED
    out = []
    for i in range(n):
        rng = np.random.default_rng(base + i)
        findings = list(rng.choice(CHEXPERT_LABELS[1:], size=rng.integers(0, 4), replace=False))
        view = ("PA", "AP", "LATERAL")[i % 3]
        out.append(
            (render_phantom(findings, base + i, size=size, view=view).astype(np.float32), view)
        )
    return out


def bundled_real(root: Path | None = None) -> list[tuple[Path, str]]:
    """(path, class) of the real radiographs in shared/data/images: never trained on.
    Fake_MONOHR1.dcm reads (correctly) as a negative image: class "inverted"."""
    folder = (root or shared_data()) / "images"
    if not folder.is_dir():
        return []
    return [
        (p, "inverted" if p.name == "Fake_MONOHR1.dcm" else "chest")
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".dcm")
    ]


# ---- augmentation ---------------------------------------------------------------------------


def augment_chest(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Variations a real upload has: framing, small tilt, exposure, blur, a mirror image,
    burnt-in markers. Never more than 12 degrees of tilt: the result is still upright."""
    a = np.asarray(img, dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / max(hi - lo, 1e-6)
    h, w = a.shape
    z = rng.uniform(0.75, 1.0)
    ch, cw = int(h * rng.uniform(z, 1.0)), int(w * z)
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    a = a[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        a = ndimage.rotate(a, rng.uniform(-12, 12), reshape=False, order=1, mode="nearest")
    a = np.clip(a, 0, 1) ** rng.uniform(0.6, 1.6)
    if rng.random() < 0.5:
        a = a[:, ::-1]  # mirrored film (or dextrocardia): still a chest radiograph
    if rng.random() < 0.3:
        a = _degrade(a, rng)
    if rng.random() < 0.3:
        a = _marker(a, rng)
    if rng.random() < 0.2:
        a = _border(a, rng)
    return np.ascontiguousarray(a, dtype=np.float32)


def _degrade(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(24, 64))
    h, w = a.shape
    small = Image.fromarray(a).resize((side, side), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)


def _marker(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A burnt-in side marker or label ("L", "R", "PA", "AP ERECT") as radiographs have."""
    im = Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    h, w = a.shape
    text = str(rng.choice(["L", "R", "PA", "AP", "AP ERECT", "PORTABLE", "SUPINE"]))
    size = max(8, int(h * rng.uniform(0.04, 0.09)))
    draw.text(
        (int(w * rng.uniform(0.02, 0.7)), int(h * rng.uniform(0.02, 0.15))),
        text,
        fill=int(rng.integers(200, 256)),
        font=ImageFont.load_default(size=size),
    )
    return np.asarray(im, dtype=np.float32) / 255.0


def _border(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A black (or white) frame around the film, as scanned or collimated images have."""
    h, w = a.shape
    pad = int(min(h, w) * rng.uniform(0.02, 0.1))
    value = 0.0 if rng.random() < 0.8 else 1.0
    return np.pad(a, pad, constant_values=value)


def invert(a: np.ndarray) -> np.ndarray:
    return float(a.max()) + float(a.min()) - a


def rotate(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """90, 180 or 270 degrees, or upside down (flipped top to bottom)."""
    k = int(rng.integers(0, 4))
    return np.ascontiguousarray(np.rot90(a, k) if k else a[::-1], dtype=np.float32)


# ---- negatives ------------------------------------------------------------------------------


def skimage_images(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """name -> image (grey float or RGB uint8) from scikit-image's bundled data."""
    try:
        from skimage import data
    except ImportError:
        log.warning("scikit-image is not installed: no photograph negatives")
        return {}
    out = {}
    for name in names:
        img = np.asarray(getattr(data, name)())
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 3:
            img = img[..., :3]
            out[name] = img.astype(np.uint8)
        else:
            out[name] = img.astype(np.float32)
    return out


def grey(img: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, as the reader turns colour files grey."""
    if img.ndim == 2:
        return img.astype(np.float32)
    return np.asarray(Image.fromarray(img.astype(np.uint8)).convert("L"), dtype=np.float32)


def crop_variant(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop (30-100 %), rotation and flip of a photograph: many views of one image."""
    h, w = img.shape[:2]
    z = rng.uniform(0.3, 1.0)
    ch, cw = max(32, int(h * z)), max(32, int(w * rng.uniform(z, 1.0)))
    y0, x0 = rng.integers(0, max(1, h - ch + 1)), rng.integers(0, max(1, w - cw + 1))
    out = img[y0 : y0 + ch, x0 : x0 + cw]
    out = np.rot90(out, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def synthetic(kind: str, seed: int, side: int = 160) -> tuple[np.ndarray, np.ndarray | None]:
    """One synthetic non-radiograph: (grey pixels, RGB or None)."""
    rng = np.random.default_rng([seed, SYNTHETIC_KINDS.index(kind)])
    h = w = side
    if rng.random() < 0.5:
        w = int(side * rng.uniform(0.6, 1.6))
    if kind == "noise":
        style = rng.integers(0, 4)
        if style == 0:
            a = rng.normal(0.5, 0.2, (h, w))
        elif style == 1:
            a = rng.random((h, w))
        elif style == 2:  # salt and pepper
            a = (rng.random((h, w)) < rng.uniform(0.05, 0.5)).astype(np.float32)
        else:  # smooth noise at a random scale
            a = ndimage.gaussian_filter(rng.random((h, w)), rng.uniform(1, 12))
        if rng.random() < 0.3:
            rgb = (rng.random((h, w, 3)) * 255).astype(np.uint8)
            return grey(rgb), rgb
        return a.astype(np.float32), None
    if kind == "flat":
        a = np.full((h, w), rng.uniform(0, 255), np.float32)
        if rng.random() < 0.5:
            a += rng.normal(0, rng.uniform(0.5, 3), (h, w))  # flat field + sensor noise
        return a.astype(np.float32), None
    if kind == "gradient":
        y, x = np.mgrid[0:h, 0:w] / max(h, w)
        if rng.random() < 0.5:
            t = rng.uniform(0, np.pi)
            a = np.cos(t) * x + np.sin(t) * y
        else:
            cy, cx = rng.uniform(0, 1, 2)
            a = np.hypot(y - cy, x - cx)
        a = a ** rng.uniform(0.5, 2) if a.min() >= 0 else a
        return a.astype(np.float32), None
    if kind == "document":
        return _document(rng, h, w), None
    if kind == "colour":
        rgb = np.zeros((h, w, 3), np.float32)
        for _ in range(int(rng.integers(2, 8))):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(10, side)
            y, x = np.ogrid[0:h, 0:w]
            rgb[np.hypot(y - cy, x - cx) < r] = rng.uniform(0, 255, 3)
        rgb = ndimage.gaussian_filter(rgb, (rng.uniform(0, 4), rng.uniform(0, 4), 0))
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
        return grey(rgb), rgb
    if kind == "shapes":
        im = Image.new("L", (w, h), int(rng.integers(0, 256)))
        draw = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(1, 12))):
            box = sorted(rng.uniform(0, w, 2)) + sorted(rng.uniform(0, h, 2))
            xy = (box[0], box[2], box[1], box[3])
            fill = int(rng.integers(0, 256))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(xy, fill=fill)
        return np.asarray(im, np.float32), None
    if kind == "ct_like":
        return _ct_like(rng, side), None
    raise ValueError(f"unknown synthetic kind {kind!r}")


def _document(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A rendered page: lines of text, a form's boxes, a table; white or dark background."""
    scale = 4  # draw large, then reduce: anti-aliased text as a scanned page has
    im = Image.new("L", (w * scale, h * scale), int(rng.integers(200, 256)))
    draw = ImageDraw.Draw(im)
    size = int(rng.integers(9, 22)) * scale
    font = ImageFont.load_default(size=size)
    words = [
        "Patient",
        "Name",
        "Date",
        "Signature",
        "Referral",
        "Clinical",
        "history",
        "Ward",
        "Lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "Total",
        "Invoice",
        "No.",
        "Form",
        "12",
    ]
    y = int(rng.integers(2, 20)) * scale
    while y < h * scale - size:
        x = int(rng.integers(2, 30)) * scale
        style = rng.random()
        if style < 0.2:  # a form field box
            draw.rectangle(
                (x, y, x + int(rng.uniform(0.3, 0.9) * w * scale), y + size), outline=0, width=scale
            )
        elif style < 0.3:  # a rule
            draw.line((x, y + size // 2, w * scale - x, y + size // 2), fill=0, width=scale)
        else:
            line = " ".join(rng.choice(words, size=int(rng.integers(2, 12))))
            draw.text((x, y), line, fill=int(rng.integers(0, 80)), font=font)
        y += int(size * rng.uniform(1.2, 2.2))
    a = np.asarray(im.resize((w, h), Image.Resampling.BOX), dtype=np.float32)
    if rng.random() < 0.5:  # a scan or a photo of a page: uneven light, blur, grain
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        t = rng.uniform(0, 2 * np.pi)
        a = a * (1 - rng.uniform(0, 0.4) * (np.cos(t) * xx + np.sin(t) * yy + 1) / 2)
        a = ndimage.gaussian_filter(a, rng.uniform(0, 1.2)) + rng.normal(0, 4, a.shape)
    return (255.0 - a if rng.random() < 0.15 else a).astype(np.float32)


def _ct_like(rng: np.random.Generator, side: int) -> np.ndarray:
    """A cross-sectional slice (CT/MRI-like): a bright ring and soft ellipses on black."""
    y, x = (np.mgrid[0:side, 0:side] / side - 0.5) * 2
    a = np.zeros((side, side), np.float32)
    ry, rx = rng.uniform(0.5, 0.95, 2)
    body = (y / ry) ** 2 + (x / rx) ** 2
    a[body < 1] = rng.uniform(0.3, 0.5)
    if rng.random() < 0.6:
        a[(body < 1) & (body > rng.uniform(0.75, 0.9))] = rng.uniform(0.8, 1.0)  # skull/cortex
    for _ in range(int(rng.integers(2, 9))):
        cy, cx = rng.uniform(-0.5, 0.5, 2) * np.array([ry, rx])
        ey, ex = rng.uniform(0.05, 0.3, 2)
        a[((y - cy) / ey) ** 2 + ((x - cx) / ex) ** 2 < 1] = rng.uniform(0, 1)
    a = ndimage.gaussian_filter(a, rng.uniform(0.5, 2))
    return (a + rng.normal(0, 0.02, a.shape)).astype(np.float32)


# ---- the training set -----------------------------------------------------------------------


def training_samples(
    n_phantoms: int = 1500,
    n_synthetic: int = 300,
    n_skimage: int = 60,
    seed: int = 0,
    root: Path | None = None,
) -> Iterator[Sample]:
    """Every training image (nothing from the benchmark's held-out sets), with derived
    inverted and rotated radiographs. PneumoniaMNIST train + phantoms are the chests."""
    rng = np.random.default_rng(seed)
    chests = [(img, "pneumoniamnist/train") for img in pneumoniamnist("train", root)]
    chests += [(img, f"phantom/{view.lower()}") for img, view in phantoms(n_phantoms, "train")]
    for img, source in chests:
        yield Sample(augment_chest(img, rng), "chest", source)
        if rng.random() < 0.5:
            yield Sample(invert(augment_chest(img, rng)), "inverted", source + "/inverted")
        if rng.random() < 0.5:
            yield Sample(rotate(augment_chest(img, rng), rng), "rotated", source + "/rotated")
    for name, img in skimage_images(SKIMAGE_TRAIN).items():
        label = "document" if name in SKIMAGE_DOCUMENTS else "other"
        for _ in range(n_skimage):
            yield Sample(grey(crop_variant(img, rng)), label, f"skimage/{name}")
    for kind in SYNTHETIC_KINDS:
        # Pages vary most (fonts, layout, scan): twice as many.
        for i in range(n_synthetic * (2 if kind == "document" else 1)):
            pixels, _ = synthetic(kind, i)
            label = "document" if kind == "document" else "other"
            yield Sample(pixels, label, f"synthetic/{kind}")
