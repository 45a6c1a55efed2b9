"""The embedded default follows its findings list: reports, repair, yes/no answers, correction.

Text-only prompts (no image), so the list is the only evidence; greedy decoding. These pin the
behaviour the quality benchmark measures at scale (`benchmarks/quality.py`).
"""

from __future__ import annotations

import pytest
import torch

from radialog.consistency import check_report, default_labeler
from radialog.model.prompt import (
    binary_question,
    correction_prompt,
    findings_text,
    report_conversation,
    text_only,
)

pytestmark = pytest.mark.e2e

NORMAL = (
    "The heart is normal in size. The mediastinum is unremarkable. The lungs are clear. "
    "There is no pleural effusion or pneumothorax."
)


@pytest.fixture(scope="module")
def mini():
    from radialog.model import RadialogModel

    torch.set_num_threads(2)
    return RadialogModel.from_pretrained("radialog-mini").eval()


@pytest.fixture(scope="module")
def labeler():
    return default_labeler()


def _report_turn(listed):
    conv = report_conversation(findings_text(listed))
    conv.messages[0].text = text_only(conv.messages[0].text)
    return conv


@pytest.mark.parametrize(
    "listed",
    [
        ["Cardiomegaly"],
        ["Pleural Effusion"],
        ["Pneumothorax"],
        [],
        pytest.param(
            ["Support Devices"],
            marks=pytest.mark.xfail(
                strict=True,
                reason="text-only, this model writes pneumonia for a support-devices list, and "
                "its one-finding report names no device either (model card)",
            ),
        ),
        ["Atelectasis", "Pneumothorax"],
        ["Cardiomegaly", "Edema", "Pleural Effusion"],
    ],
    ids=str,
)
def test_report_states_its_list_after_at_most_one_repair(mini, listed):
    conv = _report_turn(listed)
    draft = mini.generate(conv, max_new_tokens=90)
    report, _, check = mini.repair_report(conv.copy().add_assistant(draft), listed)
    assert check.consistent, (listed, draft, report, check.summary())


def _corrected(mini):
    conv = _report_turn([]).add_assistant(NORMAL)
    conv.add_user(correction_prompt([], ["Pleural Effusion"]))
    return mini.generate(conv, max_new_tokens=120)


def test_correction_adds_the_finding_and_keeps_the_rest(mini, labeler):
    corrected = _corrected(mini)
    check = check_report(corrected, ["Pleural Effusion"], labeler)
    assert check.consistent, corrected
    for kept in ("The heart is normal in size.", "The lungs are clear."):
        assert kept in corrected, corrected


@pytest.mark.xfail(
    strict=True,
    reason="the model adds the effusion but keeps the sentence that says it is absent (the "
    "labeler reads the report as positive, so the correction benchmark counts it a success)",
)
def test_correction_removes_the_sentence_that_negated_the_finding(mini):
    assert "no pleural effusion" not in _corrected(mini).lower()


@pytest.mark.parametrize(("label", "expected"), [("Cardiomegaly", "yes"), ("Edema", "no")])
def test_yes_no_answers_follow_the_list(mini, label, expected):
    listed = ["Cardiomegaly"]
    conv = _report_turn(listed).add_assistant(
        "The heart is enlarged. The lungs are clear. No pleural effusion."
    )
    answer = mini.generate(conv.add_user(binary_question(label)), max_new_tokens=10)
    assert expected in answer.lower(), answer


@pytest.mark.parametrize("label", ["Support Devices", "Atelectasis", "Fracture"])
def test_yes_to_a_listed_finding_the_report_left_out(mini, label):
    # The list, not the report, is what the answer follows (the model used to say "no").
    conv = _report_turn([label]).add_assistant("The heart is normal in size. The lungs are clear.")
    answer = mini.generate(conv.add_user(binary_question(label)), max_new_tokens=10)
    assert "yes" in answer.lower(), answer


@pytest.fixture(scope="module")
def example_report(mini):
    from radialog.imaging import example_image_path

    return mini.generate_report(example_image_path(), max_new_tokens=120)


def test_bundled_example_report_is_consistent_with_its_list(example_report):
    # What `make demo` shows: the classifier lists several findings for this radiograph.
    assert len(example_report.predicted) >= 3, example_report.predicted
    check = example_report.consistency
    assert check.consistent, (example_report.text, check.summary(), check.attempts)
    if check.repaired:  # the draft is kept for the reader, and the steps tried are listed
        assert check.original_report and check.original_report != example_report.text
        assert any(a["kept"] for a in check.attempts)


def test_bundled_example_yes_no_follows_the_list(mini, example_report):
    from radialog.imaging import example_image_path

    tokens = mini.analyse_image(example_image_path()).image_tokens
    listed = example_report.predicted
    unlisted = next(n for n in ("Pneumothorax", "Fracture", "Pneumonia") if n not in listed)
    for label, expected in [(listed[-1], "yes"), (listed[0], "yes"), (unlisted, "no")]:
        conv = example_report.conversation.copy().add_user(binary_question(label))
        answer = mini.generate(conv, tokens, max_new_tokens=10)
        assert expected in answer.lower(), (label, answer)
