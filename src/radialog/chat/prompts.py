"""Follow-up instructions for the dialog (RaDialog's instruct-task wording).

The report-generation and correction prompts live in `radialog.model.prompt` (the single
source of the conversation format); these are the remaining follow-up tasks, worded like
the first prompt of each task list in RaDialog's instruct dataset.
"""

from __future__ import annotations

from radialog.model.prompt import IMPRESSION_PROMPT, correction_prompt

EASY_LANGUAGE_PROMPT = "Explain this report in very easy terms, such that a child would understand."
SUMMARY_PROMPT = "Summarize this report with bullet points."


def translate_prompt(language: str) -> str:
    language = " ".join(language.split())
    if not language:
        raise ValueError("translate_prompt needs a language")
    return f"Translate this report into {language}."


__all__ = [
    "EASY_LANGUAGE_PROMPT",
    "IMPRESSION_PROMPT",
    "SUMMARY_PROMPT",
    "correction_prompt",
    "translate_prompt",
]
