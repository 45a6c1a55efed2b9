"""Golden strings for RaDialog's conversation format and prompts (reference section 2)."""

from __future__ import annotations

import pytest

from radialog.labels import CHEXPERT_LABELS
from radialog.model.prompt import (
    ALL_FINDINGS_PROMPT,
    IMAGE_PLACEHOLDER,
    IMPRESSION_PROMPT,
    SYSTEM_PROMPT,
    VIEW_PROMPT,
    Conversation,
    binary_question,
    correction_prompt,
    findings_text,
    report_conversation,
    report_prompt,
)

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant acting as an "
    "experienced radiologist. The assistant gives professional, detailed, and polite answers to "
    "the user's questions."
)


def test_system_prompt_is_verbatim() -> None:
    assert SYSTEM_PROMPT == SYSTEM


def test_render_single_open_turn() -> None:
    conv = Conversation().add_user("hello")
    assert conv.render() == f"{SYSTEM} USER: hello ASSISTANT:"


def test_render_multi_turn_golden() -> None:
    conv = Conversation().add_user("m1").add_assistant("m2").add_user("m3")
    assert conv.render() == f"{SYSTEM} USER: m1 ASSISTANT: m2</s>USER: m3 ASSISTANT:"


def test_render_closed_conversation_ends_with_separator() -> None:
    conv = Conversation().add_user("q").add_assistant("a")
    assert conv.render() == f"{SYSTEM} USER: q ASSISTANT: a</s>"


def test_training_string_has_no_space_after_final_colon() -> None:
    conv = Conversation().add_user("m1").add_assistant("m2").add_user("m3").add_assistant("out")
    prompt, target = conv.training_pair()
    assert prompt == f"{SYSTEM} USER: m1 ASSISTANT: m2</s>USER: m3 ASSISTANT:"
    assert target == "out"
    assert conv.training_text() == f"{SYSTEM} USER: m1 ASSISTANT: m2</s>USER: m3 ASSISTANT:out</s>"


def test_training_pair_needs_assistant_last() -> None:
    with pytest.raises(ValueError):
        Conversation().add_user("q").training_pair()


def test_turns_must_alternate() -> None:
    with pytest.raises(ValueError):
        Conversation().add_assistant("a")
    with pytest.raises(ValueError):
        Conversation().add_user("a").add_user("b")


def test_report_prompt_v2_golden() -> None:
    expected = (
        "<image>. Predicted Findings: lung opacity, cardiomegaly, support devices. You are to act "
        "as a radiologist and write the finding section of a chest x-ray radiology report for "
        "this X-ray image and the given predicted findings. Write in the style of a radiologist, "
        "write one fluent text without enumeration, be concise and don't provide explanations "
        "or reasons."
    )
    assert report_prompt("lung opacity, cardiomegaly, support devices") == expected
    assert report_prompt("x").startswith(IMAGE_PLACEHOLDER + ". Predicted Findings: x. ")


def test_report_conversation_render() -> None:
    text = report_conversation("no common findings").render()
    assert text.startswith(f"{SYSTEM} USER: <image>. Predicted Findings: no common findings. ")
    assert text.endswith("don't provide explanations or reasons. ASSISTANT:")
    assert report_conversation([]).has_image


def test_findings_text_order_case_and_empty() -> None:
    assert findings_text([]) == "no common findings"
    # Canonical label order, lower case, ", " joined, whatever the input order/case.
    assert findings_text(["support devices", "Cardiomegaly", "LUNG OPACITY"]) == (
        "cardiomegaly, lung opacity, support devices"
    )
    assert report_prompt(["Edema"]).startswith("<image>. Predicted Findings: edema. ")


def test_findings_text_no_finding_rule() -> None:
    assert findings_text(["No Finding", "Edema"]) == "edema"
    assert findings_text(["No Finding", "Support Devices"]) == "no finding, support devices"
    assert findings_text(["No Finding"]) == "no finding"
    assert findings_text(["No Finding", "Edema"], clean=False) == "no finding, edema"


def test_correction_prompts_golden() -> None:
    assert correction_prompt(["Edema"], ["Cardiomegaly", "Pleural Effusion"]) == (
        "Please adapt the report with the following corrections: Include cardiomegaly and "
        "pleural effusion and remove edema. Don't make other changes."
    )
    assert correction_prompt(["Edema", "Pneumonia", "Fracture"], []) == (
        "The patient does not have edema, pneumonia and fracture. Update the report. "
        "Don't make other changes."
    )
    assert correction_prompt([], ["Atelectasis"]) == (
        "The patient also has atelectasis, correct the report. Don't make other changes."
    )
    # No Finding is ignored; nothing left to correct means keep the old report.
    assert correction_prompt(["No Finding"], ["No Finding"]) is None
    assert correction_prompt([], []) is None


def test_binary_and_fixed_prompts() -> None:
    assert binary_question("pleural effusion") == " Is there any Pleural Effusion?"
    assert [binary_question(x) for x in CHEXPERT_LABELS][0] == " Is there any No Finding?"
    assert ALL_FINDINGS_PROMPT == "List all the findings in this report."
    assert IMPRESSION_PROMPT == (
        "Write the impression section corresponding to this radiology report."
    )
    assert VIEW_PROMPT == "<image> From what view was this image taken?"


def test_followup_history_format() -> None:
    """Downstream prompts append `</s>USER: {q} ASSISTANT:` to the generated history."""
    conv = report_conversation("edema").add_assistant("Mild edema.").add_user(ALL_FINDINGS_PROMPT)
    assert conv.render().endswith(
        "ASSISTANT: Mild edema.</s>USER: List all the findings in this report. ASSISTANT:"
    )
