"""Report text clean-up and sentence splitting (IU X-ray and MIMIC-CXR quirks included)."""

from __future__ import annotations

import re

# De-identification tokens: IU X-ray writes XXXX, MIMIC-CXR writes ___. Both become one
# neutral word so that patterns like "no XXXX of effusion" keep their word structure.
_DEID = re.compile(r"\bX{2,}\b|_{2,}", re.IGNORECASE)
# A numbered list item ("1. ", "2) ") at the start of a line or after a sentence end.
_LIST_ITEM = re.compile(r"(?:(?<=^)|(?<=\s))\d{1,2}\s*[.)](?=\s|[A-Za-z])")
_PARAGRAPH = re.compile(r"\n\s*\n")
# End of sentence: . ! ? followed by space, unless the period belongs to a number (1.5 cm)
# or a short abbreviation (e.g., vs., approx.).
_SENTENCE_END = re.compile(r"(?<![0-9]\.)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\bapprox)(?<=[.!?])\s+")
_SPACE = re.compile(r"\s+")
_ONLY_PUNCT = re.compile(r"^[\W\d_]*$")
# A sentence boundary in generated or IU report text: end punctuation, space, capital.
_REPORT_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


def clean_text(text: str) -> str:
    """Normalise de-identification tokens and whitespace; keeps case and punctuation."""
    return _DEID.sub("xxxx", text)


def split_sentences(text: str) -> list[str]:
    """Split a report into sentences.

    Handles paragraphs, numbered lists ("1. Stable cardiomegaly. 2. Clear lungs."),
    lines wrapped inside a sentence (MIMIC) and fragments without a final period.
    Sentences keep their original wording (with de-identification tokens normalised) and
    lose list numbers.
    """
    text = clean_text(text)
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        # A list number starts a new sentence even when the previous item has no period.
        paragraph = _LIST_ITEM.sub("\n", paragraph)
        for line in re.split(r"\n(?=\s*\n)|\n(?=[A-Z0-9])|^\n", paragraph):
            line = _SPACE.sub(" ", line).strip()
            if not line:
                continue
            for sentence in _SENTENCE_END.split(line):
                sentence = sentence.strip(" -*\u2022")
                if sentence and not _ONLY_PUNCT.match(sentence):
                    sentences.append(sentence)
    return sentences


def split_report_sentences(text: str) -> list[str]:
    """Sentences of one report paragraph, original wording kept (no de-identification clean-up):
    for rewriting a report sentence by sentence (partial context, corrections, repair)."""
    return [s.strip() for s in _REPORT_SENTENCE.split(text.strip()) if s.strip()]
