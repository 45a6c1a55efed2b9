"""The conversations `radialog eval` sends, built from `radialog.model.prompt` (the one source).

Downstream tasks continue the report-generation conversation as RaDialog's evaluation scripts do:
the RG prompt, the generated report as the assistant turn, then the task's question.

`--no-findings` ablation: the findings branch is switched off by removing the sentence
"Predicted Findings: ..." (and the words "and the given predicted findings") from the RG prompt,
leaving an image-only prompt. We do not substitute "no common findings": the model is trained
to read that phrase as "the classifier found nothing", so it would inject a false normal
finding instead of removing the structured information.
"""

from __future__ import annotations

from collections.abc import Sequence

from radialog.model.prompt import (
    ALL_FINDINGS_PROMPT,
    IMPRESSION_PROMPT,
    REPORT_PROMPT_TEMPLATE,
    VIEW_PROMPT,
    Conversation,
    binary_question,
    findings_text,
    report_prompt,
)

_FINDINGS_SENTENCE = " Predicted Findings: {findings}."
_FINDINGS_CLAUSE = " and the given predicted findings"


def image_only_report_prompt() -> str:
    """The RG prompt with the findings sentence and its mention removed (`--no-findings`)."""
    if (
        _FINDINGS_SENTENCE not in REPORT_PROMPT_TEMPLATE
        or _FINDINGS_CLAUSE not in REPORT_PROMPT_TEMPLATE
    ):
        # The shared template changed: fail loudly rather than silently keep the findings.
        raise RuntimeError("report prompt template changed; update evaluation.prompts")
    return REPORT_PROMPT_TEMPLATE.replace(_FINDINGS_SENTENCE, "").replace(_FINDINGS_CLAUSE, "")


def rg_prompt(positives: Sequence[str] | None) -> str:
    """The RG user turn: RaDialog's prompt with the findings list, or image-only when None."""
    if positives is None:
        return image_only_report_prompt()
    return report_prompt(findings_text(positives))


def rg_conversation(prompt: str) -> Conversation:
    return Conversation().add_user(prompt)


def followup(rg_user_turn: str, assistant_turn: str, question: str) -> Conversation:
    """RG prompt -> assistant turn (generated report, or GT findings for impressions) -> question."""
    return Conversation().add_user(rg_user_turn).add_assistant(assistant_turn).add_user(question)


def view_conversation() -> Conversation:
    return Conversation().add_user(VIEW_PROMPT)


__all__ = [
    "ALL_FINDINGS_PROMPT",
    "IMPRESSION_PROMPT",
    "binary_question",
    "followup",
    "image_only_report_prompt",
    "rg_conversation",
    "rg_prompt",
    "view_conversation",
]
