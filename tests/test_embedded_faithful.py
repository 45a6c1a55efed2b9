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
        ["Support Devices"],
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
