"""Follow-up instructions for the dialog.

The report-generation and correction prompts live in `radialog.model.prompt` (the single
source of the conversation format). The other follow-ups use the first phrasing of the
matching task bank in `radialog.data.instruct_prompts`, so the dialog asks exactly what the
model was fine-tuned on.
"""

from __future__ import annotations

from radialog.data.instruct_prompts import EASY_LANGUAGE, SUMMARIZE
from radialog.model.prompt import IMPRESSION_PROMPT, correction_prompt

EASY_LANGUAGE_PROMPT = EASY_LANGUAGE[0]
SUMMARY_PROMPT = SUMMARIZE[0]

# The slash commands that are one fixed instruction about the report (the one mapping).
FOLLOW_UP_PROMPTS = {
    "easy": EASY_LANGUAGE_PROMPT,
    "summary": SUMMARY_PROMPT,
    "impression": IMPRESSION_PROMPT,
}


def translate_prompt(language: str) -> str:
    language = " ".join(language.split())
    if not language:
        raise ValueError("translate_prompt needs a language")
    return f"Translate this report into {language}."


__all__ = [
    "EASY_LANGUAGE_PROMPT",
    "FOLLOW_UP_PROMPTS",
    "IMPRESSION_PROMPT",
    "SUMMARY_PROMPT",
    "correction_prompt",
    "translate_prompt",
]
