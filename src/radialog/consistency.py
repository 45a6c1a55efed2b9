"""Does a report say what its findings list says? The check behind every returned report.

RaDialog puts the classifier's findings list into the report prompt; the model may still write
a report that leaves a listed finding out or asserts one that is not listed. `check_report`
reads the report with the labeler and compares:

- stated: listed findings the report states (labeler positive), with the evidence sentences;
- omitted: listed findings the report does not state (absent, negated or only hedged);
- unsupported: findings the report asserts that are not on the list, with their evidence.

No Finding is left out on both sides (it follows from the others). `repair_instruction` turns
an inconsistent check into RaDialog's correction request, which `RadialogModel.repair_report`
sends through the same model once; if that is not enough, `radialog.repair` rebuilds the
report from the model's sentences. A step is kept only if it is more consistent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from radialog.labels import CHEXPERT_LABELS, NO_FINDING, canonical_label


@dataclass(frozen=True)
class Statement:
    """A finding and the report sentences that decided it."""

    label: str
    evidence: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "evidence": list(self.evidence)}


@dataclass
class Consistency:
    """The labeler's reading of a report against the findings list it was written from."""

    listed: list[str]
    stated: list[Statement]
    omitted: list[Statement]
    unsupported: list[Statement]
    repaired: bool = False
    # The first report when a repair replaced it (None otherwise), and what was asked.
    original_report: str | None = None
    repair_request: str | None = None
    # "correction" (the correction turn) or "sentences" (`radialog.repair`) when repaired.
    repair_method: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.omitted and not self.unsupported

    @property
    def mismatches(self) -> int:
        return len(self.omitted) + len(self.unsupported)

    def to_dict(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "listed": list(self.listed),
            "stated": [s.to_dict() for s in self.stated],
            "omitted": [s.to_dict() for s in self.omitted],
            "unsupported": [s.to_dict() for s in self.unsupported],
            "repaired": self.repaired,
            "original_report": self.original_report,
            "repair_request": self.repair_request,
            "repair_method": self.repair_method,
            "attempts": [dict(a) for a in self.attempts],
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """One line for people: what the check found (and whether a repair ran)."""
        if self.consistent:
            text = "report consistent with the findings list"
        else:
            parts = []
            if self.omitted:
                parts.append("omits " + ", ".join(s.label for s in self.omitted))
            if self.unsupported:
                parts.append("asserts unlisted " + ", ".join(s.label for s in self.unsupported))
            text = "report " + "; ".join(parts)
        if self.repaired:
            how = {"sentences": ", sentence by sentence"}.get(self.repair_method or "", "")
            text += f" (after an automatic repair of the first draft{how})"
        return text


def _listed(findings: Iterable[str]) -> list[str]:
    present = {canonical_label(x) for x in findings}
    return [n for n in CHEXPERT_LABELS if n in present and n != NO_FINDING]


def check_report(report: str, findings: Sequence[str], labeler: Any) -> Consistency:
    """Compare the labeler's positives of `report` with the listed `findings`.

    `labeler`: an object with `.label(texts) -> [LabelResult]` (`radialog.labeler`).
    """
    listed = _listed(findings)
    result = labeler.label([report or ""])[0]
    labels, evidence = result.labels, result.evidence

    def statement(name: str) -> Statement:
        return Statement(name, tuple(dict.fromkeys(evidence.get(name, ()))))

    stated = [statement(n) for n in listed if labels.get(n) == 1]
    omitted = [statement(n) for n in listed if labels.get(n) != 1]
    unsupported = [
        statement(n)
        for n in CHEXPERT_LABELS
        if n != NO_FINDING and n not in listed and labels.get(n) == 1
    ]
    return Consistency(listed, stated, omitted, unsupported)


def repair_instruction(check: Consistency) -> str | None:
    """RaDialog's correction request that would make the report match its list, or None."""
    from radialog.model.prompt import correction_prompt

    if check.consistent:
        return None
    return correction_prompt([s.label for s in check.unsupported], [s.label for s in check.omitted])


def default_labeler() -> Any:
    """The rule labeler (fast, no weights): what the check uses unless given another."""
    from radialog.labeler import get_labeler

    return get_labeler("rules")
