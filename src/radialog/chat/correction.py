"""Did a correction take effect? The labeler reads the report before and after.

`check_correction` is what the chat session and the evaluation (`text_correction`) both judge
a correction by; `looks_like_report` decides whether a correction's answer may replace the
report at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from radialog.labels import CHEXPERT_LABELS, NO_FINDING


@dataclass
class CorrectionResult:
    """What a correction changed, checked by re-labelling the new report.

    added / removed: requested label -> True when it took effect (an addition is positive
    in the new report; a removal is neither positive nor uncertain any more).
    other_changes: labels nobody asked to change whose state (positive / uncertain /
    absent) changed: label -> (before, after).
    kept_old: nothing to change, so no generation happened (RaDialog's KEEP_OLD).
    replaced: the answer is a report and is now the current report. When it is not (empty,
    "yes", a question's answer), `report` stays the previous report and `answer` holds what
    the model said.
    """

    report: str
    previous_report: str
    prompt: str | None
    added: dict[str, bool] = field(default_factory=dict)
    removed: dict[str, bool] = field(default_factory=dict)
    other_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    kept_old: bool = False
    answer: str | None = None  # the model's answer (None: no generation, see kept_old)
    replaced: bool = False

    @property
    def applied(self) -> bool:
        return all(self.added.values()) and all(self.removed.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "prompt": self.prompt,
            "added": self.added,
            "removed": self.removed,
            "other_changes": {k: list(v) for k, v in self.other_changes.items()},
            "applied": self.applied,
            "kept_old": self.kept_old,
            "answer": self.answer,
            "replaced": self.replaced,
            "previous_report": self.previous_report,
        }

    def summary(self) -> str:
        """One line for people: what took effect and what else changed."""
        if self.kept_old:
            return "Nothing to change; the report is unchanged."
        if not self.replaced:
            what = "empty" if not (self.answer or "").strip() else "not a report"
            return (
                f"Correction check: the model's answer is {what}; the report is unchanged "
                "(try again, or correct fewer findings at once)"
            )
        parts = [f"{'added' if ok else 'NOT added'}: {k.lower()}" for k, ok in self.added.items()]
        parts += [
            f"{'removed' if ok else 'NOT removed'}: {k.lower()}" for k, ok in self.removed.items()
        ]
        if self.other_changes:
            other = ", ".join(f"{k.lower()} {a}->{b}" for k, (a, b) in self.other_changes.items())
            parts.append(f"also changed: {other}")
        return "Correction check: " + "; ".join(parts)


def check_correction(
    previous: str,
    new: str,
    prompt: str | None,
    add: list[str],
    remove: list[str],
    label_report: Any,
) -> CorrectionResult:
    """Compare the labeler's reading of the report before and after a correction.
    `label_report(text)` -> a LabelResult (evaluation passes a lookup of precomputed ones)."""
    before = label_report(previous).labels
    after = label_report(new).labels
    added = {label: after.get(label) == 1 for label in add}
    removed = {label: after.get(label) in (0, None) for label in remove}
    other: dict[str, tuple[str, str]] = {}
    for label in CHEXPERT_LABELS:
        if label in add or label in remove or label == NO_FINDING:
            continue  # No Finding follows from the others; not a separate change
        a, b = _state(before.get(label)), _state(after.get(label))
        if a != b:
            other[label] = (a, b)
    return CorrectionResult(new, previous, prompt, added, removed, other, answer=new, replaced=True)


# Words that chest X-ray reports use and short answers rarely do.
_REPORT_WORDS = re.compile(
    r"\b(lungs?|heart|cardi\w*|pleura\w*|mediastin\w*|pneumothora\w*|effusions?|opacit\w*|"
    r"consolidat\w*|atelecta\w*|edema|oedema|pneumonia|thora\w*|chest|hil(?:a|um|ar)\w*|"
    r"diaphragm\w*|costophrenic|osseous|bony|bones?|silhouette|airspace|nodul\w*|tubes?|"
    r"catheters?|pacemaker|fractures?|aort\w*|vascula\w*|acute)\b",
    re.I,
)
_SHORT_ANSWER = re.compile(r"^\s*(yes|no|maybe|ok(ay)?|sure|correct)\s*([,.!;:]|$)", re.I)


def looks_like_report(text: str) -> bool:
    """Is a correction's answer a report (it may replace the report)? Not when it is empty,
    a few words, a yes/no answer ("yes", "No, ...") or says nothing a chest X-ray report
    says. Reports that start "No pneumothorax ..." still count."""
    text = (text or "").strip()
    if len(text.split()) < 3 or _SHORT_ANSWER.match(text):
        return False
    return bool(_REPORT_WORDS.search(text))


def _state(value: int | None) -> str:
    return {1: "positive", -1: "uncertain"}.get(value, "absent")  # type: ignore[arg-type]
