"""Records and the protocol shared by every labeler (rules, CheXbert)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from radialog.labels import (
    CHEXPERT_LABELS,
    NEGATIVE,
    NO_FINDING,
    POSITIVE,
    SUPPORT_DEVICES,
    UNCERTAIN,
)

LabelValue = int | None  # 1 positive, 0 negative, -1 uncertain, None not mentioned

_VALID = {POSITIVE, NEGATIVE, UNCERTAIN, None}


@dataclass(frozen=True)
class LabelResult:
    """The 14 CheXpert labels of one report and the sentences that decided them.

    `labels` holds every label of `radialog.labels.CHEXPERT_LABELS`, in that order, with the
    CheXpert values 1 (positive), 0 (negative), -1 (uncertain) or None (not mentioned).
    `evidence` maps a label to the sentences that decided its value (empty when None).
    """

    labels: dict[str, LabelValue]
    evidence: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if tuple(self.labels) != CHEXPERT_LABELS:
            raise ValueError("LabelResult.labels must hold the 14 labels in canonical order")
        bad = {k: v for k, v in self.labels.items() if v not in _VALID}
        if bad:
            raise ValueError(f"label values must be 1, 0, -1 or None, got {bad}")

    def to_vector(
        self, uncertain_as: float | None = 1, blank_as: float | None = 0
    ) -> list[float | None]:
        """Labels as a list in canonical order, for metrics.

        `uncertain_as` replaces -1 (1: count as positive, as CheXbert-based CE metrics do;
        0: as negative); `blank_as` replaces None. Positive stays 1 and negative 0.
        """
        out: list[float | None] = []
        for value in self.labels.values():
            if value is None:
                out.append(blank_as)
            elif value == UNCERTAIN:
                out.append(uncertain_as)
            else:
                out.append(value)
        return out

    def positives(self, include_uncertain: bool = False) -> list[str]:
        """Names of positive labels (optionally also uncertain ones), in canonical order."""
        keep = {POSITIVE, UNCERTAIN} if include_uncertain else {POSITIVE}
        return [name for name, value in self.labels.items() if value in keep]

    def to_dict(self) -> dict:
        return {
            "labels": dict(self.labels),
            "evidence": {k: list(v) for k, v in self.evidence.items()},
        }


@runtime_checkable
class Labeler(Protocol):
    """Anything that turns report texts into `LabelResult`s (one per text, same order)."""

    name: str

    def label(self, texts: Sequence[str]) -> list[LabelResult]: ...


def apply_no_finding_rule(labels: Mapping[str, LabelValue]) -> LabelValue:
    """CheXpert's No Finding rule: 1 iff no label other than Support Devices is 1 or -1, else None."""
    for name, value in labels.items():
        if name in (NO_FINDING, SUPPORT_DEVICES):
            continue
        if value in (POSITIVE, UNCERTAIN):
            return None
    return POSITIVE
