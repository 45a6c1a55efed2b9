"""Sentence repair: the second step when the correction turn cannot make a report match its list.

`RadialogModel.repair_report` first asks the model for one correction turn (RaDialog's
correction request). A small model sometimes answers it by dropping a sentence instead of
adding the finding. Then the report is rebuilt sentence by sentence, every sentence still
written by the model:

- a sentence that asserts a finding the list does not name is dropped;
- a sentence that negates a listed finding is dropped (it contradicts the list);
- each listed finding the report still does not state gets the first sentence that states it
  (and nothing unlisted) from the model's own report for that one finding
  (`RadialogModel.finding_sentences`), placed among the finding sentences in list order.

The labeler decides every step; `splice_report` only moves the model's sentences around.
The caller keeps the result only if the labeler finds it more consistent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from radialog.labeler.text import split_report_sentences
from radialog.labels import NO_FINDING


@dataclass
class Splice:
    """A report rebuilt from sentences, and what changed."""

    report: str
    added: dict[str, str] = field(default_factory=dict)  # label -> the sentence inserted
    dropped: list[str] = field(default_factory=list)  # sentences removed
    missing: list[str] = field(default_factory=list)  # listed, and no sentence was found

    def notes(self) -> list[str]:
        out = [f"added from a one-finding report ({k.lower()}): {v}" for k, v in self.added.items()]
        out += [f"dropped: {s}" for s in self.dropped]
        out += [f"no sentence found for {k.lower()}" for k in self.missing]
        return out


def _findings(result: Any) -> set[str]:
    """The findings a labelled sentence states (`LabelResult.positives`, No Finding left out)."""
    return set(result.positives()) - {NO_FINDING}


def finding_sentence(text: str, label: str, labeler: Any) -> str | None:
    """The first sentence of `text` that the labeler reads as stating `label` and no other
    finding; None when there is none."""
    sentences = split_report_sentences(text or "")
    if not sentences:
        return None
    for sentence, result in zip(sentences, labeler.label(sentences), strict=True):
        if _findings(result) == {label}:
            return sentence
    return None


def splice_report(
    report: str,
    listed: Sequence[str],
    sentence_for: Callable[[list[str]], Mapping[str, str | None]],
    labeler: Any,
) -> Splice:
    """Rebuild `report` so that it states the `listed` findings and nothing else.

    `sentence_for(labels)` -> label -> a sentence stating it (or None): asked once, for the
    listed findings the kept sentences do not state."""
    wanted = [n for n in listed if n != NO_FINDING]
    sentences = split_report_sentences(report or "")
    results = labeler.label(sentences) if sentences else []
    kept: list[tuple[str, set[str]]] = []
    dropped: list[str] = []
    for sentence, result in zip(sentences, results, strict=True):
        positives = _findings(result)
        negates_listed = any(result.labels.get(n) == 0 for n in wanted)
        if positives - set(wanted) or negates_listed:
            dropped.append(sentence)
        else:
            kept.append((sentence, positives))
    stated = set().union(*(p for _, p in kept)) if kept else set()
    need = [n for n in wanted if n not in stated]
    found = dict(sentence_for(need)) if need else {}
    added = {n: s for n in need if (s := found.get(n))}
    # Findings first, in list order (the report style the model was trained on), then the
    # rest; a stable sort keeps the model's own order among sentences of one finding.
    order = {n: i for i, n in enumerate(wanted)}
    first = [(s, p) for s, p in kept if p] + [(s, {n}) for n, s in added.items()]
    first.sort(key=lambda sp: min(order[n] for n in sp[1]))
    rest = [s for s, p in kept if not p]
    text = " ".join([s for s, _ in first] + rest)
    missing = [n for n in need if n not in added]
    return Splice(text, added, dropped, missing)
