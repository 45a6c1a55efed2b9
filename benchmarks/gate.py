"""Input gate: real chest X-rays accepted, non-chest images refused, per category; ms per image.

Every image here is held out from the gate's training (`radialog.gate.data` says what was
trained on). Each one goes through the full path a user's file takes: encoded as PNG bytes
(or read from its own file), `read_xray`, then `InputGate.check` (rules + CNN). The table
gives, per category, the share accepted / warned / refused with a 95 % Wilson interval, and
the gate's CPU time per image (the check only; decoding the file is excluded) on one
thread (thread CPU time, so a busy machine does not inflate it).

The bundled real radiographs in ../shared/data/images are never seen in training: they have
their own rows (the files as they are, and 20 framing/exposure variants of each).

Usage: python benchmarks/gate.py [--model radialog-mini | --gate DIR] [--n 150]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from radialog.gate import InputGate  # noqa: E402
from radialog.gate import data as gd  # noqa: E402
from radialog.imaging import example_image_path, read_xray  # noqa: E402

ACCEPT_ROWS = "accept"
REFUSE_ROWS = "refuse"


def png_bytes(pixels: np.ndarray | None = None, rgb: np.ndarray | None = None) -> bytes:
    """An image as a user would upload it: 8-bit PNG (grey, or RGB when given)."""
    if rgb is not None:
        im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB")
    else:
        a = np.asarray(pixels, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.full_like(a, lo if lo <= 255 else 255)
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), mode="L")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def categories(n: int, root: Path | None) -> list[tuple[str, str, list[bytes | Path]]]:
    """(name, expected 'accept' | 'refuse', inputs): every held-out category."""
    rng = np.random.default_rng(12345)
    real = gd.bundled_real(root)
    chest_files = [p for p, c in real if c == "chest"]
    chest_arrays = [read_xray(p).pixels for p in chest_files]
    pmnist = gd.pneumoniamnist("test", root)
    phantoms = gd.phantoms(3 * n, "test")
    rows: list[tuple[str, str, list[bytes | Path]]] = []

    rows.append(
        ("real CXR, bundled files (never seen)", ACCEPT_ROWS, [*chest_files, example_image_path()])
    )
    rows.append(
        (
            "real CXR, bundled, 20 variants each (never seen)",
            ACCEPT_ROWS,
            [png_bytes(gd.augment_chest(a, rng)) for a in chest_arrays for _ in range(20)],
        )
    )
    rows.append(
        ("real CXR, PneumoniaMNIST test (paediatric)", ACCEPT_ROWS, [png_bytes(a) for a in pmnist])
    )
    for view in ("PA", "AP", "LATERAL"):
        rows.append(
            (
                f"phantom {view} (test seeds)",
                ACCEPT_ROWS,
                [png_bytes(a) for a, v in phantoms if v == view],
            )
        )

    chests = chest_arrays + pmnist[:n]
    inverted = [
        png_bytes(gd.invert(gd.augment_chest(chests[i % len(chests)], rng))) for i in range(n)
    ]
    rows.append(
        (
            "inverted CXR (+ Fake_MONOHR1.dcm)",
            REFUSE_ROWS,
            [p for p, c in real if c == "inverted"] + inverted,
        )
    )
    rows.append(
        (
            "rotated / upside-down CXR",
            REFUSE_ROWS,
            [
                png_bytes(gd.rotate(gd.augment_chest(chests[i % len(chests)], rng), rng))
                for i in range(n)
            ],
        )
    )

    photos = gd.skimage_images(gd.SKIMAGE_TEST)

    def crops(names: tuple[str, ...]) -> list[bytes]:
        out = []
        for i in range(n):
            img = photos[names[i % len(names)]]
            v = gd.crop_variant(img, rng)
            out.append(png_bytes(rgb=v) if v.ndim == 3 else png_bytes(v))
        return out

    if photos:
        rows.append(
            (
                "colour photo (coffee, rocket, retina)",
                REFUSE_ROWS,
                crops(("coffee", "rocket", "retina")),
            )
        )
        rows.append(
            (
                "grey photo (camera, coins, gravel)",
                REFUSE_ROWS,
                crops(("camera", "coins", "gravel")),
            )
        )
        rows.append(
            (
                "grey version of colour photos",
                REFUSE_ROWS,
                [
                    png_bytes(gd.grey(gd.crop_variant(photos[k], rng)))
                    for k in ("coffee", "rocket", "retina")
                    for _ in range(n // 3)
                ],
            )
        )
        rows.append(
            (
                "microscopy / CT phantom (cell, shepp_logan)",
                REFUSE_ROWS,
                crops(("cell", "shepp_logan_phantom")),
            )
        )
        rows.append(("scanned page (skimage page)", REFUSE_ROWS, crops(("page",))))

    def synth(kind: str) -> list[bytes]:
        out = []
        for i in range(n):
            grey, rgb = gd.synthetic(kind, gd.TEST_SEED + i)
            out.append(png_bytes(grey, rgb))
        return out

    for kind, name in (
        ("document", "rendered text / forms"),
        ("noise", "noise"),
        ("flat", "flat / blank"),
        ("gradient", "gradient"),
        ("colour", "colour fields"),
        ("shapes", "shapes"),
        ("ct_like", "CT/MRI-like slice (synthetic)"),
    ):
        rows.append((name, REFUSE_ROWS, synth(kind)))
    tiny = [png_bytes(rng.random((s, s)) * 255) for s in (1, 2, 8, 16, 31) for _ in range(4)]
    rows.append(("tiny image (1-31 px)", REFUSE_ROWS, tiny))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="radialog-mini", help="model whose gate/ to use")
    parser.add_argument("--gate", type=Path, default=None, help="a gate folder instead")
    parser.add_argument("--n", type=int, default=150, help="images per synthetic category")
    parser.add_argument("--data", type=Path, default=None, help="shared data root")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.gate is not None:
        gate = InputGate.from_pretrained(args.gate)
    else:
        from radialog.model.radialog_model import weights_root

        model_dir = Path(args.model)
        gate = InputGate.for_model_dir(
            model_dir if model_dir.is_dir() else weights_root() / args.model
        )
        if gate is None:
            raise SystemExit(f"{args.model} has no input gate")

    rows = categories(args.n, args.data)
    gate.check(read_xray(example_image_path()))  # warm up
    print(
        "| category | n | expected | accepted % | warned % | refused % (95 % CI) | "
        "wanted % (95 % CI) | CPU ms/image (mean, p95) |",
        flush=True,
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    failures = []
    for name, expected, inputs in rows:
        decisions, times = [], []
        for item in inputs:
            xray = read_xray(item)
            # CPU time of this thread: what one core spends, whatever else shares the machine.
            t0 = time.thread_time()
            result = gate.check(xray)
            times.append((time.thread_time() - t0) * 1000)
            decisions.append(result.decision)
            if (result.decision == "accept") != (expected == ACCEPT_ROWS):
                failures.append(
                    (
                        name,
                        item if isinstance(item, Path) else "(bytes)",
                        result.decision,
                        result.reason,
                        result.score,
                    )
                )
        k = len(decisions)
        acc = decisions.count("accept")
        warn = decisions.count("warn")
        ref = decisions.count("refuse")
        wanted = acc if expected == ACCEPT_ROWS else ref
        lo, hi = wilson(wanted, k)
        rlo, rhi = wilson(ref, k)
        t = np.asarray(times)
        print(
            f"| {name} | {k} | {expected} | {100 * acc / k:.1f} | {100 * warn / k:.1f} | "
            f"{100 * ref / k:.1f} ({100 * rlo:.1f}-{100 * rhi:.1f}) | "
            f"**{100 * wanted / k:.1f}** ({100 * lo:.1f}-{100 * hi:.1f}) | "
            f"{t.mean():.2f}, {np.percentile(t, 95):.2f} |",
            flush=True,
        )
    print(
        f"\ngate: {gate.config.size} px CNN, accept at {gate.config.accept_at}, refuse below "
        f"{gate.config.refuse_below}; one thread; 'wanted' = accepted for chest rows, refused "
        "for the others"
    )
    for f in failures[:30]:
        print("miss:", *f)


if __name__ == "__main__":
    main()
