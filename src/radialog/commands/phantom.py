"""`radialog phantom`: render synthetic phantom radiographs (one image or a contact sheet)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from radialog.errors import InvalidInputError
from radialog.imaging.phantom import PHANTOM_FINDINGS, render_phantom

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--findings",
        default="",
        help='comma-separated CheXpert labels, e.g. "Cardiomegaly,Pleural Effusion" '
        f"(available: {', '.join(PHANTOM_FINDINGS)})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    parser.add_argument("--view", default="PA", help="PA, AP or LATERAL (default PA)")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", type=Path, help="write one phantom PNG here")
    out.add_argument(
        "--sheet", type=Path, help="write a labelled contact sheet: one phantom per finding"
    )
    parser.add_argument("--columns", type=int, default=5, help="contact sheet columns (default 5)")


def run(args: argparse.Namespace) -> int:
    if args.sheet is not None:
        sheet = contact_sheet(seed=args.seed, size=args.size, view=args.view, columns=args.columns)
        _save(sheet, args.sheet)
        print(f"wrote contact sheet of {len(PHANTOM_FINDINGS)} findings to {args.sheet}")
        return 0
    findings = [f.strip() for f in args.findings.split(",") if f.strip()]
    image = render_phantom(findings, seed=args.seed, size=args.size, view=args.view)
    _save(Image.fromarray(image, mode=None), args.out)
    print(
        f"wrote {args.size}x{args.size} phantom ({', '.join(findings) or 'No Finding'}) to {args.out}"
    )
    return 0


def contact_sheet(
    seed: int = 0, size: int = 256, view: str = "PA", columns: int = 5
) -> Image.Image:
    """One phantom per renderable finding (same seed, so only the finding differs), labelled."""
    label_h = max(14, size // 12)
    rows = -(-len(PHANTOM_FINDINGS) // columns)
    sheet = Image.new("L", (columns * size, rows * (size + label_h)), 0)
    draw = ImageDraw.Draw(sheet)
    font = _font(label_h - 4)
    for i, name in enumerate(PHANTOM_FINDINGS):
        tile = render_phantom([name], seed=seed, size=size, view=view)
        x, y = (i % columns) * size, (i // columns) * (size + label_h)
        sheet.paste(Image.fromarray(tile), (x, y + label_h))
        draw.text((x + 4, y + 1), name, fill=255, font=font)
    return sheet


def _font(height: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=height)
    except TypeError:  # very old Pillow without scalable default font
        return ImageFont.load_default()


def _save(image: Image.Image | np.ndarray, path: Path) -> None:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if path.parent and not path.parent.exists():
        raise InvalidInputError(f"output folder {path.parent} does not exist; create it first")
    image.save(path)
