"""The 14 CheXpert observations: their canonical order and small helpers.

This module is the single source of truth for label names and order. The order is the
one RaDialog uses for prompts and metrics (No Finding first); CheXbert writes No Finding
last, so files are always read by column name, never by position.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
NUM_LABELS = len(CHEXPERT_LABELS)
NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"

# The five labels most papers report CE on (CheXpert competition tasks).
COMMON_FIVE: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)

# CheXpert label values.
POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
BLANK = None  # not mentioned

_BY_LOWER = {name.lower(): name for name in CHEXPERT_LABELS}


def label_index(name: str) -> int:
    """Index of a label in the canonical order (case-insensitive)."""
    return CHEXPERT_LABELS.index(canonical_label(name))


def canonical_label(name: str) -> str:
    """Return the canonical spelling of a label name; raise ValueError if unknown."""
    key = name.strip().lower()
    if key in _BY_LOWER:
        return _BY_LOWER[key]
    raise ValueError(
        f"unknown CheXpert label {name!r}; expected one of: {', '.join(CHEXPERT_LABELS)}"
    )


def clean_no_finding(positives: Iterable[str]) -> list[str]:
    """RaDialog's test-time rule: drop No Finding when anything but Support Devices is present.

    Returns the labels in canonical order.
    """
    present = {canonical_label(p) for p in positives}
    if NO_FINDING in present and present - {NO_FINDING, SUPPORT_DEVICES}:
        present.discard(NO_FINDING)
    return [name for name in CHEXPERT_LABELS if name in present]


def positives_from_probabilities(
    probabilities: Mapping[str, float] | Sequence[float],
    thresholds: Mapping[str, float] | Sequence[float] | float = 0.5,
) -> list[str]:
    """Labels whose probability is above their threshold, in canonical order."""
    probs = _as_vector(probabilities)
    if isinstance(thresholds, int | float):
        thr = [float(thresholds)] * NUM_LABELS
    else:
        thr = _as_vector(thresholds)
    return [name for name, p, t in zip(CHEXPERT_LABELS, probs, thr, strict=True) if p > t]


def _as_vector(values: Mapping[str, float] | Sequence[float]) -> list[float]:
    if isinstance(values, Mapping):
        return [float(values[name]) for name in CHEXPERT_LABELS]
    if len(values) != NUM_LABELS:
        raise ValueError(f"expected {NUM_LABELS} values, got {len(values)}")
    return [float(v) for v in values]


def join_human(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c' (RaDialog's correction-prompt style)."""
    items = list(items)
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]
