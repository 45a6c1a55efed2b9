"""RaDialog's downstream-task rules: correction sets from labels, and parsing of model answers.

These follow the original evaluation scripts (reference §2.4 and §5) so that numbers are
comparable: labels are binarised positive-only (uncertain and blank count as negative),
binary QA answers are positive when they contain "yes", list-all answers predict a label when
its lower-cased name is a substring, and view answers are parsed by space-padded keywords.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from radialog.labels import CHEXPERT_LABELS, NO_FINDING
from radialog.model.prompt import binary_question, correction_prompt

LabelValues = Mapping[str, int | None]


def binarize(labels: LabelValues) -> dict[str, int]:
    """Positive-only binary labels in canonical order: 1 stays 1; 0, -1 (uncertain), None -> 0."""
    return {name: 1 if labels.get(name) == 1 else 0 for name in CHEXPERT_LABELS}


@dataclass(frozen=True)
class CorrectionSets:
    """Labels the generated report got wrong against the reference (No Finding excluded)."""

    false_positives: tuple[str, ...]
    false_negatives: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.false_positives and not self.false_negatives


def correction_sets(predicted: LabelValues, reference: LabelValues) -> CorrectionSets:
    """FP = pred and not gt, FN = gt and not pred, in canonical order, without No Finding."""
    pred, ref = binarize(predicted), binarize(reference)
    names = [n for n in CHEXPERT_LABELS if n != NO_FINDING]
    return CorrectionSets(
        false_positives=tuple(n for n in names if pred[n] and not ref[n]),
        false_negatives=tuple(n for n in names if ref[n] and not pred[n]),
    )


def correction_instruction(sets: CorrectionSets) -> str | None:
    """RaDialog's correction request for these sets, or None (KEEP_OLD) when there is nothing to fix."""
    return correction_prompt(sets.false_positives, sets.false_negatives)


BINARY_QUESTIONS: dict[str, str] = {name: binary_question(name) for name in CHEXPERT_LABELS}
VIEW_CLASSES: tuple[str, ...] = ("AP", "PA", "LATERAL", "LL")
UNKNOWN_VIEW = "unknown"


def parse_binary_answers(answers: Mapping[str, str]) -> dict[str, int]:
    """Binary QA answers (label -> text) to 0/1 labels.

    An answer is positive when it contains "yes" (case-insensitive). No Finding is then
    overwritten with 1 - any(other 13), as RaDialog does, whatever the model said about it.
    """
    out = {name: int("yes" in answers.get(name, "").lower()) for name in CHEXPERT_LABELS}
    out[NO_FINDING] = int(not any(out[n] for n in CHEXPERT_LABELS if n != NO_FINDING))
    return out


def parse_list_answer(answer: str) -> dict[str, int]:
    """List-all QA answer to 0/1 labels: a label is present when its lower-cased name is a substring."""
    text = answer.lower()
    return {name: int(name.lower() in text) for name in CHEXPERT_LABELS}


def parse_view(answer: str) -> str:
    """View answer to 'AP', 'PA', 'LATERAL', 'LL' or 'unknown' (first match in that order).

    The keywords are space-padded as in RaDialog; we also pad the answer and turn punctuation
    into spaces so "PA." or "(AP)" at a sentence end still match.
    """
    cleaned = "".join(ch if ch.isalnum() else " " for ch in answer.lower())
    padded = f" {cleaned} "
    for view in VIEW_CLASSES:
        if f" {view.lower()} " in padded:
            return view
    return UNKNOWN_VIEW


def normalize_view(view: str | None) -> str | None:
    """Dataset view labels (e.g. MIMIC 'ViewPosition', DICOM) to the classes above; None if not one."""
    if not view:
        return None
    key = view.strip().upper().replace("-", " ")
    aliases = {"AP": "AP", "PA": "PA", "LATERAL": "LATERAL", "LAT": "LATERAL", "LL": "LL"}
    return aliases.get(key)


def labels_matrix(rows: Sequence[Mapping[str, int]]) -> list[list[int]]:
    """Rows of 0/1 label dicts to a list of canonical-order vectors."""
    return [[int(r[name]) for name in CHEXPERT_LABELS] for r in rows]
