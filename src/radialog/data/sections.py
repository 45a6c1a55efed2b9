"""Split free-text radiology reports (MIMIC-CXR style) into named sections.

Written in the spirit of MIT-LCP's `section_parser.py`: a section starts at a line that begins
with an upper-case heading followed by a colon ("FINDINGS:", "IMPRESSION:"), and runs until the
next heading. Heading synonyms are mapped to one name ("FINDING" -> findings, "CONCLUSION" ->
impression). When a report has neither findings nor impression, its last paragraph is used as
the impression (MIT-LCP's `last_paragraph` fallback).
"""

from __future__ import annotations

import re

# heading (normalised: upper case, single spaces) -> section name
_SYNONYMS: dict[str, str] = {
    "FINDINGS": "findings",
    "FINDING": "findings",
    "FINDINGS AND IMPRESSION": "findings",
    "IMPRESSION": "impression",
    "IMPRESSIONS": "impression",
    "CONCLUSION": "impression",
    "CONCLUSIONS": "impression",
    "INDICATION": "indication",
    "INDICATIONS": "indication",
    "CLINICAL INDICATION": "indication",
    "HISTORY": "history",
    "CLINICAL HISTORY": "history",
    "REASON FOR EXAM": "indication",
    "REASON FOR EXAMINATION": "indication",
    "COMPARISON": "comparison",
    "COMPARISONS": "comparison",
    "TECHNIQUE": "technique",
    "EXAMINATION": "examination",
    "EXAM": "examination",
    "WET READ": "wet_read",
    "NOTIFICATION": "notification",
    "RECOMMENDATION": "recommendation",
    "RECOMMENDATIONS": "recommendation",
}
# A heading: start of line, upper-case words (letters, spaces, '/', '&', '(', ')'), a colon.
_HEADING = re.compile(r"^[ \t]*([A-Z][A-Z /&()]{1,40}?)[ \t]*:", re.MULTILINE)


def _tidy(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def split_sections(text: str) -> dict[str, str]:
    """Section name -> text (whitespace collapsed). Unknown headings are kept in lower case.

    Text before the first heading is returned under "preamble". Repeated sections are joined.
    """
    sections: dict[str, str] = {}
    matches = list(_HEADING.finditer(text))
    if not matches:
        return {"preamble": _tidy(text)} if text.strip() else {}
    head = text[: matches[0].start()]
    if head.strip():
        sections["preamble"] = _tidy(head)
    for i, m in enumerate(matches):
        heading = " ".join(m.group(1).split())
        name = _SYNONYMS.get(heading, heading.lower().replace(" ", "_"))
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = _tidy(text[m.end() : end])
        sections[name] = f"{sections[name]} {body}".strip() if name in sections else body
    return sections


def last_paragraph(text: str) -> str:
    """The last non-empty paragraph (blank-line separated), whitespace collapsed."""
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    return _tidy(paragraphs[-1]) if paragraphs else ""


def report_sections(text: str) -> dict[str, str]:
    """findings / impression / indication / comparison of a report ('' when absent)."""
    sections = split_sections(text)
    out = {
        "findings": sections.get("findings", ""),
        "impression": sections.get("impression", ""),
        "indication": sections.get("indication", "") or sections.get("history", ""),
        "comparison": sections.get("comparison", ""),
    }
    if not out["findings"] and not out["impression"]:
        out["impression"] = last_paragraph(text)
    return out
