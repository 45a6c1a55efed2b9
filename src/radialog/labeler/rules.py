"""Rule-based CheXpert-style labeler: mentions, then negation/uncertainty in their clause.

Per sentence: find mentions of the 13 observations (vocab.MENTIONS); give each mention a
value from its clause (a negation trigger before it, "is not seen" after it, hedges such as
"may represent" or "cannot be excluded"); then per report a label is 1 if any mention is
positive, else -1 if any is uncertain, else 0 if any is negative, else blank. No Finding
follows CheXpert's rule (base.apply_no_finding_rule).
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from radialog.labeler import vocab
from radialog.labeler.base import LabelResult, LabelValue, apply_no_finding_rule
from radialog.labeler.text import split_sentences
from radialog.labels import CHEXPERT_LABELS, NEGATIVE, NO_FINDING, POSITIVE, UNCERTAIN

log = logging.getLogger(__name__)

_PSEUDO = re.compile(r"\b(?:" + vocab.PSEUDO + r")\b")
_NEG_UNCERTAIN = re.compile(r"\b(?:" + vocab.NEGATED_UNCERTAINTY + r")")
_PRE_NEG = re.compile(vocab.PRE_NEGATION)
_PRE_UNC = re.compile(vocab.PRE_UNCERTAINTY)
_NEGATION_IN_GAP = re.compile(r"\b(?:not|no|without)\b")
_HEDGE_IN_GAP = re.compile(
    r"\b(?:borderline|equivocal\w*|possibly|probably|questionabl\w+|may|might)\b|\?"
)
# Strength order used when one report mentions a label several times.
_RANK = {POSITIVE: 3, UNCERTAIN: 2, NEGATIVE: 1}


@dataclass(frozen=True)
class Mention:
    """One observation mentioned in one sentence, with the value its context gives it."""

    label: str
    value: int
    sentence: str
    start: int
    end: int


def _mask(sentence: str) -> str:
    """Blank out pseudo-negations and turn negated hedges into a plain '?' hedge.

    Same length as the input, so mention offsets stay valid.
    """
    masked = _PSEUDO.sub(lambda m: " " * len(m.group()), sentence)
    return _NEG_UNCERTAIN.sub(lambda m: "?" + " " * (len(m.group()) - 1), masked)


class RuleLabeler:
    """Our rule-based CheXpert labeler. Fast (pure regular expressions), deterministic."""

    name = "rules"

    def label(self, texts: Sequence[str]) -> list[LabelResult]:
        """Label each report text; returns one LabelResult per text, in order."""
        return [self.label_one(text) for text in texts]

    def label_one(self, text: str) -> LabelResult:
        sentences = split_sentences(text or "")
        if not sentences:
            # Nothing was said: leave every label blank rather than claim "No Finding".
            return LabelResult({name: None for name in CHEXPERT_LABELS}, {})
        mentions: list[Mention] = []
        normal_sentences: list[str] = []
        for sentence in sentences:
            mentions.extend(self.sentence_mentions(sentence))
            if vocab.NORMAL_STUDY.search(sentence.lower()):
                normal_sentences.append(sentence)
        return self._aggregate(mentions, normal_sentences)

    def sentence_mentions(self, sentence: str) -> list[Mention]:
        """Mentions in one sentence with their context value (1, 0 or -1)."""
        lower = sentence.lower()
        masked = _mask(lower)
        breaks = [(m.start(), m.end()) for m in vocab.CLAUSE_BREAK.finditer(masked)]
        for comma in vocab.COMMA_BREAK.finditer(masked):
            rest_end = next((s for s, _ in breaks if s > comma.end()), len(masked))
            rest_start = max((e for _, e in breaks if e <= comma.start()), default=0)
            # "no A, B, focal C" is a list too: an earlier comma in the same clause.
            in_list = "," in masked[rest_start : comma.start()]
            if not in_list and not vocab.LIST_CONTINUES.search(masked, comma.end(), rest_end):
                breaks.append((comma.start(), comma.end()))
        breaks.sort()
        break_ends = [end for _, end in breaks]
        break_starts = [start for start, _ in breaks]
        explained = bool(vocab.EXPLAINED_AWAY.search(lower))
        out: list[Mention] = []
        for pattern in vocab.MENTIONS:
            if explained and pattern.label in vocab.EXPLAINABLE:
                continue
            for match in pattern.regex.finditer(lower):
                start, end = match.span()
                value = self._value(pattern.kind, masked, start, end, break_starts, break_ends)
                if (
                    value == POSITIVE
                    and pattern.label != "Support Devices"
                    and vocab.MASKED_HEDGE.search(masked, 0, start)
                ):
                    value = UNCERTAIN
                out.append(Mention(pattern.label, value, sentence, start, end))
        return out

    @staticmethod
    def _value(
        kind: str,
        masked: str,
        start: int,
        end: int,
        break_starts: list[int],
        break_ends: list[int],
    ) -> int:
        if kind == vocab.FIXED_NEGATIVE:
            return NEGATIVE
        # Clause around the mention: from the last break that ends before it to the first
        # break that starts after it.
        i = bisect.bisect_right(break_ends, start) - 1
        clause_start = break_ends[i] if i >= 0 else 0
        j = bisect.bisect_left(break_starts, end)
        clause_end = break_starts[j] if j < len(break_starts) else len(masked)
        context = _context_value(masked, start, end, clause_start, clause_end)
        if kind == vocab.FIXED_UNCERTAIN:
            return NEGATIVE if context == NEGATIVE else UNCERTAIN
        return context

    def _aggregate(self, mentions: list[Mention], normal_sentences: list[str]) -> LabelResult:
        best: dict[str, int] = {}
        for mention in mentions:
            current = best.get(mention.label)
            if current is None or _RANK[mention.value] > _RANK[current]:
                best[mention.label] = mention.value
        labels: dict[str, LabelValue] = {name: best.get(name) for name in CHEXPERT_LABELS}
        labels[NO_FINDING] = apply_no_finding_rule(labels)
        evidence: dict[str, list[str]] = {}
        for mention in mentions:
            if labels[mention.label] == mention.value:
                sentences = evidence.setdefault(mention.label, [])
                if mention.sentence not in sentences:
                    sentences.append(mention.sentence)
        if labels[NO_FINDING] == POSITIVE:
            evidence[NO_FINDING] = list(normal_sentences)
        ordered = {name: evidence[name] for name in CHEXPERT_LABELS if name in evidence}
        return LabelResult(labels, ordered)


def _context_value(masked: str, start: int, end: int, clause_start: int, clause_end: int) -> int:
    """Value of the mention at masked[start:end] from the triggers in its clause."""
    mention = masked[start:end]
    # Attribute phrases carry their own negation: "heart is not enlarged".
    if _NEGATION_IN_GAP.search(mention):
        return NEGATIVE
    if _HEDGE_IN_GAP.search(mention):  # "heart is borderline enlarged"
        return UNCERTAIN
    before = masked[clause_start:start]
    after = masked[end:clause_end]
    if "?" in before:  # a negated hedge ("cannot exclude") was rewritten as '?'
        return UNCERTAIN
    if _PRE_NEG.search(before):
        return NEGATIVE
    if _PRE_UNC.search(before):
        return UNCERTAIN
    if vocab.POST_UNCERTAINTY.search(after):
        return UNCERTAIN
    if vocab.POST_NEGATION.search(after):
        return NEGATIVE
    return POSITIVE


def label_report(text: str) -> LabelResult:
    """Label one report with the rule labeler."""
    return _DEFAULT.label_one(text)


_DEFAULT = RuleLabeler()
