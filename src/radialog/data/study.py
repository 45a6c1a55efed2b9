"""The one record type every dataset adapter yields: a `Study` with its images and report.

A study is one radiological examination: one report (findings, impression, ...) and one or
more images (frontal and lateral views). Labels follow the CheXpert convention and are keyed
by the canonical names of `radialog.labels` (1 positive, 0 negative, -1 uncertain, None not
mentioned).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radialog.labels import CHEXPERT_LABELS, NO_FINDING, canonical_label

# View positions as written by DICOM ViewPosition (MIMIC-CXR metadata, IU DICOM headers).
FRONTAL_VIEWS: frozenset[str] = frozenset({"PA", "AP", "AP AXIAL", "PA LLD", "AP LLD", "AP RLD"})
LATERAL_VIEWS: frozenset[str] = frozenset({"LATERAL", "LL", "RL", "LARGE LATERAL", "LAO", "RAO"})
KNOWN_VIEWS: frozenset[str] = FRONTAL_VIEWS | LATERAL_VIEWS | {"XTABLE LATERAL", "SWIMMERS", "LPO"}

SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_ALIASES = {"validate": "val", "valid": "val", "validation": "val", "dev": "val"}


def normalize_view(view: str | None) -> str | None:
    """Upper-case, trimmed view position; None for blank/unknown markers."""
    if view is None:
        return None
    text = str(view).strip().upper()
    if not text or text in {"NAN", "NONE", "UNKNOWN"}:
        return None
    return text


def normalize_split(split: str | None) -> str | None:
    """Map official split names ("validate") to ours (train/val/test)."""
    if split is None:
        return None
    key = str(split).strip().lower()
    key = _SPLIT_ALIASES.get(key, key)
    if key not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return key


def hash_split(key: str, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> str:
    """Deterministic train/val/test assignment from a string key (stable across runs and OSes)."""
    u = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "val"
    return "test"


def stable_seed(*parts: object, bits: int = 31) -> int:
    """A seed derived from the given parts by SHA-256 (unlike hash(), stable across processes)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") % (1 << bits)


@dataclass
class StudyImage:
    """One image of a study. `path` is None when the images are not available locally."""

    path: Path | None
    view: str | None = None
    image_id: str | None = None

    @property
    def is_frontal(self) -> bool:
        return self.view in FRONTAL_VIEWS


@dataclass
class Study:
    """One examination: report sections, images, 14 CheXpert labels (or None) and split."""

    id: str
    images: list[StudyImage] = field(default_factory=list)
    findings: str = ""
    impression: str = ""
    indication: str = ""
    comparison: str = ""
    labels: dict[str, int | None] | None = None
    split: str | None = None
    # Adapter-specific extras (e.g. phantom seed and drawn findings, source row).
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def positives(self) -> list[str]:
        """Labels equal to 1, in canonical order (RaDialog's training findings list)."""
        if not self.labels:
            return []
        return [name for name in CHEXPERT_LABELS if self.labels.get(name) == 1]

    @property
    def is_normal(self) -> bool:
        """RaDialog's stratification rule: No Finding positive, or no other positive label."""
        positives = self.positives
        return NO_FINDING in positives or not [p for p in positives if p != NO_FINDING]

    def frontal_image(self) -> StudyImage | None:
        """The first frontal image, else the first image, else None."""
        for image in self.images:
            if image.is_frontal:
                return image
        return self.images[0] if self.images else None


def labels_from_mapping(values: Mapping[str, Any]) -> dict[str, int | None]:
    """A full 14-label dict in canonical order from a mapping of (any-case) names to values.

    Accepts 1/0/-1 as int, float or string; blank, None and NaN mean not mentioned.
    Raises ValueError on any other value or an unknown label name.
    """
    out: dict[str, int | None] = dict.fromkeys(CHEXPERT_LABELS)
    for name, value in values.items():
        out[canonical_label(name)] = parse_label_value(value)
    return out


def parse_label_value(value: Any) -> int | None:
    """1/0/-1 (int, float or text) -> int; blank/None/NaN -> None; anything else -> ValueError."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    text = str(value).strip()
    if text == "" or text.lower() in {"nan", "none"}:
        return None
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"label value {value!r} is not 1, 0, -1 or blank") from None
    if number not in (1.0, 0.0, -1.0):
        raise ValueError(f"label value {value!r} is not 1, 0, -1 or blank")
    return int(number)
